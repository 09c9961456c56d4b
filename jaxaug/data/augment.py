"""Standard image augmentation in pure JAX: random crop, horizontal flip, an optional policy,
normalization, Cutout.

All functions act on a batch [B, H, W, C], draw independent randomness per image from `key`, and
contain no Python control flow on traced values, so they work under `jit` and `vmap`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxaug.ops.point import to_float


def random_crop(key: jax.Array, images: jax.Array, pad: int = 4) -> jax.Array:
    """Zero-pad each image by `pad` pixels on every side and crop a random H x W window, the
    offsets (dy, dx) uniform in {0, ..., 2 * pad} (torchvision `RandomCrop(H, padding=pad)`).
    pad=0 returns the images unchanged."""
    if pad == 0:
        return images
    batch, height, width, channels = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(key, (batch, 2), 0, 2 * pad + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

    return jax.vmap(crop)(padded, offsets)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
    """Mirror each image left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, images[:, :, ::-1], images)


def normalize(images: jax.Array, mean, std) -> jax.Array:
    """(x - mean) / std per channel, float32, with x = images / 255 for uint8 images and
    x = images for float images (already in [0, 1]); `mean` and `std` in [0, 1] units."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    x = images.astype(jnp.float32)
    if images.dtype == jnp.uint8:
        x = x / 255
    return (x - mean) / std


def cutout(key: jax.Array, images: jax.Array, size: int) -> jax.Array:
    """Cutout (DeVries & Taylor, 2017): zero a size x size square per image whose centre
    (cy, cx) is uniform over the pixels; the square spans rows [cy - size // 2, cy - size // 2 +
    size) and the same for columns, clipped at the borders (so it may be smaller, never moved).
    Apply after normalization so the square is 0, the dataset mean. size=0 is the identity."""
    if size == 0:
        return images
    batch, height, width, _ = images.shape
    key_y, key_x = jax.random.split(key)
    top = jax.random.randint(key_y, (batch, 1, 1), 0, height) - size // 2
    left = jax.random.randint(key_x, (batch, 1, 1), 0, width) - size // 2
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return jnp.where(inside[..., None], jnp.zeros((), images.dtype), images)


_cutout = cutout  # `standard`'s keyword argument `cutout` shadows the function


def standard(
    key: jax.Array, batch: dict, *, mean, std, pad: int = 4, flip: bool = True, cutout: int = 0,
    policy: Callable | None = None,
) -> dict:
    """The standard CIFAR augmentation of a batch {"image": uint8 [B, H, W, C], ...}: random crop
    with zero padding `pad`, random horizontal flip (if `flip`), then the augmentation `policy`
    (a `(key, img) -> img` callable from `jaxaug.policies`, on floats in [0, 1], one key per
    image), normalization with `mean`/`std`, then Cutout of side `cutout`. This is the order of
    the TrivialAugment and torchvision CIFAR pipelines. Returns the batch with "image" replaced
    by the float32 result; other entries pass through untouched. pad=0, flip=False, policy=None
    and cutout=0 disable those steps."""
    crop_key, flip_key, policy_key, cutout_key = jax.random.split(key, 4)
    images = random_crop(crop_key, batch["image"], pad)
    if flip:
        images = random_flip(flip_key, images)
    if policy is not None:
        keys = jax.random.split(policy_key, images.shape[0])
        images = jax.vmap(policy)(keys, to_float(images))
    images = _cutout(cutout_key, normalize(images, mean, std), cutout)
    return {**batch, "image": images}
