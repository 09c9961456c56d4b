"""Standard image augmentation in pure JAX: random crop, horizontal flip, an optional policy,
Cutout, on images in [0, 1] (the networks normalize them as their first operation,
`jaxaug.models.Normalized`).

All functions act on a batch [B, H, W, C], draw independent randomness per image from `key`, and
contain no Python control flow on traced values, so they work under `jit` and `vmap`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxaug import ops, policies
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


def cutout(key: jax.Array, images: jax.Array, size: int, fill: ArrayLike = 0.0) -> jax.Array:
    """Cutout (DeVries & Taylor, 2017): a size x size square per image, set to ``fill`` (a scalar or
    one value per channel), whose centre (cy, cx) is uniform over the pixels; the square spans rows
    [cy - size // 2, cy - size // 2 + size) and the same for columns, clipped at the borders (so it
    may be smaller, never moved). The reference zeroes the square after normalization, so its fill
    is the dataset mean: pass the mean in [0, 1] for that. size=0 is the identity."""
    if size == 0:
        return images
    batch, height, width, _ = images.shape
    key_y, key_x = jax.random.split(key)
    top = jax.random.randint(key_y, (batch, 1, 1), 0, height) - size // 2
    left = jax.random.randint(key_x, (batch, 1, 1), 0, width) - size // 2
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return jnp.where(inside[..., None], jnp.asarray(fill, images.dtype), images)


_cutout = cutout  # `standard`'s keyword argument `cutout` shadows the function


CROPS = ("pad", "random_resized")


def standard(
    key: jax.Array, batch: dict, *, pad: int = 4, flip: bool = True, cutout: int = 0,
    cutout_fill: ArrayLike = 0.0, policy: Callable | None = None, crop: str = "pad",
    scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
    same_on_batch: bool = False,
) -> dict:
    """The standard augmentation of a batch {"image": uint8 [B, H, W, C], ...}: a random crop,
    random horizontal flip (if `flip`), conversion to float32 in [0, 1], the augmentation
    `policy` (a `(key, img) -> img` callable from `jaxaug.policies`, one key per image, or one
    key for the whole batch with `same_on_batch`: every image then gets the same draw), then
    Cutout of side `cutout` filled with `cutout_fill` (the dataset mean, as the reference's zero
    after normalization). The crop: ``"pad"`` (CIFAR's: zero padding `pad`, then an H x W window)
    or ``"random_resized"`` (ImageNet's: `ops.random_resized_crop` with `scale` and `ratio`, back
    to H x W, bilinear). This is the order of the TrivialAugment and torchvision pipelines.
    Returns the batch with "image" replaced by the result; other entries pass through untouched.
    pad=0, flip=False, policy=None and cutout=0 disable those steps."""
    if crop not in CROPS:
        raise ValueError(f"augment.standard: crop must be one of {CROPS}, got {crop!r}")
    crop_key, flip_key, policy_key, cutout_key = jax.random.split(key, 4)
    if crop == "pad":
        images = to_float(random_crop(crop_key, batch["image"], pad))
    else:
        images = to_float(batch["image"])
        keys = jax.random.split(crop_key, images.shape[0])
        images = jax.vmap(lambda k, img: ops.random_resized_crop(
            k, img, img.shape[:2], scale=scale, ratio=ratio))(keys, images)
    if flip:
        images = random_flip(flip_key, images)
    if policy is not None and same_on_batch:
        images = policies.same_on_batch(policy)(policy_key, images)
    elif policy is not None:
        keys = jax.random.split(policy_key, images.shape[0])
        images = jax.vmap(policy)(keys, images)
    return {**batch, "image": _cutout(cutout_key, images, cutout, cutout_fill)}
