"""Standard image augmentation in pure JAX: random crop, horizontal flip, an optional policy,
Cutout, on images in [0, 1] (the networks normalize them as their first operation,
`jaxaug.models.Normalized`).

All functions act on a batch [B, H, W, C], draw independent randomness per image from `key`, and
contain no Python control flow on traced values, so they work under `jit` and `vmap`.

Each random step is a sampler (key -> parameters) and an applier (parameters, images -> images).
`sample_standard` draws every parameter of `standard` as a pytree of arrays, and `apply_standard`
applies them here; `jaxaug.data.host_augment` applies the same pytree with numpy and Pillow, so
both sides share one sampler.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxaug import policies
from jaxaug.ops.crop import crop_box, resized_crop
from jaxaug.ops.point import to_float


def crop_offsets(key: jax.Array, batch_size: int, pad: int) -> jax.Array:
    """int32 [B, 2]: the (dy, dx) of `random_crop`, each uniform in {0, ..., 2 * pad}."""
    return jax.random.randint(key, (batch_size, 2), 0, 2 * pad + 1)


def pad_crop(images: jax.Array, offsets: jax.Array, pad: int) -> jax.Array:
    """Zero-pad each image by `pad` and take the H x W window at its `offsets` (dy, dx)."""
    if pad == 0:
        return images
    _, height, width, channels = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

    return jax.vmap(crop)(padded, offsets)


def random_crop(key: jax.Array, images: jax.Array, pad: int = 4) -> jax.Array:
    """Zero-pad each image by `pad` pixels on every side and crop a random H x W window, the
    offsets (dy, dx) uniform in {0, ..., 2 * pad} (torchvision `RandomCrop(H, padding=pad)`).
    pad=0 returns the images unchanged."""
    if pad == 0:
        return images
    return pad_crop(images, crop_offsets(key, images.shape[0], pad), pad)


def flip_flags(key: jax.Array, batch_size: int) -> jax.Array:
    """bool [B]: which images `random_flip` mirrors, each with probability 1/2."""
    return jax.random.bernoulli(key, 0.5, (batch_size,))


def flip(images: jax.Array, flags: jax.Array) -> jax.Array:
    """Mirror left-right the images whose flag is set."""
    return jnp.where(flags[:, None, None, None], images[:, :, ::-1], images)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
    """Mirror each image left-right with probability 1/2."""
    return flip(images, flip_flags(key, images.shape[0]))


def cutout_centers(key: jax.Array, batch_size: int, height: int, width: int) -> jax.Array:
    """int32 [B, 2]: the (cy, cx) of `cutout`, uniform over the pixels."""
    key_y, key_x = jax.random.split(key)
    return jnp.stack([jax.random.randint(key_y, (batch_size,), 0, height),
                      jax.random.randint(key_x, (batch_size,), 0, width)], axis=1)


def cutout_at(images: jax.Array, centers: jax.Array, size: int, fill: ArrayLike = 0.0
              ) -> jax.Array:
    """`cutout` with the squares' centres (cy, cx) given: rows [cy - size // 2,
    cy - size // 2 + size) and the same for columns, clipped at the borders."""
    _, height, width, _ = images.shape
    top = centers[:, 0, None, None] - size // 2
    left = centers[:, 1, None, None] - size // 2
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return jnp.where(inside[..., None], jnp.asarray(fill, images.dtype), images)


def cutout(key: jax.Array, images: jax.Array, size: int, fill: ArrayLike = 0.0) -> jax.Array:
    """Cutout (DeVries & Taylor, 2017): a size x size square per image, set to ``fill`` (a scalar or
    one value per channel), whose centre (cy, cx) is uniform over the pixels; the square spans rows
    [cy - size // 2, cy - size // 2 + size) and the same for columns, clipped at the borders (so it
    may be smaller, never moved). The reference zeroes the square after normalization, so its fill
    is the dataset mean: pass the mean in [0, 1] for that. size=0 is the identity."""
    if size == 0:
        return images
    batch, height, width, _ = images.shape
    return cutout_at(images, cutout_centers(key, batch, height, width), size, fill)


CROPS = ("pad", "random_resized")


def sample_standard(
    key: jax.Array, batch_size: int, image_shape: tuple[int, ...], *, pad: int = 4,
    flip: bool = True, cutout: int = 0, policy: Callable | None = None, crop: str = "pad",
    scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
    same_on_batch: bool = False,
) -> dict:
    """Every random choice of `standard` for a batch of `batch_size` images of `image_shape`
    ([H, W] or [H, W, C]; both static), the arguments as there: a dict with, per enabled step,
    ``"offsets"`` (int32 [B, 2], `crop_offsets`; crop "pad" with pad > 0) or ``"box"`` (int32
    [B, 4] (top, left, h, w), `jaxaug.ops.crop.crop_box`; crop "random_resized"), ``"flip"``
    (bool [B]),
    ``"policy"`` (a `policies.Policy`: its `sample_steps` per image, [B, ...] each; any other
    callable: its key, one per image [B] or one for the batch), ``"cutout"`` (int32 [B, 2]
    centres). `key` is split into (crop, flip, policy, cutout) keys; the crop box and the policy
    steps of image i come from the i-th of `batch_size` keys split from theirs (with
    `same_on_batch`, the policy key itself for every image)."""
    if crop not in CROPS:
        raise ValueError(f"augment.standard: crop must be one of {CROPS}, got {crop!r}")
    height, width = image_shape[:2]
    crop_key, flip_key, policy_key, cutout_key = jax.random.split(key, 4)
    params = {}
    if crop == "pad" and pad > 0:
        params["offsets"] = crop_offsets(crop_key, batch_size, pad)
    elif crop == "random_resized":
        params["box"] = jax.vmap(lambda k: crop_box(k, height, width, scale, ratio))(
            jax.random.split(crop_key, batch_size))
    if flip:
        params["flip"] = flip_flags(flip_key, batch_size)
    if isinstance(policy, policies.Policy) and same_on_batch:
        steps = policy.sample_steps(policy_key, image_shape)
        params["policy"] = jax.tree.map(
            lambda a: jnp.broadcast_to(a, (batch_size, *a.shape)), steps)
    elif isinstance(policy, policies.Policy):
        params["policy"] = jax.vmap(policy.sample_steps, in_axes=(0, None))(
            jax.random.split(policy_key, batch_size), image_shape)
    elif policy is not None:
        params["policy"] = policy_key if same_on_batch else jax.random.split(
            policy_key, batch_size)
    if cutout:
        params["cutout"] = cutout_centers(cutout_key, batch_size, height, width)
    return params


def apply_standard(params: dict, images: jax.Array, *, pad: int = 4, cutout: int = 0,
                   cutout_fill: ArrayLike = 0.0, policy: Callable | None = None,
                   same_on_batch: bool = False) -> jax.Array:
    """Apply the parameters of `sample_standard` to uint8 images [B, H, W, C] (the arguments as
    there): float32 images in [0, 1]."""
    if "offsets" in params:
        images = to_float(pad_crop(images, params["offsets"], pad))
    elif "box" in params:
        images = to_float(images)
        images = jax.vmap(lambda img, box: resized_crop(img, box, img.shape[:2]))(
            images, params["box"])
    else:
        images = to_float(images)
    if "flip" in params:
        images = flip(images, params["flip"])
    if isinstance(policy, policies.Policy):
        images = jax.vmap(policy.apply_sampled)(images, params["policy"])
    elif policy is not None and same_on_batch:
        images = policies.same_on_batch(policy)(params["policy"], images)
    elif policy is not None:
        images = jax.vmap(policy)(params["policy"], images)
    if "cutout" in params:
        images = cutout_at(images, params["cutout"], cutout, cutout_fill)
    return images


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
    pad=0, flip=False, policy=None and cutout=0 disable those steps. It is `apply_standard` of
    `sample_standard`; `jaxaug.data.host_augment.host_standard` is the same on the host."""
    images = batch["image"]
    params = sample_standard(key, images.shape[0], images.shape[1:], pad=pad, flip=flip,
                             cutout=cutout, policy=policy, crop=crop, scale=scale, ratio=ratio,
                             same_on_batch=same_on_batch)
    return {**batch, "image": apply_standard(params, images, pad=pad, cutout=cutout,
                                             cutout_fill=cutout_fill, policy=policy,
                                             same_on_batch=same_on_batch)}


def settings(augment_config, cutout_fill: ArrayLike, cutout: bool = True) -> dict:
    """The keyword arguments of `standard` (and `host_augment.host_standard`) that
    ``config.augment`` sets: crop, flip, the named policy (if any), Cutout filled with
    ``cutout_fill`` unless ``cutout`` is False."""
    c = augment_config
    policy = policies.get(c.policy, num_ops=c.num_ops, magnitude=c.magnitude) if c.policy else None
    return {"pad": c.pad, "flip": c.flip, "cutout": c.cutout if cutout else 0,
            "cutout_fill": cutout_fill, "policy": policy, "crop": c.crop,
            "scale": tuple(c.crop_scale), "ratio": tuple(c.crop_ratio),
            "same_on_batch": c.same_on_batch}
