"""On-device augmentation: each piece against a numpy reference or its defining property."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug import ops, policies
from jaxaug.data import augment

MEAN = np.array([0.4, 0.5, 0.6], np.float32)
STD = np.array([0.2, 0.25, 0.3], np.float32)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(1, 256, (64, 8, 8, 3), dtype=np.uint8)


def crop_offsets(out, image, pad):
    """All (dy, dx) for which `out` is the window at (dy, dx) of the zero-padded `image`."""
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    h, w = image.shape[:2]
    return [
        (dy, dx)
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
        if np.array_equal(padded[dy : dy + h, dx : dx + w], out)
    ]


def test_random_crop_is_a_window_of_the_zero_padded_image(images):
    out = np.asarray(augment.random_crop(jax.random.key(1), images, pad=2))
    assert out.dtype == np.uint8 and out.shape == images.shape
    offsets = [crop_offsets(o, i, 2) for o, i in zip(out, images, strict=True)]
    assert all(len(o) == 1 for o in offsets)  # pixels are >= 1, so the window is unique
    offsets = np.array([o[0] for o in offsets])
    # offsets are drawn per image and cover {0..4} in both directions
    assert set(offsets[:, 0]) == set(offsets[:, 1]) == set(range(5))
    assert (out == 0).any()  # some crops show the zero padding


def test_random_crop_pad_zero_is_identity(images):
    np.testing.assert_array_equal(augment.random_crop(jax.random.key(0), images, pad=0), images)


def test_random_flip_mirrors_about_half_of_the_images(images):
    key = jax.random.key(2)
    out = np.asarray(augment.random_flip(key, images))
    flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images, strict=True)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, images, strict=True)])
    assert (flipped ^ kept).all()
    assert 16 < flipped.sum() < 48
    # the same key flips the same images, so applying it twice restores the batch
    np.testing.assert_array_equal(augment.random_flip(key, out), images)


@pytest.mark.parametrize("size", [3, 4])
def test_cutout_zeroes_one_clipped_square(size):
    ones = jnp.ones((500, 10, 10, 2), jnp.float32)
    out = np.asarray(augment.cutout(jax.random.key(3), ones, size))
    zero = out[..., 0] == 0
    assert (zero == (out[..., 1] == 0)).all()  # all channels together
    assert set(np.unique(out)) <= {0.0, 1.0}
    full = 0
    for mask in zero:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert 1 <= len(rows) <= size and 1 <= len(cols) <= size
        # a rectangle, the square clipped at the border
        assert mask.sum() == len(rows) * len(cols)
        assert mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
        if len(rows) < size:
            assert rows[0] == 0 or rows[-1] == 9
        if len(cols) < size:
            assert cols[0] == 0 or cols[-1] == 9
        full += mask.sum() == size * size
    # the centre is uniform over the 10 x 10 pixels: whole squares need it away from the borders
    inside = (10 - size + 1) / 10
    assert abs(full / len(out) - inside**2) < 0.08
    np.testing.assert_array_equal(augment.cutout(jax.random.key(3), ones, 0), ones)


def test_cutout_fills_with_the_given_colour_per_channel():
    """The fill is a colour: with the dataset mean, the square normalizes to 0 in every channel,
    the reference's Cutout after normalization."""
    ones = jnp.ones((4, 10, 10, 3), jnp.float32)
    out = np.asarray(augment.cutout(jax.random.key(3), ones, 4, MEAN))
    inside = (out != 1).any(-1)
    assert inside.any(axis=(1, 2)).all()
    np.testing.assert_array_equal(out[inside], np.broadcast_to(MEAN, out[inside].shape))
    np.testing.assert_allclose(((out - MEAN) / STD)[inside], 0.0, atol=1e-6)


def test_standard_without_augmentation_is_the_images_in_unit_range(images):
    batch = {"image": images, "label": np.arange(64, dtype=np.int32), "extra": np.ones(3)}
    out = augment.standard(jax.random.key(4), batch, pad=0, flip=False, cutout=0)
    assert out["image"].dtype == jnp.float32
    np.testing.assert_allclose(out["image"], images / 255.0, rtol=1e-6, atol=1e-7)
    assert out["label"] is batch["label"] and out["extra"] is batch["extra"]


def test_standard_composes_crop_flip_cutout(images):
    key = jax.random.key(5)
    batch = {"image": images, "label": np.zeros(64, np.int32)}
    standard = jax.jit(lambda k, b: augment.standard(k, b, pad=2, cutout=4, cutout_fill=MEAN))
    out = np.asarray(standard(key, batch)["image"])
    assert out.dtype == np.float32 and out.shape == images.shape
    crop_key, flip_key, _, cutout_key = jax.random.split(key, 4)
    reference = augment.random_crop(crop_key, images, 2)
    reference = augment.random_flip(flip_key, reference)
    reference = augment.cutout(cutout_key, reference / 255.0, 4, MEAN)
    np.testing.assert_allclose(out, reference, rtol=1e-6, atol=1e-6)
    # only Cutout makes a pixel the mean colour in every channel (the images' levels are
    # multiples of 1/255, the zero padding 0), and its 4 x 4 square keeps at least 2 x 2 pixels
    # inside the 8 x 8 image
    mean_pixels = (out == MEAN).all(-1).sum((1, 2))
    assert ((4 <= mean_pixels) & (mean_pixels <= 16)).all()


def test_policy_runs_per_image_after_flip(images):
    policy = policies.randaugment(2, 9)
    key = jax.random.key(7)
    batch = {"image": images}

    @jax.jit  # one program for both sides
    def both(key, batch):
        crop_key, flip_key, policy_key, _ = jax.random.split(key, 4)
        x = augment.random_flip(flip_key, augment.random_crop(crop_key, batch["image"], 2)) / 255
        x = jax.vmap(policy)(jax.random.split(policy_key, len(images)), x)
        return augment.standard(key, batch, pad=2, policy=policy)["image"], x

    out, x = both(key, batch)
    np.testing.assert_allclose(np.asarray(out), np.asarray(x), rtol=1e-5, atol=1e-5)
    plain = augment.standard(key, batch, pad=2)["image"]
    assert np.abs(np.asarray(out) - np.asarray(plain)).mean() > 0.05


def test_works_under_vmap_and_different_keys_differ(images):
    keys = jax.random.split(jax.random.key(6), 2)
    run = jax.vmap(lambda k: augment.standard(k, {"image": images})["image"])
    out = np.asarray(jax.jit(run)(keys))
    assert out.shape == (2, *images.shape)
    assert not np.array_equal(out[0], out[1])


def test_random_resized_crop_replaces_the_pad_crop(images):
    """crop="random_resized": each image is `ops.random_resized_crop` back to its own size with
    its own key (then the flip), the ImageNet recipe's crop."""
    key, batch = jax.random.key(8), {"image": images[:8]}
    @jax.jit  # one program for both sides
    def both(key, batch):
        out = augment.standard(key, batch, crop="random_resized", flip=False, scale=(0.25, 0.5))
        crop_key = jax.random.split(key, 4)[0]
        want = jax.vmap(lambda k, x: ops.random_resized_crop(k, x, (8, 8), scale=(0.25, 0.5)))(
            jax.random.split(crop_key, 8), batch["image"] / 255.0)
        return out["image"], want

    out, want = both(key, batch)
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), atol=1e-6)
    assert not np.allclose(np.asarray(out), images[:8] / 255.0, atol=0.05)
    with pytest.raises(ValueError, match="crop must be one of"):
        augment.standard(key, batch, crop="center")


def test_same_on_batch_gives_every_image_the_policy_draw_of_one_key(images):
    """One key for the batch: each image is the policy on it with the batch's policy key, so the
    same draws everywhere (here the rotation's coin and the signs)."""
    policy = policies.autoaugment(((("translate_x", 1.0, 9), ("rotate", 0.5, 9)),))
    key, batch = jax.random.key(9), {"image": images[:4]}
    out = jax.jit(lambda k, b: augment.standard(k, b, pad=0, flip=False, policy=policy,
                                                same_on_batch=True))(key, batch)["image"]
    policy_key = jax.random.split(key, 4)[2]
    want = jax.jit(jax.vmap(policy, in_axes=(None, 0)))(policy_key, images[:4] / 255.0)
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), atol=1e-6)
