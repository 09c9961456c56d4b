"""Remaining ops: identity, cutout, sample pairing, Gaussian noise."""

import jax
import jax.numpy as jnp

from jaxaug.ops.validate import check_image, check_shape


def identity(img):
    """Return img unchanged."""
    check_image("identity", img)
    return img


def cutout(img, center, size, fill=0.5):
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


def sample_pairing(img, other, weight):
    """SamplePairing: `Image.blend(img, other, weight)` = (1 - weight) * img + weight * other."""
    check_image("sample_pairing", img)
    check_image("sample_pairing", other)
    if other.shape != img.shape:
        raise ValueError(f"sample_pairing: other must have img's shape {img.shape}, got {other.shape}")
    weight = jnp.asarray(weight, img.dtype)
    return img + weight * (other - img)


def gaussian_noise(key, img, std):
    """Add N(0, std^2) noise per pixel and channel, clip to [0, 1]."""
    check_image("gaussian_noise", img)
    noise = jax.random.normal(key, img.shape, img.dtype)
    return jnp.clip(img + jnp.asarray(std, img.dtype) * noise, 0.0, 1.0)
