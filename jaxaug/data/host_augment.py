"""The standard augmentation on the host: `augment.standard`'s draws, applied with numpy and Pillow.

For input pipelines whose accelerator is busy or absent (``config.augment.where = "host"``), the
same augmentation runs in the data loader's worker processes, one batch per call, on uint8
images. The random choices come from `augment.sample_standard`, the sampler of the device path,
compiled once per settings and batch shape and run by JAX on the CPU; for the same key both sides
draw exactly the same crop offsets or boxes, flips, policy steps (ops, values, applied flags,
cutout centres) and Cutout centres. Only the applying differs:

* pad-crop, flip and Cutout: numpy, exactly the device's pixels (Cutout's fill is the 8-bit
  ``round(255 * cutout_fill)``, which the device's float fill rounds to).
* RandomResizedCrop: ``PIL.Image.crop(box).resize((W, H), BILINEAR)``, torchvision's PIL path.
  The box is drawn inside the H x W input and resized back to H x W, so it only upsamples, where
  the device's bilinear is Pillow's within one 8-bit level.
* Policies (`jaxaug.policies.Policy`: AutoAugment, RandAugment, TrivialAugment-Wide, timm's
  ``rand-...`` and ``trivialaugment``): each applied step by
  `jaxaug.policies.pil_reference` on the previous step's 8-bit output, the reference code's
  sequential semantics, with the policy's interpolation (nearest, or bilinear for timm) and fill.
  This is the device's ``fuse=False`` schedule up to Pillow's 8-bit rounding; the device's default
  ``fuse=True`` composes the geometric steps into one resampling, which for nearest warps and up
  to two steps (RandAugment N=2, AutoAugment, TrivialAugment) is the same order, and otherwise
  differs as measured in ``tests/test_host_augment.py`` and docs/architecture.md.
  ``straight_through`` changes gradients only, so the host runs such policies as they are.

What the host cannot run raises a ValueError naming it (`check_policy`): a policy that is not a
`Policy` (AugMix, ``augmix-...`` timm strings, any other callable: their draws are not
`Policy.sample_steps`) and images that are not RGB where Pillow applies a policy or a resized crop.

In worker processes, keep JAX off the accelerator: set ``JAX_PLATFORMS=cpu`` in the workers'
environment (or ``jax.config.update("jax_platforms", "cpu")`` before their first JAX call); the
sampler runs on the CPU device in any case.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike
from PIL import Image

from jaxaug import policies
from jaxaug.data import augment
from jaxaug.policies import pil_reference


def check_policy(policy: Callable | None) -> None:
    """Raise a ValueError naming the policy or op if the host cannot run ``policy``."""
    if policy is None:
        return
    if not isinstance(policy, policies.Policy):
        name = getattr(policy, "name", type(policy).__name__)
        raise ValueError(
            f"augment.where='host' cannot run policy {name!r} ({type(policy).__name__}): the host "
            "replays the steps of a jaxaug.policies.Policy (autoaugment_*, randaugment, "
            "trivial_augment_wide, timm rand-... and trivialaugment); AugMix and other callables "
            "run on the device only (augment.where='device')")
    for op in policy.op_names:
        if op not in pil_reference.OP_NAMES:
            raise ValueError(f"augment.where='host' cannot run policy {policy.name!r}: op {op!r} "
                             "has no Pillow implementation (jaxaug.policies.pil_reference)")


def _to_levels(fill, channels):
    """The 8-bit fill per channel of a fill in [0, 1] (scalar or per channel)."""
    levels = np.round(np.asarray(fill, np.float64) * 255).clip(0, 255).astype(np.uint8)
    return np.broadcast_to(levels, (channels,))


def _pad_crop(images, offsets, pad):
    _, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return np.stack([p[dy:dy + height, dx:dx + width] for p, (dy, dx) in zip(padded, offsets)])


def _policy_steps(steps, i, policy):
    """Image i's applied steps as pil_reference takes them: (op name, value, cutout centre)."""
    centers = steps.get("cutout_center")
    return [(policy.op_names[o], float(v),
             None if centers is None else tuple(int(c) for c in centers[i, t]))
            for t, (o, v, a) in enumerate(zip(steps["op_index"][i], steps["value"][i],
                                              steps["applied"][i])) if a]


def _pillow(images, params, policy):
    """Resized crop, flip and policy per image, kept as a PIL image from the first to the last."""
    _, height, width, _ = images.shape
    fill = None if policy is None else tuple(int(v) for v in _to_levels(policy.fill, 3))
    out = []
    for i, array in enumerate(images):
        img = Image.fromarray(array)
        if "box" in params:
            top, left, h, w = (int(v) for v in params["box"][i])
            img = img.crop((left, top, left + w, top + h)).resize(
                (width, height), Image.Resampling.BILINEAR)
        if "flip" in params and params["flip"][i]:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if policy is not None:
            img = pil_reference.apply_steps(img, _policy_steps(params["policy"], i, policy),
                                            interpolation=policy.interpolation, fill=fill)
        out.append(np.asarray(img))
    return np.stack(out)


def _cutout(images, centers, size, fill):
    _, height, width, channels = images.shape
    top = centers[:, 0, None, None] - size // 2
    left = centers[:, 1, None, None] - size // 2
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return np.where(inside[..., None], _to_levels(fill, channels), images)


def apply_params(params: dict, images: np.ndarray, *, pad: int = 4, cutout: int = 0,
                 cutout_fill: ArrayLike = 0.0, policy: policies.Policy | None = None
                 ) -> np.ndarray:
    """`augment.apply_standard` on the host: the numpy parameters of `augment.sample_standard`
    applied to uint8 images [B, H, W, C] with numpy and Pillow; uint8 images out."""
    if "offsets" in params:
        images = _pad_crop(images, params["offsets"], pad)
    if "box" in params or policy is not None:
        images = _pillow(images, params, policy)
    elif "flip" in params:
        images = np.where(params["flip"][:, None, None, None], images[:, :, ::-1], images)
    if "cutout" in params:
        images = _cutout(images, params["cutout"], cutout, cutout_fill)
    return np.ascontiguousarray(images)


def _jit_sampler(sampling):
    return jax.jit(functools.partial(augment.sample_standard, **sampling),
                   static_argnums=(1, 2))


@functools.lru_cache(maxsize=16)
def _sampler(sampling):
    """One jitted sampler per sampling settings, shared by the `HostAugment`s that have them."""
    return _jit_sampler(dict(sampling))


class HostAugment:
    """``(key, uint8 images [B, H, W, C]) -> uint8 images``: `augment.standard` with these
    settings (the same arguments) on the host. ``key`` is a JAX key (typed, or raw uint32 [2])
    or an int seed (``jax.random.key(seed)``). The settings are checked once (ValueError naming
    what the host cannot run); the sampler compiles once per batch shape, on the CPU. Pickling
    (to start worker processes) keeps the settings and rebuilds the rest: with plain pickle for
    `host_augment_fn`'s (a config), with cloudpickle for a `Policy` object's closures."""

    def __init__(self, *, pad: int = 4, flip: bool = True, cutout: int = 0,
                 cutout_fill: ArrayLike = 0.0, policy: Callable | None = None, crop: str = "pad",
                 scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), same_on_batch: bool = False):
        self._recipe = (functools.partial(
            HostAugment, pad=pad, flip=flip, cutout=cutout, cutout_fill=cutout_fill,
            policy=policy, crop=crop, scale=scale, ratio=ratio, same_on_batch=same_on_batch), ())
        check_policy(policy)
        if crop not in augment.CROPS:
            raise ValueError(f"host_augment: crop must be one of {augment.CROPS}, got {crop!r}")
        self._cpu = jax.devices("cpu")[0]
        sampling = dict(pad=pad, flip=flip, cutout=cutout, policy=policy, crop=crop,
                        scale=tuple(scale), ratio=tuple(ratio), same_on_batch=same_on_batch)
        try:
            self._sample = _sampler(tuple(sorted(sampling.items())))
        except TypeError:  # unhashable (a policy with an array fill): this instance's own
            self._sample = _jit_sampler(sampling)
        self._apply = functools.partial(apply_params, pad=pad, cutout=cutout,
                                        cutout_fill=cutout_fill, policy=policy)
        self._needs_rgb = policy is not None or crop == "random_resized"

    def __reduce__(self):
        return self._recipe

    def sample(self, key: Any, image_shape: tuple[int, ...]) -> dict:
        """The numpy parameters of `augment.sample_standard` for a batch of shape
        [B, H, W, C]: what ``self(key, images)`` applies."""
        with jax.default_device(self._cpu):
            key = jax.random.key(key) if isinstance(key, (int, np.integer)) else key
            key = jax.device_put(key, self._cpu)
            return jax.device_get(self._sample(key, image_shape[0], tuple(image_shape[1:])))

    def __call__(self, key: Any, images: np.ndarray, *, offset: int = 0,
                 global_batch_size: int | None = None) -> np.ndarray:
        """Augment ``images``. With ``global_batch_size``, they are rows ``offset`` to ``offset +
        len(images)`` of a global batch of that size (a process's shard): the draws are the global
        batch's, so the shards of all processes together are the global batch augmented at once."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"host_augment: images must be uint8 [B, H, W, C], got "
                             f"{images.dtype} {images.shape}")
        if self._needs_rgb and images.shape[-1] != 3:
            raise ValueError(f"host_augment: a policy or crop='random_resized' runs Pillow on RGB "
                             f"images, got {images.shape[-1]} channels")
        total = len(images) if global_batch_size is None else global_batch_size
        if not 0 <= offset <= total - len(images):
            raise ValueError(f"host_augment: rows {offset}..{offset + len(images)} do not lie in "
                             f"a global batch of {total}")
        params = self.sample(key, (total, *images.shape[1:]))
        if total != len(images):
            params = jax.tree.map(lambda a: a[offset:offset + len(images)], params)
        return self._apply(params, images)


@functools.lru_cache(maxsize=16)
def _cached(settings):
    return HostAugment(**dict(settings))


def _augmenter(settings):
    """The `HostAugment` of ``settings``, cached when they are hashable (a per-channel
    ``cutout_fill`` counts as a tuple)."""
    if "cutout_fill" in settings:
        fill = np.asarray(settings["cutout_fill"], np.float64)
        settings["cutout_fill"] = float(fill) if fill.ndim == 0 else tuple(fill.ravel().tolist())
    for name in ("scale", "ratio"):
        if name in settings:
            settings[name] = tuple(settings[name])
    try:
        return _cached(tuple(sorted(settings.items())))
    except TypeError:  # unhashable settings (a policy with an array fill): not cached
        return HostAugment(**settings)


def host_standard(key: Any, images: np.ndarray, **settings: Any) -> np.ndarray:
    """`augment.standard` on the host: ``HostAugment(**settings)(key, images)``, the
    `HostAugment` cached per settings. For the same key and settings, its draws are exactly those
    of ``augment.standard(key, {"image": images}, **settings)``; see the module docstring for how
    the pixels compare."""
    return _augmenter(settings)(key, images)


def host_augment_fn(augment_config, cutout_fill: ArrayLike, cutout: bool = True) -> HostAugment:
    """``(key, uint8 images) -> uint8 images``: ``config.augment`` on the host, the counterpart
    of `jaxaug.train.steps.augmentation` (same arguments: ``cutout_fill`` the dataset mean in
    [0, 1], ``cutout=False`` for methods that apply Cutout themselves), with the same draws for
    the same key. Build it once per worker process (or pickle it to them: it travels as the
    config) and call it on whole batches; the device then only converts to float
    (``jaxaug.ops.to_float``)."""
    cutout_fill = np.asarray(cutout_fill, np.float32)
    augmenter = HostAugment(**augment.settings(augment_config, cutout_fill, cutout))
    augmenter._recipe = (host_augment_fn, (augment_config, cutout_fill, cutout))
    return augmenter
