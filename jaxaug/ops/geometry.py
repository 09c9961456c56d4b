"""Geometric ops: affine warps with PIL's conventions, their matrix builders, dense deformation.

Coordinates follow PIL: x is the column, y the row, and pixel (col j, row i) covers the unit
square [j, j+1) x [i, i+1) with its centre at (j + 0.5, i + 0.5). An affine `matrix`
[[a, b, c], [d, e, f], [0, 0, 1]] maps an OUTPUT point (x, y) to the INPUT point
(a*x + b*y + c, d*x + e*y + f), exactly like `PIL.Image.transform(size, Image.AFFINE,
data=(a, b, c, d, e, f))`. Because matrices map output to input, applying op A and then op B is
the single warp by `A @ B` (see `compose`).
"""

from typing import Literal, get_args

import jax
import jax.numpy as jnp

from jaxaug.ops.fusion import materialize
from jaxaug.ops.validate import check_image, check_shape


#: Resampling of the warps (PIL NEAREST or BILINEAR).
Interpolation = Literal["bilinear", "nearest"]
INTERPOLATIONS = get_args(Interpolation)
#: Boundary rule of the warps (see `_sample`).
Padding = Literal["pil", "fill"]
PADDINGS = get_args(Padding)


def _check_padding(op, padding):
    if padding not in PADDINGS:
        raise ValueError(f"{op}: padding must be 'pil' or 'fill', got {padding!r}")


def _coverage(coord, size):
    """Bilinear in-frame weight of a PIL coordinate along one axis: the share of the sample at
    `coord` that falls on pixels 0..size-1, min(coord + 1/2, size + 1/2 - coord) clipped to
    [0, 1] (1 from the first to the last pixel centre, 0 a pixel beyond them). It is grid_sample's
    zero-padded sample of an all-ones image: continuous and piecewise linear in `coord`."""
    return jnp.clip(jnp.minimum(coord + 0.5, size + 0.5 - coord), 0.0, 1.0)


def _sample(op, img, xin, yin, interpolation, fill, padding="pil"):
    """Resample `img` at continuous input points (xin, yin) [H', W'] in PIL coordinates.

    nearest: pixel (floor(xin), floor(yin)); bilinear: the four pixels around (xin - 1/2,
    yin - 1/2) (centres at +0.5), weighted by the distance. Two boundary rules (`padding`):

    * "pil": PIL's, bit for bit: a point with xin outside [0, W) or yin outside [0, H) takes
      `fill` (scalar or per-channel) and one inside interpolates its neighbours clamped to the
      border. The output jumps where a point crosses the border, so a gradient w.r.t. the points
      misses that jump.
    * "fill": PyTorch ``grid_sample``'s padding_mode="zeros" with `fill` in place of zero: each
      of the four bilinear neighbours that lies outside the image reads `fill`, so the output is
      continuous (piecewise bilinear) in (xin, yin) and its gradient is the exact derivative.
      With nearest sampling both rules coincide.
    """
    _check_padding(op, padding)
    h, w, c = img.shape
    flat = img.reshape(h * w, c)
    fill = jnp.broadcast_to(jnp.asarray(fill, img.dtype), (c,))
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    if interpolation == "nearest":
        ix = jnp.clip(jnp.floor(xin).astype(jnp.int32), 0, w - 1)
        iy = jnp.clip(jnp.floor(yin).astype(jnp.int32), 0, h - 1)
        out = flat[iy * w + ix]
    elif interpolation == "bilinear":
        if padding == "fill":
            # XLA re-evaluates a fused producer in each consumer, and the copies may round
            # differently (contracted multiply-adds): floor(xs) from one copy and xs - floor(xs)
            # from another then pick neighbours a pixel apart, a jump of up to a pixel's
            # contrast in float32. One buffer of coordinates keeps every read consistent.
            xin, yin = materialize(xin), materialize(yin)
        xs, ys = xin - 0.5, yin - 0.5
        x0f, y0f = jnp.floor(xs), jnp.floor(ys)
        dx, dy = (xs - x0f)[..., None], (ys - y0f)[..., None]
        x0, y0 = x0f.astype(jnp.int32), y0f.astype(jnp.int32)
        x1, y1 = x0 + 1, y0 + 1
        if padding == "fill":
            okx = [((xk >= 0) & (xk < w))[..., None] for xk in (x0, x1)]
            oky = [((yk >= 0) & (yk < h))[..., None] for yk in (y0, y1)]
        x0, x1 = jnp.clip(x0, 0, w - 1), jnp.clip(x1, 0, w - 1)
        y0, y1 = jnp.clip(y0, 0, h - 1), jnp.clip(y1, 0, h - 1)
        # Four gathers, not one of the stacked indices: 4x faster under vmap on CPU.
        v00, v01 = flat[y0 * w + x0], flat[y0 * w + x1]
        v10, v11 = flat[y1 * w + x0], flat[y1 * w + x1]
        if padding == "fill":
            v00, v01 = jnp.where(oky[0] & okx[0], v00, fill), jnp.where(oky[0] & okx[1], v01, fill)
            v10, v11 = jnp.where(oky[1] & okx[0], v10, fill), jnp.where(oky[1] & okx[1], v11, fill)
        top = v00 + dx * (v01 - v00)
        bottom = v10 + dx * (v11 - v10)
        out = top + dy * (bottom - top)
        if padding == "fill":
            return out.astype(img.dtype)
    else:
        raise ValueError(f"{op}: interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    return jnp.where(inside[..., None], out, fill).astype(img.dtype)


def _as3x3(op, matrix):
    check_shape(op, "matrix", matrix, ((2, 3), (3, 3), (6,)))
    m = jnp.asarray(matrix)
    if not jnp.issubdtype(m.dtype, jnp.floating):
        m = m.astype(jnp.float32)
    m = m.reshape(-1, 3)
    if m.shape[0] == 2:
        m = jnp.concatenate([m, jnp.array([[0.0, 0.0, 1.0]], m.dtype)])
    return m


def _centres(h, w, dtype):
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=dtype) + 0.5, jnp.arange(w, dtype=dtype) + 0.5,
                          indexing="ij")
    return xs, ys


def _map(m, xs, ys):
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def affine(img: jax.Array, matrix: jax.Array, *, interpolation: Interpolation = "bilinear",
           fill: float | jax.Array = 0.5, padding: Padding = "pil") -> jax.Array:
    """Warp `img` [H, W, C] by the affine `matrix` (2x3, 3x3 with last row [0, 0, 1], or the six
    PIL coefficients (a, b, c, d, e, f)).

    out[i, j] = img sampled at (x, y) = (a*(j+.5) + b*(i+.5) + c, d*(j+.5) + e*(i+.5) + f), which is
    `Image.transform(img.size, Image.AFFINE, (a, b, c, d, e, f), resample, fillcolor=fill)`:
    interpolation="nearest" is PIL NEAREST (the default of the AutoAugment reference), "bilinear" is
    PIL BILINEAR. With padding="pil" (default) points outside the input get `fill`, as in PIL; the
    image then jumps where a pixel crosses the border. padding="fill" blends every bilinear
    neighbour outside the input with `fill` instead (``grid_sample``'s zeros padding for fill=0),
    so the output is continuous in `matrix`: use it wherever the warp's parameters are learned by
    gradient. Differentiable w.r.t. img and matrix (bilinear; nearest is piecewise constant in
    matrix).
    """
    check_image("affine", img)
    m = _as3x3("affine", matrix).astype(img.dtype)
    h, w, _ = img.shape
    xin, yin = _map(m, *_centres(h, w, img.dtype))
    return _sample("affine", img, xin, yin, interpolation, fill, padding)


def _chain_points(matrices: jax.Array, out_size: tuple[int, int], size: tuple[int, int],
                 dtype: jnp.dtype, *, snap: bool, weigh: bool = False
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Where `warp_chain` samples: each output pixel centre of an `out_size` (H', W') frame mapped
    back through matrices[T-1], ..., matrices[0] into a `size` (H, W) input frame (every frame
    after the first warp has `size` too, as warp_chain keeps the size). Returns (xs, ys, fill_step,
    weight), [H', W'] each: the input points, the last warp t at which the point was outside its
    frame (-1 if never), and with `weigh` the product of the bilinear in-frame weights of the
    intermediate points (else ones). With `snap` the point moves to its pixel's centre after every
    warp but the last one applied (matrices[0]), as a nearest resampling per warp would."""
    h, w = size
    xs, ys = _centres(*out_size, dtype)
    fill_step = jnp.full(out_size, -1, jnp.int32)
    weight = jnp.ones(out_size, dtype)
    for t in reversed(range(matrices.shape[0])):
        xs, ys = _map(matrices[t], xs, ys)
        inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        fill_step = jnp.where((fill_step < 0) & ~inside, t, fill_step)
        if weigh and t > 0:
            weight = weight * _coverage(xs, w) * _coverage(ys, h)
        if snap and t > 0:
            xs, ys = jnp.floor(xs) + 0.5, jnp.floor(ys) + 0.5
    return xs, ys, fill_step, weight


def warp_chain(img: jax.Array, matrices: jax.Array, *, interpolation: Interpolation = "bilinear",
               fill: float | jax.Array = 0.5, padding: Padding = "pil"
               ) -> tuple[jax.Array, jax.Array]:
    """Apply the affine warps `matrices` [T, 3, 3] in order (matrices[0] first) with ONE
    resampling, and return (out, fill_step).

    Each output pixel centre is mapped back through matrices[T-1], ..., matrices[0]. With
    padding="pil" (default) a point that falls outside the frame at warp t is `fill`, as it
    would be after warping T times with PIL: content moved out by one warp and back by the next
    is lost. With nearest sampling the point snaps to its pixel's centre after every warp, so the
    result equals T successive `affine(..., interpolation="nearest")` calls exactly; with bilinear
    sampling the coordinates are composed unrounded (as `affine(img, compose(*matrices))`, which
    it equals where no point leaves the frame), so the image is interpolated once instead of T
    times.

    padding="fill" (bilinear) makes the result continuous in `matrices`, for warps learned by
    gradient: the last resampling is `affine`'s padding="fill", and the hard in/out test at each
    intermediate warp t >= 1 becomes the bilinear in-frame weight c_t = c(x_t; W) c(y_t; H) of
    the point (x_t, y_t) there, c(u; n) = clip(min(u + 1/2, n + 1/2 - u), 0, 1), i.e. what a
    zero-padded bilinear resampling of an all-ones image would keep:
    out = fill + (prod_t c_t) (sample - fill). With nearest sampling it equals padding="pil".

    fill_step [H, W] int32 is the last warp t at which the pixel's point was outside the frame,
    -1 if never (in both modes): ops that ran between warp t and the end saw the fill there.
    `warp_targets` moves masks, keypoints and boxes with the same warps.
    """
    check_image("warp_chain", img)
    _check_padding("warp_chain", padding)
    h, w, _ = img.shape
    matrices = jnp.asarray(matrices, img.dtype)
    if matrices.ndim != 3 or matrices.shape[1:] != (3, 3):
        raise ValueError(f"warp_chain: matrices must have shape [T, 3, 3], got {matrices.shape}")
    continuous = padding == "fill" and interpolation == "bilinear"
    xs, ys, fill_step, weight = _chain_points(matrices, (h, w), (h, w), img.dtype,
                                              snap=interpolation == "nearest", weigh=continuous)
    out = _sample("warp_chain", img, xs, ys, interpolation, fill, "fill" if continuous else "pil")
    fill = jnp.broadcast_to(jnp.asarray(fill, img.dtype), (img.shape[-1],))
    if continuous:
        return fill + weight[..., None] * (out - fill), fill_step
    return jnp.where((fill_step >= 0)[..., None], fill, out), fill_step


def compose(*matrices: jax.Array) -> jax.Array:
    """Fuse affine ops applied in argument order into one 3x3 matrix: compose(A, B) = A @ B.

    Since every matrix maps output to input coordinates, `affine(affine(img, A), B)` equals
    `affine(img, compose(A, B))` up to interpolation (and fill) error, with a single resampling.
    """
    if not matrices:
        raise ValueError("compose: needs at least one matrix")
    out = _as3x3("compose", matrices[0])
    for m in matrices[1:]:
        out = out @ _as3x3("compose", m)
    return out


def _check_scalar(op, name, value):
    """A matrix builder's parameter must be one scalar: a batch of them builds a batch of matrices
    under jax.vmap; outside it the stacked result would silently not be [3, 3]."""
    check_shape(op, name, value, ((),))


def _mat(a, b, c, d, e, f):
    z = jnp.zeros((), jnp.result_type(a, b, c, d, e, f, jnp.float32))
    return jnp.stack([jnp.stack([a + z, b + z, c + z]), jnp.stack([d + z, e + z, f + z]),
                      jnp.stack([z, z, z + 1])])


def shear_x_matrix(shear: float | jax.Array) -> jax.Array:
    """PIL data (1, shear, 0, 0, 1, 0): input x = x + shear * y."""
    _check_scalar("shear_x_matrix", "shear", shear)
    return _mat(1.0, shear, 0.0, 0.0, 1.0, 0.0)


def shear_y_matrix(shear: float | jax.Array) -> jax.Array:
    """PIL data (1, 0, 0, shear, 1, 0): input y = shear * x + y."""
    _check_scalar("shear_y_matrix", "shear", shear)
    return _mat(1.0, 0.0, 0.0, shear, 1.0, 0.0)


def translate_x_matrix(pixels: float | jax.Array) -> jax.Array:
    """PIL data (1, 0, pixels, 0, 1, 0): input x = x + pixels (content moves LEFT for pixels > 0)."""
    _check_scalar("translate_x_matrix", "pixels", pixels)
    return _mat(1.0, 0.0, pixels, 0.0, 1.0, 0.0)


def translate_y_matrix(pixels: float | jax.Array) -> jax.Array:
    """PIL data (1, 0, 0, 0, 1, pixels): input y = y + pixels (content moves UP for pixels > 0)."""
    _check_scalar("translate_y_matrix", "pixels", pixels)
    return _mat(1.0, 0.0, 0.0, 0.0, 1.0, pixels)


def rotate_matrix(degrees: float | jax.Array, height: int, width: int) -> jax.Array:
    """Matrix of PIL `Image.rotate(degrees)` for a height x width image: counter-clockwise by
    `degrees` about the centre (width/2, height/2). With t = -radians(degrees), input
    (x, y) = R(t) @ ((x, y) - centre) + centre, R(t) = [[cos t, sin t], [-sin t, cos t]]."""
    _check_scalar("rotate_matrix", "degrees", degrees)
    t = -jnp.deg2rad(jnp.asarray(degrees, jnp.result_type(degrees, jnp.float32)))
    cos, sin = jnp.cos(t), jnp.sin(t)
    cx, cy = width / 2.0, height / 2.0
    return _mat(cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


def scale_matrix(factor: float | jax.Array, height: int, width: int) -> jax.Array:
    """Zoom by `factor` about the centre (width/2, height/2) of a height x width image (factor > 1
    zooms in): input (x, y) = ((x, y) - centre) / factor + centre, i.e. PIL data
    (1/factor, 0, cx (1 - 1/factor), 0, 1/factor, cy (1 - 1/factor))."""
    _check_scalar("scale_matrix", "factor", factor)
    inv = 1.0 / jnp.asarray(factor, jnp.result_type(factor, jnp.float32))
    cx, cy = width / 2.0, height / 2.0
    return _mat(inv, 0.0, cx * (1.0 - inv), 0.0, inv, cy * (1.0 - inv))


#: The AutoAugment reference's fill, grey 128 as a float level.
GREY = 128.0 / 255.0


def shear_x(img: jax.Array, shear: float | jax.Array, fill: float | jax.Array = GREY, *,
            interpolation: Interpolation = "nearest") -> jax.Array:
    """AutoAugment ShearX: `img.transform(size, AFFINE, (1, shear, 0, 0, 1, 0), fillcolor=fill)`."""
    check_image("shear_x", img)
    return affine(img, shear_x_matrix(shear), interpolation=interpolation, fill=fill)


def shear_y(img: jax.Array, shear: float | jax.Array, fill: float | jax.Array = GREY, *,
            interpolation: Interpolation = "nearest") -> jax.Array:
    """AutoAugment ShearY: `img.transform(size, AFFINE, (1, 0, 0, shear, 1, 0), fillcolor=fill)`."""
    check_image("shear_y", img)
    return affine(img, shear_y_matrix(shear), interpolation=interpolation, fill=fill)


def translate_x(img: jax.Array, pixels: float | jax.Array, fill: float | jax.Array = GREY, *,
                interpolation: Interpolation = "nearest") -> jax.Array:
    """AutoAugment TranslateX: `img.transform(size, AFFINE, (1, 0, pixels, 0, 1, 0), fillcolor=fill)`."""
    check_image("translate_x", img)
    return affine(img, translate_x_matrix(pixels), interpolation=interpolation, fill=fill)


def translate_y(img: jax.Array, pixels: float | jax.Array, fill: float | jax.Array = GREY, *,
                interpolation: Interpolation = "nearest") -> jax.Array:
    """AutoAugment TranslateY: `img.transform(size, AFFINE, (1, 0, 0, 0, 1, pixels), fillcolor=fill)`."""
    check_image("translate_y", img)
    return affine(img, translate_y_matrix(pixels), interpolation=interpolation, fill=fill)


def rotate(img: jax.Array, degrees: float | jax.Array, fill: float | jax.Array = GREY, *,
           interpolation: Interpolation = "nearest") -> jax.Array:
    """AutoAugment Rotate: `img.rotate(degrees, fillcolor=fill)`, counter-clockwise about the centre
    (PIL's default resample, NEAREST; pass interpolation="bilinear" for a differentiable warp)."""
    check_image("rotate", img)
    h, w, _ = img.shape
    return affine(img, rotate_matrix(degrees, h, w), interpolation=interpolation, fill=fill)


def scale(img: jax.Array, factor: float | jax.Array, fill: float | jax.Array = GREY, *,
          interpolation: Interpolation = "bilinear") -> jax.Array:
    """Zoom by `factor` about the centre: `affine(img, scale_matrix(factor, H, W))`. factor > 1
    zooms in (crops the centre), factor < 1 zooms out (the border gets `fill`)."""
    check_image("scale", img)
    h, w, _ = img.shape
    return affine(img, scale_matrix(factor, h, w), interpolation=interpolation, fill=fill)


def pad_crop(img: jax.Array, offset: tuple[int, int] | jax.Array, padding: int,
             fill: float | jax.Array = 0.0) -> jax.Array:
    """Padded random crop of one image (torchvision `RandomCrop((H, W), padding)`): pad `padding`
    pixels of the scalar `fill` on every side, then out[i, j] = padded[i + dy, j + dx] for
    offset = (dy, dx), integers in [0, 2 * padding] that may be traced (dynamic_slice clamps
    offsets outside that range to it). offset (padding, padding) is the identity. Exact; the
    gradient w.r.t. img is the crop's mask.
    """
    check_image("pad_crop", img)
    check_shape("pad_crop", "offset", offset, ((2,),))
    check_shape("pad_crop", "fill", fill, ((),))
    # padding sets the padded shape, so it must be a static Python int.
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"pad_crop: padding must be a non-negative int, got {padding!r}")
    if padding == 0:
        return img
    h, w, c = img.shape
    padded = jnp.pad(img, ((padding, padding), (padding, padding), (0, 0)),
                     constant_values=jnp.asarray(fill, img.dtype))
    offset = jnp.asarray(offset, jnp.int32)
    return jax.lax.dynamic_slice(padded, (offset[0], offset[1], 0), (h, w, c))


def hflip(img: jax.Array) -> jax.Array:
    """Mirror left-right (PIL `ImageOps.mirror`)."""
    check_image("hflip", img)
    return img[:, ::-1]


def vflip(img: jax.Array) -> jax.Array:
    """Flip top-bottom (PIL `ImageOps.flip`)."""
    check_image("vflip", img)
    return img[::-1]


def deform(img: jax.Array, flow: jax.Array, *, fill: float | jax.Array = 0.5,
           padding: Padding = "pil") -> jax.Array:
    """Warp by a dense displacement field `flow` [H, W, 2] (pixels; flow[..., 0] along x/columns,
    flow[..., 1] along y/rows): out[i, j] = bilinear sample of img at (j + .5 + flow[i, j, 0],
    i + .5 + flow[i, j, 1]) in PIL coordinates, i.e. out[i, j] = img[i + fy, j + fx] for integer
    flows. Points outside the image get `fill` (padding="pil", default), or each bilinear
    neighbour outside it does (padding="fill", ``grid_sample``'s zeros padding for fill=0,
    continuous in `flow`: use it when the flow is learned). One resampling; differentiable
    w.r.t. img and flow.
    """
    check_image("deform", img)
    h, w, _ = img.shape
    check_shape("deform", "flow", flow, ((h, w, 2),))
    flow = jnp.asarray(flow, img.dtype)
    xs, ys = _centres(h, w, img.dtype)
    return _sample("deform", img, xs + flow[..., 0], ys + flow[..., 1], "bilinear", fill, padding)
