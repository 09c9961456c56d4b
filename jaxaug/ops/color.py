"""PIL `ImageEnhance` ops: blend with a degenerate image, clipped to [0, 1].

out = clip(degenerate + factor * (img - degenerate), 0, 1), i.e. `Image.blend(degenerate, img,
factor)`. factor 1 is the identity, 0 the degenerate image, > 1 extrapolates. Where PIL rounds the
degenerate image to 8-bit levels (grayscale, its mean, the smoothed image), the forward value is
rounded the same way and the gradient flows through the unrounded value (straight-through), so
the ops stay differentiable w.r.t. img and factor. PIL truncates the blended value to an integer
where `to_uint8` rounds, so results agree with PIL within one level. `hue_shift` rotates the HSV hue instead.
"""

import jax
import jax.numpy as jnp

from jaxaug.ops.validate import check_image


def _blend(degenerate, img, factor):
    factor = jnp.asarray(factor, img.dtype)
    return jnp.clip(degenerate + factor * (img - degenerate), 0.0, 1.0).astype(img.dtype)


def _st_round(x):
    """Round to 8-bit levels in the forward pass; identity gradient."""
    return x + jax.lax.stop_gradient(jnp.round(x * 255.0) / 255.0 - x)


def grayscale(img: jax.Array) -> jax.Array:
    """PIL convert("L") as float: L = (299 R + 587 G + 114 B) / 1000, rounded to 8-bit levels in the
    forward pass exactly as PIL computes it ((19595 R + 38470 G + 7471 B + 2**15) >> 16 on levels),
    straight-through gradient. Returns [H, W, 1]."""
    check_image("grayscale", img, channels=3)
    exact = img @ jnp.asarray([0.299, 0.587, 0.114], img.dtype)
    v = jnp.clip(jnp.round(img * 255.0), 0, 255).astype(jnp.int32)
    q = (v[..., 0] * 19595 + v[..., 1] * 38470 + v[..., 2] * 7471 + 0x8000) >> 16
    return (exact + jax.lax.stop_gradient(q.astype(img.dtype) / 255.0 - exact))[..., None]


def brightness(img: jax.Array, factor: float | jax.Array) -> jax.Array:
    """PIL `ImageEnhance.Brightness`: blend with black, clip(factor * img, 0, 1)."""
    check_image("brightness", img)
    return _blend(jnp.zeros_like(img), img, factor)


def color(img: jax.Array, factor: float | jax.Array) -> jax.Array:
    """PIL `ImageEnhance.Color` (saturation): blend with the grayscale image L (see `grayscale`)."""
    check_image("color", img, channels=3)
    return _blend(grayscale(img), img, factor)


def mean_grey(img: jax.Array) -> jax.Array:
    """Mean of the grayscale image, rounded to a level as PIL's Contrast does (int(mean + 0.5));
    straight-through rounding."""
    mean = jnp.mean(grayscale(img))
    return mean + jax.lax.stop_gradient(jnp.floor(mean * 255.0 + 0.5) / 255.0 - mean)


def contrast(img: jax.Array, factor: float | jax.Array) -> jax.Array:
    """PIL `ImageEnhance.Contrast`: blend with a constant image at `mean_grey(img)`."""
    check_image("contrast", img, channels=3)
    return _blend(jnp.broadcast_to(mean_grey(img), img.shape), img, factor)


def smooth(img: jax.Array) -> jax.Array:
    """PIL `ImageFilter.SMOOTH`: 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 on the interior,
    border pixels copied unchanged; rounded to levels forward (straight-through)."""
    check_image("smooth", img)
    h, w, _ = img.shape
    if h < 3 or w < 3:
        return img
    s = sum(img[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    interior = _st_round((s + 4.0 * img[1:-1, 1:-1]) / 13.0)
    # Padding and a select, not `.at[].set`: a scatter is ten times slower under vmap on CPU.
    border = jnp.pad(jnp.zeros((h - 2, w - 2, 1), bool), ((1, 1), (1, 1), (0, 0)),
                     constant_values=True)
    return jnp.where(border, img, jnp.pad(interior, ((1, 1), (1, 1), (0, 0))))


def sharpness(img: jax.Array, factor: float | jax.Array) -> jax.Array:
    """PIL `ImageEnhance.Sharpness`: blend with `smooth(img)`; factor > 1 sharpens, < 1 blurs."""
    check_image("sharpness", img)
    return _blend(smooth(img), img, factor)


def hue_shift(img: jax.Array, shift: float | jax.Array) -> jax.Array:
    """Rotate the hue by `shift` turns in the HSV hexcone model of Python's `colorsys`, keeping
    saturation and value: hue' = (hue + shift) mod 1, so shift 0 (or any integer) is the identity.

    With M = max(r, g, b), C = M - min(r, g, b) (the chroma, V * S) and the hue in sixths
    H6 = (g - b) / C if r = M, 2 + (b - r) / C if g = M, else 4 + (r - g) / C (0 for grey),
    the output channels are out_n = M - C * clip(min(k, 4 - k), 0, 1) with
    k = (n + H6 + 6 * shift) mod 6 and n = 5, 3, 1 for R, G, B (hsv_to_rgb in closed form).
    Only RGB images. Differentiable w.r.t. img and shift almost everywhere; grey pixels (C = 0)
    are unchanged and have finite gradients.
    """
    check_image("hue_shift", img, channels=3)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    top = jnp.max(img, axis=-1)
    chroma = top - jnp.min(img, axis=-1)
    # A safe denominator keeps grey pixels' hue (and its gradient) finite; their numerators are 0.
    safe = jnp.where(chroma > 0, chroma, 1.0)
    h6 = jnp.where(r == top, (g - b) / safe,
                   jnp.where(g == top, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    shift = jnp.asarray(shift, img.dtype)
    k = jnp.mod(jnp.asarray([5.0, 3.0, 1.0], img.dtype) + (h6 + 6.0 * shift)[..., None], 6.0)
    return (top[..., None] - chroma[..., None] * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
            ).astype(img.dtype)


def _jitter_range(name, value, center, bound, clip_first_on_zero):
    """torchvision ColorJitter's `_check_input`: a number v >= 0 gives [center - v, center + v]
    (the low end clipped at 0 for the enhance factors), a pair is taken as is; either must lie in
    `bound`. None where the range is the single point `center` (the op is skipped)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"color_jitter: {name} must be non-negative, got {value!r}")
        lo, hi = center - float(value), center + float(value)
        if clip_first_on_zero:
            lo = max(lo, 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ValueError(f"color_jitter: {name} must be a number or a pair (lo, hi), got {value!r}")
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"color_jitter: {name} range ({lo}, {hi}) must lie in {bound}")
    return None if lo == hi == center else (lo, hi)


def _jitter_ranges(brightness, contrast, saturation, hue):
    inf = float("inf")
    return (_jitter_range("brightness", brightness, 1.0, (0.0, inf), True),
            _jitter_range("contrast", contrast, 1.0, (0.0, inf), True),
            _jitter_range("saturation", saturation, 1.0, (0.0, inf), True),
            _jitter_range("hue", hue, 0.0, (-0.5, 0.5), False))


def _jitter_params(key, ranges):
    """(order int32 [4], factors [4]): a uniform permutation of (brightness, contrast,
    saturation, hue) and each one's factor ~ U(range) (1, or 0 for hue, where skipped)."""
    lo = jnp.asarray([r[0] if r else (0.0 if i == 3 else 1.0) for i, r in enumerate(ranges)])
    hi = jnp.asarray([r[1] if r else (0.0 if i == 3 else 1.0) for i, r in enumerate(ranges)])
    # One draw (one threefry program to compile): the ranks of 4 iid uniforms are a uniform
    # permutation, the other 4 give the factors.
    u = jax.random.uniform(key, (8,))
    return jnp.argsort(u[:4]).astype(jnp.int32), lo + (hi - lo) * u[4:]


def _jitter_apply(img, order, factors, ranges):
    """Apply the enabled ops in `order`: four positions, each a lax.switch over the four ops
    (a skipped op is the identity), so the order is traced and nothing branches on it."""
    ops = (brightness, contrast, color, hue_shift)
    branches = [(lambda x, f, op=op: op(x, f)) if r else (lambda x, f: x)
                for op, r in zip(ops, ranges)]
    factors = factors.astype(img.dtype)
    for position in range(4):
        index = order[position]
        img = jax.lax.switch(index, branches, img, factors[index])
    return img


def color_jitter(key: jax.Array, img: jax.Array, brightness: float | tuple[float, float] = 0.0,
                 contrast: float | tuple[float, float] = 0.0,
                 saturation: float | tuple[float, float] = 0.0,
                 hue: float | tuple[float, float] = 0.0) -> jax.Array:
    """torchvision `ColorJitter(brightness, contrast, saturation, hue)` (v0.15-0.20): each
    enabled adjustment gets a factor, brightness/contrast/saturation ~ U[max(0, 1 - v), 1 + v]
    (or U[lo, hi] for a pair), hue ~ U[-v, v] with v <= 0.5 (a pair within [-0.5, 0.5]), and the
    four are applied in a uniformly random order; 0 (or a range that is only 1, resp. 0) skips
    the adjustment.

    The adjustments are `brightness`, `contrast`, `color` (saturation) and `hue_shift`: those of
    torchvision's PIL-image path (ImageEnhance, whose grey levels 0.299 R + 0.587 G + 0.114 B and
    contrast mean are rounded to 8-bit levels forward) for the first three; torchvision's tensor
    path blends with unrounded grey (0.2989 R + 0.587 G + 0.114 B), a difference below half a
    level. The hue rotation is the tensor path's float HSV (PIL's path quantizes hue to 8 bits).
    Ranges are static; the order and factors are traced; differentiable w.r.t. img (the rounded
    grey is straight-through). RGB only where contrast, saturation or hue is enabled.
    """
    check_image("color_jitter", img)
    ranges = _jitter_ranges(brightness, contrast, saturation, hue)
    if any(ranges[1:]):
        check_image("color_jitter", img, channels=3)
    if not any(ranges):
        return img
    order, factors = _jitter_params(key, ranges)
    return _jitter_apply(img, order, factors, ranges)
