"""AugMix: its draws follow their definitions (Dirichlet and Beta moments, depth, op and level
distributions of the reference's ``augmentations.py``), its output is the convex mix of its
chains; `same_on_batch` shares one draw over a batch. The method: test_augmix_method.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug import policies
from jaxaug.policies.augmix_policy import AUGMIX_ALL_OPS, AUGMIX_OPS

N = 4000
DEFAULT = policies.augmix()  # severity 3, width 3, depth 1-3, alpha 1
HALF = policies.augmix(alpha=0.5, depth=2, all_ops=True)  # the Gamma path of the Dirichlet
SMALL = policies.augmix(depth=1)  # applied to 8x8 images: one compiled `mix`


@functools.cache
def _draws():
    """N draws of DEFAULT and HALF (32-pixel images) and one of SMALL (8 pixels), one program."""
    def sample(policy):
        return jax.vmap(lambda k: policy.sample(k, 32))(jax.random.split(jax.random.key(0), N))
    return jax.jit(lambda: (sample(DEFAULT), sample(HALF), SMALL.sample(jax.random.key(4), 8)))()


def _assert_mean(samples, expected, what):
    """The sample mean is within 5 standard errors of ``expected``."""
    samples = np.asarray(samples, np.float64).ravel()
    error = 5 * samples.std() / np.sqrt(samples.size)
    assert abs(samples.mean() - expected) < error, (what, samples.mean(), expected, error)


@pytest.mark.parametrize("which,alpha", [(0, 1.0), (1, 0.5)])
def test_dirichlet_and_beta_match_their_moments(which, alpha):
    draw = jax.tree.map(np.asarray, _draws()[which])
    w, m, k = draw.weights, draw.m, 3
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    assert (w >= 0).all() and (m >= 0).all() and (m <= 1).all()
    # Dirichlet(alpha 1_k): mean 1/k, var (k-1)/(k^2 (k alpha + 1)), cov -1/(k^2 (k alpha + 1)).
    c = k * k * (k * alpha + 1)
    for i in range(k):
        _assert_mean(w[:, i], 1 / k, f"E w{i}")
        _assert_mean((w[:, i] - 1 / k) ** 2, (k - 1) / c, f"var w{i}")
    _assert_mean((w[:, 0] - 1 / k) * (w[:, 1] - 1 / k), -1 / c, "cov w0 w1")
    # Beta(alpha, alpha): mean 1/2, var 1 / (4 (2 alpha + 1)).
    _assert_mean(m, 0.5, "E m")
    _assert_mean((m - 0.5) ** 2, 1 / (4 * (2 * alpha + 1)), "var m")


def test_depth_and_ops_are_uniform():
    default, half = jax.tree.map(np.asarray, _draws()[:2])
    depth = default.applied.sum(-1)
    # Applied steps form a prefix of the chain; the depth is uniform in {1, 2, 3}.
    np.testing.assert_array_equal(default.applied, np.arange(3) < depth[..., None])
    for d in (1, 2, 3):
        _assert_mean(depth == d, 1 / 3, f"P(depth={d})")
    assert half.applied.all() and half.applied.shape == (N, 3, 2)
    for draw, names in ((default, AUGMIX_OPS), (half, AUGMIX_ALL_OPS)):
        for i in range(len(names)):
            _assert_mean(draw.op_index == i, 1 / len(names), f"P({names[i]})")


def test_levels_follow_the_reference_functions():
    """Severity 3 on 32-pixel images, levels l ~ U(0.1, 3): the values of augmentations.py."""
    default, half = jax.tree.map(np.asarray, _draws()[:2])
    values = {name: default.value[default.op_index == i] for i, name in enumerate(AUGMIX_OPS)}
    # rotate int(3 l) degrees: P(0) = (1/3 - 0.1) / 2.9, P(k) = (1/3) / 2.9 for k = 1..8.
    degrees = np.abs(values["rotate"])
    np.testing.assert_array_equal(degrees, np.round(degrees))
    probabilities = [(1 / 3 - 0.1) / 2.9] + [1 / 3 / 2.9] * 8
    for k, p in enumerate(probabilities):
        _assert_mean(degrees == k, p, f"P(rotate {k})")
    assert degrees.max() == 8
    bits = values["posterize"]  # 4 - int(0.4 l): 3 from l = 2.5 on
    assert set(np.unique(bits)) == {3, 4}
    _assert_mean(bits == 3, 0.5 / 2.9, "P(posterize 3 bits)")
    threshold = values["solarize"] * 255  # 256 - int(25.6 l), in [180, 254]
    np.testing.assert_allclose(threshold, np.round(threshold), atol=1e-4)
    assert threshold.min() == pytest.approx(180, abs=1e-3)
    assert threshold.max() == pytest.approx(254, abs=1e-3)
    pixels = np.abs(values["translate_x"])  # int(l * 32 / 3 / 10), in {0, 1, 2, 3}
    assert set(np.unique(pixels)) == {0, 1, 2, 3}
    _assert_mean(pixels == 0, (30 / 32 - 0.1) / 2.9, "P(translate 0)")
    shear = np.abs(values["shear_y"])  # 0.03 l, uniform in [0.003, 0.09)
    _assert_mean(shear, (0.003 + 0.09) / 2, "E |shear|")
    for name in ("rotate", "shear_x", "translate_y"):
        _assert_mean(np.signbit(values[name]), 0.5, f"P({name} < 0)")
    for name in ("auto_contrast", "equalize"):
        np.testing.assert_array_equal(values[name], 0.0)
    enhance = half.value[half.op_index == AUGMIX_ALL_OPS.index("contrast")]  # 0.18 l + 0.1
    assert enhance.min() >= 0.118 - 1e-6 and enhance.max() < 0.64
    _assert_mean(enhance, 0.1 + 0.18 * 1.55, "E contrast factor")


def _images(n):
    return np.random.default_rng(7).uniform(size=(n, 8, 8, 3)).astype(np.float32)


def test_output_is_the_convex_mix_of_its_chains():
    mix, key = jax.jit(SMALL.mix), jax.random.key(3)
    img, draw = _images(1)[0], jax.tree.map(np.asarray, _draws()[2])

    def run(**changes):
        return np.asarray(mix(key, img, draw._replace(**changes)))

    out = run()
    # Chain i alone: m = 0 and the weights one-hot (the same key gives the same chains).
    chains = [run(m=np.float32(0), weights=np.eye(3, dtype=np.float32)[i]) for i in range(3)]
    by_hand = draw.m * img + (1 - draw.m) * sum(w * c for w, c in zip(draw.weights, chains))
    np.testing.assert_allclose(out, by_hand, atol=1e-6)
    assert max(np.abs(c - img).max() for c in chains) > 0.01  # the chains act
    assert 0 < draw.m < 1 and np.abs(out - img).max() > 1e-3
    np.testing.assert_array_equal(run(m=np.float32(1)), img)
    np.testing.assert_allclose(run(applied=np.zeros_like(draw.applied)), img, atol=1e-6)


def _noise(key, img):
    """A cheap policy whose draw is all of its output: `same_on_batch` is policy-agnostic."""
    return jnp.clip(img + 0.4 * jax.random.uniform(key, img.shape) - 0.2, 0, 1)


def test_same_on_batch_shares_one_draw():
    """Each image gets what the policy gives it alone with the batch's key; equal images stay
    equal (with a key per image, as `augment.standard` draws them, they would not)."""
    images = _images(3)
    images[1] = images[0]
    key = jax.random.key(5)

    @jax.jit
    def run(key):
        return (policies.same_on_batch(_noise)(key, images),
                jax.lax.map(lambda img: _noise(key, img), images))

    shared, alone = run(key)
    np.testing.assert_allclose(shared, alone, atol=1e-6)
    np.testing.assert_array_equal(shared[0], shared[1])
    assert np.abs(np.asarray(shared[0]) - images[0]).max() > 0.1  # the draw changed the image
