"""Labels that move with an image warp: segmentation masks, keypoints and boxes.

Coordinates are the image ops' (PIL's, see geometry.py): x is the column, y the row, pixel
(col j, row i) covers [j, j+1) x [i, i+1) with its centre at (j + 1/2, i + 1/2), and an H x W
frame spans [0, W) x [0, H). A box (x0, y0, x1, y1) is a region of that plane, so the box around
pixels j0..j1-1, i0..i1-1 is (j0, i0, j1, i1). `jaxaug.data.keypoints` puts pixel centres at
integers instead: its joint p is the point p + 1/2 here.

The warps are output-to-input matrices applied in order, matrices[0] first, as in `warp_chain`:
content at the input point p lands at p_T = M_{T-1}^-1 ... M_0^-1 p = compose(*matrices)^-1 p.
"""

import jax
import jax.numpy as jnp

from jaxaug.ops.geometry import INTERPOLATIONS, Interpolation, _chain_points
from jaxaug.ops.validate import check_size

#: The PASCAL VOC / Cityscapes / ADE20K convention for "no label".
IGNORE_LABEL = 255


def _check_trailing(name, value, trailing):
    shape = tuple(jnp.shape(value))
    if len(shape) != 2 or shape[1] != trailing:
        raise ValueError(f"warp_targets: {name} must have shape [N, {trailing}], got {shape}")


def _inverse_map(m, x, y):
    """m^-1 applied to points (x, y) for an affine m, elementwise (2x2 inverse by cofactors):
    keeps full float32 precision where the default matmul precision of an accelerator would not."""
    a, b, c, d, e, f = m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]
    det = a * e - b * d
    u, v = x - c, y - f
    return (e * u - b * v) / det, (a * v - d * u) / det


def _inside(x, y, size):
    h, w = size
    return (x >= 0) & (x < w) & (y >= 0) & (y < h)


def _move_points(matrices, x, y, size, out_size):
    """Points through every warp in order; whether they stayed in the frame before, between and
    after the warps (where the image keeps content; `warp_chain` fills the rest)."""
    inside = _inside(x, y, size)
    count = matrices.shape[0]
    for t in range(count):
        x, y = _inverse_map(matrices[t], x, y)
        inside &= _inside(x, y, out_size if t == count - 1 else size)
    return x, y, inside


def _warp_mask(mask, matrices, size, out_size, interpolation, ignore_label):
    labels = mask.reshape(size)
    h, w = size
    xs, ys, fill_step, _ = _chain_points(matrices, out_size, size, matrices.dtype,
                                         snap=interpolation == "nearest")
    ix = jnp.clip(jnp.floor(xs).astype(jnp.int32), 0, w - 1)
    iy = jnp.clip(jnp.floor(ys).astype(jnp.int32), 0, h - 1)
    out = jnp.where(fill_step >= 0, jnp.asarray(ignore_label, mask.dtype), labels[iy, ix])
    return out.reshape(out_size + mask.shape[2:])


def _check_mask(mask, size, ignore_label):
    shape, dtype = tuple(jnp.shape(mask)), jnp.asarray(mask).dtype
    if shape not in (size, size + (1,)):
        raise ValueError(f"warp_targets: mask must have shape [height, width] or "
                         f"[height, width, 1] = {size}, got {shape}")
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"warp_targets: mask must hold integer labels, got dtype {dtype}")
    if isinstance(ignore_label, int):
        info = jnp.iinfo(dtype)
        if not info.min <= ignore_label <= info.max:
            raise ValueError(f"warp_targets: ignore_label {ignore_label} does not fit the "
                             f"mask's dtype {dtype}")


def warp_targets(matrices: jax.Array, height: int, width: int, *,
                 mask: jax.Array | None = None, keypoints: jax.Array | None = None,
                 boxes: jax.Array | None = None, ignore_label: int | jax.Array = IGNORE_LABEL,
                 interpolation: Interpolation = "bilinear",
                 size: tuple[int, int] | None = None) -> dict[str, jax.Array]:
    """Move the labels of a height x width image with the warps that `warp_chain(img,
    matrices, interpolation=...)` (or `affine(img, matrix)`) applies to it.

    Args:
        matrices: one 3x3 output-to-input matrix, or [T, 3, 3] applied in order (warp_chain's).
        height, width: the input frame; every frame after a warp has this size too, except the
            last one with `size`.
        mask: int [H, W] or [H, W, 1] labels, resampled by nearest neighbour at the image's
            sample points: each output pixel centre mapped back through the warps, snapped to a
            pixel centre after every warp when `interpolation` is "nearest" (exactly where
            warp_chain's nearest resampling reads, so a mask painted as an image stays equal
            to it), composed unrounded otherwise (warp_chain's bilinear points). A point that
            leaves the frame at any warp gets `ignore_label` (where the image gets its fill).
        keypoints: float [K, 2] points (x, y) moved to p_T = compose(*matrices)^-1 p (computed
            one warp at a time, without rounding).
        boxes: float [N, 4] boxes (x0, y0, x1, y1): their 4 corners moved like keypoints, then
            the min/max box of the moved corners, clipped to the output frame [0, W'] x [0, H'].
            It contains every moved point of the box; it is tight for axis-aligned warps
            (translate, scale, crops) and loose where a rotation or shear turns the box, or
            where content leaving the frame at an intermediate warp is lost.
        ignore_label: the mask's label where the warp brings in no content (default 255).
        interpolation: the image warp's; only the mask's sample points depend on it.
        size: the output frame (H', W') of a single matrix that resizes (e.g.
            `random_resized_crop_matrix(..., size=...)`); default (height, width).

    Returns:
        A dict with the given targets: "mask" (the input's shape and dtype, or the output
        frame's with `size`), "keypoints" float32 [K, 2] and "visible" bool [K] (the point is
        inside the frame before, between and after the warps: the image shows its content
        there), "boxes" float32 [N, 4] and "box_valid" bool [N] (the clipped box has a positive
        area). Colour, point and cutout ops leave every target unchanged, so they need no call.
    """
    in_size = check_size("warp_targets", "(height, width)", (height, width))
    out_size = in_size if size is None else check_size("warp_targets", "size", size)
    shape = tuple(jnp.shape(matrices))
    if shape not in ((3, 3),) and (len(shape) != 3 or shape[1:] != (3, 3)):
        raise ValueError(f"warp_targets: matrices must have shape [3, 3] or [T, 3, 3], got {shape}")
    matrices = jnp.asarray(matrices, jnp.float32).reshape(-1, 3, 3)
    if out_size != in_size and matrices.shape[0] != 1:
        raise ValueError(f"warp_targets: size {size!r} differs from (height, width) = {in_size}, "
                         f"which needs a single matrix (warp_chain keeps the size), got {shape}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"warp_targets: interpolation must be 'bilinear' or 'nearest', "
                         f"got {interpolation!r}")
    out = {}
    if mask is not None:
        _check_mask(mask, in_size, ignore_label)
        out["mask"] = _warp_mask(jnp.asarray(mask), matrices, in_size, out_size, interpolation,
                                 ignore_label)
    if keypoints is not None:
        _check_trailing("keypoints", keypoints, 2)
        points = jnp.asarray(keypoints, jnp.float32)
        x, y, visible = _move_points(matrices, points[:, 0], points[:, 1], in_size, out_size)
        out["keypoints"], out["visible"] = jnp.stack([x, y], axis=-1), visible
    if boxes is not None:
        _check_trailing("boxes", boxes, 4)
        b = jnp.asarray(boxes, jnp.float32)
        corners_x = jnp.stack([b[:, 0], b[:, 2], b[:, 0], b[:, 2]], axis=-1)
        corners_y = jnp.stack([b[:, 1], b[:, 1], b[:, 3], b[:, 3]], axis=-1)
        x, y, _ = _move_points(matrices, corners_x, corners_y, in_size, out_size)
        h, w = out_size
        x0, x1 = jnp.clip(x.min(-1), 0, w), jnp.clip(x.max(-1), 0, w)
        y0, y1 = jnp.clip(y.min(-1), 0, h), jnp.clip(y.max(-1), 0, h)
        out["boxes"] = jnp.stack([x0, y0, x1, y1], axis=-1)
        out["box_valid"] = (x1 > x0) & (y1 > y0)
    return out
