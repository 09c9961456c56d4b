"""ASR values stay in their sampled bins; AHO masks zero exactly the sampled cells, and the first
cell follows the grid distribution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug.generators.pose_adversary import bin_centres, occlusion_mask, sample_binned


pytestmark = pytest.mark.usefixtures("unoptimized_xla")


def test_bin_centres_spread_evenly_over_the_range():
    np.testing.assert_allclose(bin_centres(0.75, 1.25, 7), 0.75 + (np.arange(7) + 0.5) / 14)
    np.testing.assert_allclose(bin_centres(-30, 30, 9)[[0, 4, 8]], [-30 + 60 / 18, 0, 30 - 60 / 18])
    with pytest.raises(ValueError, match="high > low"):
        bin_centres(1.0, 1.0, 3)


def test_binned_values_stay_in_their_bins_and_bins_follow_the_logits():
    logits = jnp.log(jnp.asarray([0.1, 0.6, 0.3]))
    keys = jax.random.split(jax.random.key(0), 20000)
    index, value = jax.jit(jax.vmap(lambda k: sample_binned(k, logits, -30.0, 30.0)))(keys)
    lo = -30.0 + 20.0 * np.asarray(index)
    assert np.all((np.asarray(value) >= lo) & (np.asarray(value) <= lo + 20.0))
    np.testing.assert_allclose(np.bincount(np.asarray(index), minlength=3) / 20000, [0.1, 0.6, 0.3],
                               atol=0.015)
    # Centred on the bin, with std below that of a uniform over the bin (20 / sqrt(12) = 5.8).
    offsets = np.asarray(value) - (lo + 10.0)
    assert abs(offsets.mean()) < 0.1 and 3.0 < offsets.std() < 5.0


@pytest.mark.parametrize("num_cells", [1, 2])
def test_occlusion_mask_zeroes_exactly_the_sampled_cells(num_cells):
    logits = jnp.log(jnp.arange(1.0, 17.0).reshape(4, 4))
    masks, cells = jax.jit(jax.vmap(lambda k: occlusion_mask(k, logits, num_cells)))(
        jax.random.split(jax.random.key(1), 4000))
    masks, cells = np.asarray(masks), np.asarray(cells)
    assert np.all(cells[:, 0] != cells[:, 1])
    for mask, cell in zip(masks[:50], cells[:50]):
        want = np.ones(16)
        want[cell[:num_cells]] = 0.0
        np.testing.assert_array_equal(mask.reshape(-1), want)
    np.testing.assert_allclose(np.bincount(cells[:, 0], minlength=16) / 4000,
                               np.arange(1, 17) / 136, atol=0.02)


def test_pose_adversary_reads_a_pose_models_features():
    from jaxaug import models
    from jaxaug.generators.pose_adversary import PoseAdversary

    # The smallest CU-Net whose lowest features (8 x 8 of 32 x 32 images) split into G's 4 x 4 grid.
    pose = models.create_pose_model("cunet", 16, num_unets=1, order=0, depth=1, features=8,
                                    growth=4, stem_stride=2)
    adversary = PoseAdversary(width=8)

    @jax.jit  # one program, not every op compiled on its own
    def logits(images, mask):
        variables = pose.init(jax.random.key(1), images, train=False)
        _, features = pose.apply(variables, images, train=False, return_features=True)
        g_vars = adversary.init(jax.random.key(2), features, train=False)
        _, occluded = pose.apply(variables, images, train=False, occlusion=mask,
                                 return_features=True)
        return adversary.apply(g_vars, features, train=False), adversary.apply(
            g_vars, occluded, train=False)

    # The logits follow the features: occluding a cell of the pose features changes them.
    mask = jnp.ones((2, 4, 4)).at[:, 0, 0].set(0.0)
    out, occluded = logits(jax.random.normal(jax.random.key(0), (2, 32, 32, 3)), mask)
    assert {k: v.shape for k, v in out.items()} == {
        "scale": (2, 7), "rotation": (2, 9), "occlusion": (2, 4, 4)}
    assert not np.allclose(occluded["occlusion"], out["occlusion"])
