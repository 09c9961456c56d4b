"""Remaining ops: identity, cutout, random erasing, sample pairing, Gaussian noise."""

import math
from typing import Literal, get_args

import jax
import jax.numpy as jnp

from jaxaug.ops.validate import check_image, check_shape


def identity(img: jax.Array) -> jax.Array:
    """Return img unchanged."""
    check_image("identity", img)
    return img


def cutout(img: jax.Array, center: tuple[int, int] | jax.Array, size: int | jax.Array,
           fill: float | jax.Array = 0.5) -> jax.Array:
    """Fill a square patch with `fill` (scalar or per channel): rows [cy - size // 2, cy + size // 2)
    and columns [cx - size // 2, cx + size // 2) clipped to the image, center = (cy, cx) in pixels
    (the AutoAugment reference's cutout mask). center and size may be traced integers."""
    check_image("cutout", img)
    check_shape("cutout", "center", center, ((2,),))
    h, w, c = img.shape
    center = jnp.asarray(center, jnp.int32)
    half = jnp.asarray(size, jnp.int32) // 2
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    inside = ((rows >= center[0] - half) & (rows < center[0] + half)
              & (cols >= center[1] - half) & (cols < center[1] + half))
    fill = jnp.broadcast_to(jnp.asarray(fill, img.dtype), (c,))
    return jnp.where(inside[..., None], fill, img)


def _check_interval(name, bounds, upper):
    """Static check that `bounds` is a pair (lo, hi) of numbers with 0 < lo <= hi <= upper."""
    try:
        lo, hi = (float(x) for x in bounds)
    except (TypeError, ValueError):
        lo = hi = float("nan")  # fails the comparison below
    if not 0 < lo <= hi <= upper:
        raise ValueError(
            f"random_erasing: {name} must be a pair (lo, hi) with 0 < lo <= hi <= {upper}, "
            f"got {bounds!r}"
        )


#: timm's erasing modes (RandomErasing `mode`), and this library's own rule ("fill").
EraseMode = Literal["fill", "const", "rand", "pixel"]
#: timm's IMAGENET_DEFAULT_MEAN / _STD: the colour a normalized 0 and unit noise stand for.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: timm's tries per rectangle.
ERASE_ATTEMPTS = 10


def _rectangle_mask(h, w, top, left, height, width):
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    return (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)


def _fill_erasing(key, img, scale, ratio, fill):
    """mode="fill": one rectangle, its sides clipped to the image (no retries)."""
    h, w, c = img.shape
    k_area, k_ratio, k_top, k_left, k_noise = jax.random.split(key, 5)
    area = jax.random.uniform(k_area, (), minval=scale[0], maxval=scale[1]) * (h * w)
    aspect = jnp.exp(jax.random.uniform(k_ratio, (), minval=math.log(ratio[0]),
                                        maxval=math.log(ratio[1])))
    height = jnp.clip(jnp.round(jnp.sqrt(area * aspect)), 1, h).astype(jnp.int32)
    width = jnp.clip(jnp.round(jnp.sqrt(area / aspect)), 1, w).astype(jnp.int32)
    top = jax.random.randint(k_top, (), 0, h - height + 1)
    left = jax.random.randint(k_left, (), 0, w - width + 1)
    inside = _rectangle_mask(h, w, top, left, height, width)
    if fill is None:
        values = jax.random.uniform(k_noise, img.shape, img.dtype)
    else:
        values = jnp.broadcast_to(jnp.asarray(fill, img.dtype), (c,))
    return jnp.where(inside[..., None], values, img)


def _timm_erasing(key, img, scale, ratio, mode, mean, std, probability, min_count, max_count):
    """timm's `RandomErasing._erase`: with probability `probability`, count ~ U{min..max_count}
    rectangles, each the first of 10 tries that fits, painted in turn."""
    h, w, c = img.shape
    boxes = max_count * (2 * ERASE_ATTEMPTS + 2)
    noise = {"const": 0, "rand": max_count * c, "pixel": max_count * h * w * c}[mode]
    # ONE draw for everything (each jax.random call is a threefry program to compile): per
    # rectangle 10 areas, 10 aspects and a corner; the count; the erase test; the noise.
    u = jax.random.uniform(key, (boxes + 2 + noise,), img.dtype)
    draws = u[:boxes].reshape(max_count, -1)
    count = min_count + jnp.minimum(jnp.floor(u[boxes] * (max_count - min_count + 1)),
                                    max_count - min_count)
    mean = jnp.broadcast_to(jnp.asarray(mean, img.dtype), (c,))
    std = jnp.broadcast_to(jnp.asarray(std, img.dtype), (c,))
    if mode == "const":
        values = jnp.broadcast_to(mean, (max_count, 1, 1, c))
    else:
        # N(0, 1) by inversion; the half-step shift keeps u + 2^-24 inside (0, 1).
        z = math.sqrt(2.0) * jax.scipy.special.erfinv(2.0 * (u[boxes + 2:] + 2.0**-24) - 1.0)
        shape = (max_count, 1, 1, c) if mode == "rand" else (max_count, h, w, c)
        values = jnp.clip(mean + std * z.reshape(shape), 0.0, 1.0)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    out = img
    for slot in range(max_count):
        draw = draws[slot]
        area = (scale[0] + (scale[1] - scale[0]) * draw[:ERASE_ATTEMPTS]) * (h * w) / count
        aspect = jnp.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0])
                         * draw[ERASE_ATTEMPTS:2 * ERASE_ATTEMPTS])
        heights = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
        widths = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
        fits = (widths < w) & (heights < h)  # timm's test: strictly smaller than the image
        first = jnp.argmax(fits)
        height, width = heights[first], widths[first]
        top = jnp.minimum(jnp.floor(draw[-2] * (h - height + 1)).astype(jnp.int32), h - height)
        left = jnp.minimum(jnp.floor(draw[-1] * (w - width + 1)).astype(jnp.int32), w - width)
        inside = _rectangle_mask(h, w, top, left, height, width) & fits[first] & (slot < count)
        out = jnp.where(inside[..., None], values[slot], out)
    if probability < 1.0:
        out = jnp.where(u[boxes + 1] < probability, out, img)
    return out


def random_erasing(key: jax.Array, img: jax.Array, *, scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3),
                   fill: float | jax.Array | None = None, mode: EraseMode = "fill",
                   mean: float | tuple[float, ...] = IMAGENET_MEAN,
                   std: float | tuple[float, ...] = IMAGENET_STD, probability: float = 1.0,
                   min_count: int = 1, max_count: int | None = None) -> jax.Array:
    """Random Erasing (Zhong et al. 2017): overwrite random axis-aligned rectangles.

    Every mode draws a rectangle from an area fraction a ~ U(scale) and an aspect ratio
    r = height / width with log r ~ U(log ratio): height = round(sqrt(a H W r)),
    width = round(sqrt(a H W / r)) (round half to even), its top-left corner uniform among the
    positions where it fits. The image is erased with probability `probability` (1 by default;
    timm's and torchvision's default is 0.5).

    * mode="fill" (default, this library's rule since before timm's modes): one rectangle whose
      sides are clipped to [1, H] and [1, W] (torchvision and timm retry instead), filled with
      `fill` (scalar or per channel) or, for fill=None, U[0, 1) noise per pixel and channel.
    * mode="const" / "rand" / "pixel": timm's `RandomErasing` (timm 0.9-1.0; min_area, max_area,
      min_aspect, max_aspect = scale, ratio; mode, min_count, max_count as named):
      count ~ U{min_count..max_count} rectangles (max_count None: min_count), each of area
      fraction a / count, the first of 10 tries with height < H and width < W (none: that
      rectangle is skipped), painted in turn. timm erases images already normalized by
      (mean, std), so its 0 and N(0, 1) values are `mean` and mean + std N(0, 1) on [0, 1]
      images: "const" fills `mean`, "rand" one N draw per channel, "pixel" one per pixel and
      channel; noise is clipped to [0, 1] (timm does not clip). mean and std default to
      ImageNet's (timm's IMAGENET_DEFAULT_MEAN / _STD).

    scale, ratio, mode, mean, std, probability and the counts are static; differentiable w.r.t.
    img.
    """
    op = "random_erasing"
    check_image(op, img)
    _check_interval("scale", scale, 1.0)
    _check_interval("ratio", ratio, float("inf"))
    if mode not in get_args(EraseMode):
        raise ValueError(f"{op}: mode must be one of {get_args(EraseMode)}, got {mode!r}")
    if not 0.0 <= float(probability) <= 1.0:
        raise ValueError(f"{op}: probability must be in [0, 1], got {probability!r}")
    max_count = min_count if max_count is None else max_count
    counts_ok = all(isinstance(n, int) and not isinstance(n, bool) for n in (min_count, max_count))
    if not counts_ok or not 1 <= min_count <= max_count:
        raise ValueError(f"{op}: min_count and max_count must be ints with 1 <= min_count <= "
                         f"max_count, got {min_count!r} and {max_count!r}")
    if mode == "fill":
        if max_count != 1:
            raise ValueError(f"{op}: mode='fill' erases one rectangle; max_count needs a timm "
                             f"mode ('const', 'rand' or 'pixel'), got {max_count!r}")
        out = _fill_erasing(key, img, scale, ratio, fill)
    else:
        if fill is not None:
            raise ValueError(f"{op}: fill is mode='fill''s value; mode {mode!r} fills `mean` "
                             "(plus std times normal noise)")
        c = img.shape[-1]
        check_shape(op, "mean", mean, ((), (c,)))
        check_shape(op, "std", std, ((), (c,)))
        return _timm_erasing(key, img, scale, ratio, mode, mean, std, probability, min_count,
                             max_count)
    if probability < 1.0:
        # A separate stream: the rectangle's draws stay those of probability 1.
        erase = jax.random.uniform(jax.random.fold_in(key, 1), ()) < probability
        out = jnp.where(erase, out, img)
    return out


def sample_pairing(img: jax.Array, other: jax.Array, weight: float | jax.Array) -> jax.Array:
    """SamplePairing: `Image.blend(img, other, weight)` = (1 - weight) * img + weight * other."""
    check_image("sample_pairing", img)
    check_image("sample_pairing", other)
    if other.shape != img.shape:
        raise ValueError(f"sample_pairing: other must have img's shape {img.shape}, got {other.shape}")
    weight = jnp.asarray(weight, img.dtype)
    return img + weight * (other - img)


def gaussian_noise(key: jax.Array, img: jax.Array, std: float | jax.Array) -> jax.Array:
    """Add N(0, std^2) noise per pixel and channel, clip to [0, 1]."""
    check_image("gaussian_noise", img)
    noise = jax.random.normal(key, img.shape, img.dtype)
    return jnp.clip(img + jnp.asarray(std, img.dtype) * noise, 0.0, 1.0)
