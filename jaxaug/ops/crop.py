"""Random resized crops: torchvision's `RandomResizedCrop` (v0.15-0.20 semantics of
`RandomResizedCrop.get_params`) and big_vision's Inception crop, as one resampling.

A crop box (top, left, h, w) in pixels and an output size (out_h, out_w) give the output-to-input
matrix [[w / out_w, 0, left], [0, h / out_h, top], [0, 0, 1]] in PIL coordinates (see
geometry.py): output pixel centre (x, y) samples the input at (left + x w / out_w,
top + y h / out_h), which is where `PIL.Image.resize((out_w, out_h), box=(left, top, left + w,
top + h))` and torch's `interpolate(crop, align_corners=False)` centre their filters.
"""

import math

import jax
import jax.numpy as jnp

from jaxaug.ops.geometry import Interpolation, _centres, _mat, _sample
from jaxaug.ops.validate import check_image, check_shape

#: torchvision's number of tries for a box that fits before the centre-crop fallback.
ATTEMPTS = 10


def _check_key(op, key):
    """One key (a typed key [] or a raw uint32 [2]); a batch needs jax.vmap."""
    check_shape(op, "key", key, ((),) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else ((2,),))


def _check_pair(op, name, bounds, upper):
    """Static check: `bounds` is (lo, hi) with 0 < lo <= hi <= upper."""
    try:
        lo, hi = (float(x) for x in bounds)
    except (TypeError, ValueError):
        lo = hi = float("nan")  # fails the comparison below
    if not 0 < lo <= hi <= upper:
        raise ValueError(f"{op}: {name} must be a pair (lo, hi) with 0 < lo <= hi <= {upper}, "
                         f"got {bounds!r}")
    return lo, hi


def _size(op, size, height, width):
    """(out_h, out_w) from an int, a pair, or None (the input's size)."""
    if size is None:
        return height, width
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in pair):
        raise ValueError(f"{op}: size must be a positive int or a pair of them, got {size!r}")
    return pair


def _fallback(height, width, ratio):
    """torchvision's fallback after 10 failed tries: the whole image, or its centre crop with the
    aspect ratio (w / h) clamped to `ratio`. Static: depends on the shape only."""
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _uniform_int(u, high):
    """An integer uniform on {0..high} from u ~ U[0, 1) (the min guards float rounding)."""
    return jnp.minimum(jnp.floor(u * (high + 1)).astype(jnp.int32), high)


def crop_box(key: jax.Array, height: int, width: int, scale: tuple[float, float] = (0.08, 1.0),
             ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> jax.Array:
    """torchvision `RandomResizedCrop.get_params` as int32 (top, left, h, w), all tries at once.

    Each of the 10 tries draws an area fraction a ~ U(scale) and an aspect ratio r = w / h with
    log r ~ U(log ratio), and proposes w = round(sqrt(a H W r)), h = round(sqrt(a H W / r)) (round
    half to even, as Python's round); the first try with 0 < w <= W and 0 < h <= H is kept, its
    corner uniform: top ~ U{0..H-h}, left ~ U{0..W-w}. If none fits, the centre crop of
    `_fallback`. Tries are drawn together and the first valid one picked with argmax, so nothing
    branches on traced values; draws are in float32 where torchvision uses float64.
    """
    scale = _check_pair("crop_box", "scale", scale, 1.0)
    ratio = _check_pair("crop_box", "ratio", ratio, math.inf)
    # One draw for everything: each jax.random call is a threefry program to compile.
    u = jax.random.uniform(key, (2 * ATTEMPTS + 2,))
    area = (scale[0] + (scale[1] - scale[0]) * u[:ATTEMPTS]) * (height * width)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = jnp.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[ATTEMPTS:2 * ATTEMPTS])
    ws = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    hs = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    fits = (ws > 0) & (ws <= width) & (hs > 0) & (hs <= height)
    first = jnp.argmax(fits)
    found = fits[first]
    f_top, f_left, f_h, f_w = _fallback(height, width, ratio)
    h = jnp.where(found, hs[first], f_h)
    w = jnp.where(found, ws[first], f_w)
    top = jnp.where(found, _uniform_int(u[-2], height - h), f_top)
    left = jnp.where(found, _uniform_int(u[-1], width - w), f_left)
    return jnp.stack([top, left, h, w]).astype(jnp.int32)


def _box_matrix(box, out_h, out_w):
    top, left, h, w = (box[i].astype(jnp.float32) for i in range(4))
    return _mat(w / out_w, 0.0, left, 0.0, h / out_h, top)


def random_resized_crop_matrix(key: jax.Array, height: int, width: int,
                               size: int | tuple[int, int] | None = None,
                               scale: tuple[float, float] = (0.08, 1.0),
                               ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> jax.Array:
    """The 3x3 output-to-input matrix of `random_resized_crop` for a height x width input and an
    output of `size` (default the input's size): [[w / out_w, 0, left], [0, h / out_h, top],
    [0, 0, 1]] for the box (top, left, h, w) of `crop_box`. With the default size it composes into
    `warp_chain` / `compose` like the other `*_matrix` builders (warp_chain keeps the image
    size). Resampling through the matrix reads the bilinear neighbours just outside the box
    (PIL's `Image.resize(box=...)`); `random_resized_crop` clamps them to the box (torchvision)."""
    op = "random_resized_crop_matrix"
    _check_key(op, key)
    scale = _check_pair(op, "scale", scale, 1.0)
    ratio = _check_pair(op, "ratio", ratio, math.inf)
    out_h, out_w = _size(op, size, height, width)
    return _box_matrix(crop_box(key, height, width, scale, ratio), out_h, out_w)


def _resized_crop(op, key, img, size, scale, ratio, interpolation):
    check_image(op, img)
    _check_key(op, key)
    scale = _check_pair(op, "scale", scale, 1.0)
    ratio = _check_pair(op, "ratio", ratio, math.inf)
    height, width, _ = img.shape
    _size(op, size, height, width)
    return _crop_resize(op, img, crop_box(key, height, width, scale, ratio), size, interpolation)


def resized_crop(img: jax.Array, box: jax.Array, size: int | tuple[int, int],
                 interpolation: Interpolation = "bilinear") -> jax.Array:
    """The box (top, left, h, w) of `img` (int32 [4], as `crop_box` draws it) resized to `size`:
    `random_resized_crop` with its box given (see there for the sampling and interpolation).
    `PIL.Image.crop((left, top, left + w, top + h)).resize(size, BILINEAR)` where that upsamples."""
    check_image("resized_crop", img)
    check_shape("resized_crop", "box", box, ((4,),))
    return _crop_resize("resized_crop", img, box, size, interpolation)


def _crop_resize(op, img, box, size, interpolation):
    height, width, _ = img.shape
    out_h, out_w = _size(op, size, height, width)
    m = _box_matrix(box, out_h, out_w).astype(img.dtype)
    xs, ys = _centres(out_h, out_w, img.dtype)
    top, left, h, w = (box[i].astype(img.dtype) for i in range(4))
    # Clamping the points to the box's first and last pixel centres makes bilinear read only
    # pixels of the box (torchvision crops, then resizes); nearest's floor is unchanged by it.
    xin = jnp.clip(m[0, 0] * xs + m[0, 2], left + 0.5, left + w - 0.5)
    yin = jnp.clip(m[1, 1] * ys + m[1, 2], top + 0.5, top + h - 0.5)
    return _sample(op, img, xin, yin, interpolation, 0.0)


def random_resized_crop(key: jax.Array, img: jax.Array, size: int | tuple[int, int],
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        interpolation: Interpolation = "bilinear") -> jax.Array:
    """torchvision `RandomResizedCrop(size, scale, ratio, interpolation)` (v0.15-0.20): crop the
    box of `crop_box` (area fraction ~ U(scale), aspect w / h log-uniform in ratio, 10 tries, then
    the centre crop with the aspect clamped to `ratio`) and resize it to `size` (int: square;
    (h, w)) with ONE resampling: output pixel (i, j) samples the input at
    (left + (j + 1/2) w / out_w, top + (i + 1/2) h / out_h), bilinear (neighbours clamped to the
    box, as resizing the cropped image) or nearest (the pixel containing the point: PIL's
    NEAREST and torch's "nearest-exact"; torchvision's tensor NEAREST is torch's legacy
    "nearest", floor(j w / out_w) without the half-pixel offset).

    Where the box is smaller than `size` (upsampling) this is torchvision's result with PIL
    images (within one 8-bit level) and with tensors. Where it is larger it is point-sampled
    without antialiasing: torchvision's tensor path with antialias=False, not PIL's (nor tensor
    antialias=True, torchvision >= 0.17's default), which widen the filter. No bicubic. scale,
    ratio, size and interpolation are static; differentiable w.r.t. img.
    """
    return _resized_crop("random_resized_crop", key, img, size, scale, ratio, interpolation)


def inception_crop(key: jax.Array, img: jax.Array, size: int | tuple[int, int],
                   scale: tuple[float, float] = (0.05, 1.0),
                   ratio: tuple[float, float] = (0.75, 1.33),
                   interpolation: Interpolation = "bilinear") -> jax.Array:
    """big_vision's `inception_crop(size)` defaults (area_min=5, area_max=100 percent; the
    aspect range (0.75, 1.33) of TF's `sample_distorted_bounding_box`; bilinear resize without
    antialiasing) with `random_resized_crop`'s sampling. big_vision samples with TF's
    `sample_distorted_bounding_box` instead: aspect uniform (not log-uniform), the crop's height
    uniform between the heights of the smallest and largest allowed area (so the area is not
    uniform), up to 100 tries, and the whole image when all fail."""
    return _resized_crop("inception_crop", key, img, size, scale, ratio, interpolation)
