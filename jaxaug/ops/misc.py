"""Remaining ops: identity, cutout, random erasing, sample pairing, Gaussian noise."""

import math

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


def random_erasing(key: jax.Array, img: jax.Array, *, scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3),
                   fill: float | jax.Array | None = None) -> jax.Array:
    """Random Erasing (Zhong et al. 2017): overwrite one random axis-aligned rectangle.

    The area fraction a ~ U(scale) and the aspect ratio r (height / width) ~ logU(ratio) give
    height = round(sqrt(a H W r)) and width = round(sqrt(a H W / r)), each clipped to [1, H] and
    [1, W] (torchvision instead retries up to 10 times for a rectangle that fits, then keeps the
    image); the top-left corner is uniform among the positions where the rectangle fits. The
    rectangle gets `fill` (scalar or per channel) or, with fill=None, independent U[0, 1) noise
    per pixel and channel. scale and ratio are static; differentiable w.r.t. img.
    """
    check_image("random_erasing", img)
    _check_interval("scale", scale, 1.0)
    _check_interval("ratio", ratio, float("inf"))
    h, w, c = img.shape
    k_area, k_ratio, k_top, k_left, k_noise = jax.random.split(key, 5)
    area = jax.random.uniform(k_area, (), minval=scale[0], maxval=scale[1]) * (h * w)
    aspect = jnp.exp(jax.random.uniform(k_ratio, (), minval=math.log(ratio[0]),
                                        maxval=math.log(ratio[1])))
    height = jnp.clip(jnp.round(jnp.sqrt(area * aspect)), 1, h).astype(jnp.int32)
    width = jnp.clip(jnp.round(jnp.sqrt(area / aspect)), 1, w).astype(jnp.int32)
    top = jax.random.randint(k_top, (), 0, h - height + 1)
    left = jax.random.randint(k_left, (), 0, w - width + 1)
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    if fill is None:
        values = jax.random.uniform(k_noise, img.shape, img.dtype)
    else:
        values = jnp.broadcast_to(jnp.asarray(fill, img.dtype), (c,))
    return jnp.where(inside[..., None], values, img)


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
