"""Heatmap keypoint pipeline: Gaussian targets, sub-pixel decoding, joint-consistent affine warps.

Conventions. A joint is (x, y) in pixels with pixel centres at integer coordinates: pixel (row i,
column j) has its centre at (j, i) and covers [j - 1/2, j + 1/2) x [i - 1/2, i + 1/2), so an
H x W image spans [-1/2, W - 1/2) x [-1/2, H - 1/2). Joints are [..., J, 2] and visibility is
[..., J] (bool, or 0/1). `jaxaug.ops.geometry` works in PIL coordinates, whose pixel centres are at
+1/2: the joint p is the PIL point p + 1/2, and its matrices map OUTPUT points to INPUT points.

Everything here is a pure function of arrays (plus a PRNG key where random) without Python
branching on traced values, so it works under jax.jit / jax.vmap, and under jax.grad where the
maths is smooth (heatmaps w.r.t. joints and sigma, warped joints w.r.t. scale and angle).
"""

import operator

import jax
import jax.numpy as jnp
import numpy as np

from jaxaug.ops.geometry import affine
from jaxaug.ops.validate import check_image, check_size


def _check_joints(op, joints, visible, num_leading=None):
    shape, vshape = tuple(jnp.shape(joints)), tuple(jnp.shape(visible))
    if len(shape) < 2 or shape[-1] != 2:
        raise ValueError(f"{op}: joints must have shape [..., J, 2], got {shape}")
    if num_leading is not None and len(shape) != num_leading + 2:
        want = "[J, 2]" if num_leading == 0 else f"{num_leading} leading axes + [J, 2]"
        raise ValueError(f"{op}: joints must have shape {want}, got {shape}")
    if vshape != shape[:-1]:
        raise ValueError(f"{op}: visible must have shape joints.shape[:-1] = {shape[:-1]}, "
                         f"got {vshape}")


def _mask(visible):
    # Visibility may be bool or 0/1 floats; anything non-zero counts as visible.
    return jnp.asarray(visible) != 0


def gaussian_heatmaps(joints, visible, size, sigma=1.0):
    """Gaussian target maps of `joints` [..., J, 2] on an (H, W) = `size` pixel grid.

    maps[..., i, j, k] = exp(-((j - x_k)^2 + (i - y_k)^2) / (2 sigma^2)) if joint k is visible,
    else 0: an unnormalised Gaussian with peak 1 at the sub-pixel joint (the value at a pixel
    centre is below 1 unless the joint sits on it). Not truncated to a window, so
    `decode_heatmaps` inverts it exactly. Returns float32 [..., H, W, J]. Differentiable w.r.t.
    joints and sigma.
    """
    _check_joints("gaussian_heatmaps", joints, visible)
    h, w = check_size("gaussian_heatmaps", "size", size)
    if isinstance(sigma, (int, float)) and not sigma > 0:
        raise ValueError(f"gaussian_heatmaps: sigma must be > 0, got {sigma!r}")
    mask = _mask(visible)
    # Zero the coordinates of hidden joints before exp: NaN placeholders would otherwise leak
    # NaN into gradients through the masked branch.
    joints = jnp.where(mask[..., None], jnp.asarray(joints, jnp.float32), 0.0)
    inv = 1.0 / (2.0 * jnp.asarray(sigma, jnp.float32) ** 2)
    # The 2-D Gaussian is separable: an outer product of two 1-D profiles.
    gx = jnp.exp(-((jnp.arange(w, dtype=jnp.float32) - joints[..., 0:1]) ** 2) * inv)  # [.., J, W]
    gy = jnp.exp(-((jnp.arange(h, dtype=jnp.float32) - joints[..., 1:2]) ** 2) * inv)  # [.., J, H]
    maps = gy[..., :, None] * gx[..., None, :]  # [..., J, H, W]
    maps = jnp.where(mask[..., None, None], maps, 0.0)
    return jnp.moveaxis(maps, -3, -1)


def _refine(line, peak):
    """Sub-pixel offset of the maximum of `line` [..., L] near the integer argmax `peak` [...].

    Fits g(t) = a t^2 + b t + c through three consecutive samples around the peak and returns
    vertex - peak, clipped to [-1/2, 1/2]. g is log(value) when the three values are positive
    (a Gaussian's log is exactly quadratic, so the fit recovers its centre exactly), else the raw
    values (predicted maps may be <= 0 there). At a border the window moves inward (t = 0, 1, 2
    or L-3, L-2, L-1), which is still exact for a Gaussian. Where g is not strictly concave
    (flat or noisy neighbourhood) the offset is 0.
    """
    size = line.shape[-1]
    centre = jnp.clip(peak, 1, size - 2)
    idx = jnp.stack([centre - 1, centre, centre + 1], axis=-1)
    f = jnp.take_along_axis(line, idx, axis=-1)
    positive = jnp.all(f > 1e-30, axis=-1, keepdims=True)
    g = jnp.where(positive, jnp.log(jnp.where(positive, f, 1.0)), f)
    gm, g0, gp = g[..., 0], g[..., 1], g[..., 2]
    curvature = gm - 2.0 * g0 + gp
    # Relative guard: rounding noise on a flat top must not produce a spurious half-pixel shift.
    concave = curvature < -1e-6 * (1.0 + jnp.abs(g0))
    vertex = centre + 0.5 * (gm - gp) / jnp.where(concave, curvature, -1.0)
    return jnp.where(concave, jnp.clip(vertex - peak, -0.5, 0.5), 0.0)


def decode_heatmaps(heatmaps):
    """Joint coordinates from heatmaps [..., H, W, J] (H, W >= 3): argmax plus sub-pixel refinement.

    For each map, the integer argmax (i*, j*) is refined per axis by a log-parabola fit through
    the argmax and its two neighbours along the row (x) and the column (y) through it (see
    `_refine`): exact for an untruncated Gaussian such as `gaussian_heatmaps` (to float32
    rounding, ~1e-4 px), a parabola fit on non-positive values, no shift on flat tops, and never
    more than 1/2 px from the argmax. Returns (coords float32 [..., J, 2] as (x, y),
    maxvals [..., J], the map's value at the argmax; 0 for all-zero maps, whose coords are (0, 0)).
    """
    shape = tuple(jnp.shape(heatmaps))
    if len(shape) < 3 or shape[-3] < 3 or shape[-2] < 3:
        raise ValueError(f"decode_heatmaps: heatmaps must have shape [..., H, W, J] with "
                         f"H, W >= 3, got {shape}")
    h, w = shape[-3], shape[-2]
    maps = jnp.moveaxis(jnp.asarray(heatmaps, jnp.float32), -1, -3)  # [..., J, H, W]
    flat = maps.reshape(*maps.shape[:-2], h * w)
    index = jnp.argmax(flat, axis=-1)
    maxvals = jnp.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
    iy, ix = index // w, index % w
    row = jnp.take_along_axis(maps, iy[..., None, None], axis=-2)[..., 0, :]  # [..., J, W]
    col = jnp.take_along_axis(maps, ix[..., None, None], axis=-1)[..., :, 0]  # [..., J, H]
    x = ix.astype(jnp.float32) + _refine(row, ix)
    y = iy.astype(jnp.float32) + _refine(col, iy)
    return jnp.stack([x, y], axis=-1), maxvals


def to_heatmap_coords(joints, image_size, heatmap_size):
    """Map joints from an image of `image_size` (H, W) to a heatmap of `heatmap_size` (h, w).

    Both grids span the same area, [-1/2, W - 1/2) -> [-1/2, w - 1/2), so
    x' = (x + 1/2) w / W - 1/2 and y' = (y + 1/2) h / H - 1/2 (pixel centres stay consistent:
    a 256 -> 64 map sends image pixel 1.5, the centre of pixels 0..3, to heatmap pixel 0).
    """
    h, w = check_size("to_heatmap_coords", "image_size", image_size)
    hh, hw = check_size("to_heatmap_coords", "heatmap_size", heatmap_size)
    factor = jnp.array([hw / w, hh / h], jnp.float32)
    return (jnp.asarray(joints, jnp.float32) + 0.5) * factor - 0.5


def to_image_coords(joints, heatmap_size, image_size):
    """Inverse of `to_heatmap_coords`: x = (x' + 1/2) W / w - 1/2, likewise for y."""
    return to_heatmap_coords(joints, heatmap_size, image_size)


def inside(joints, size):
    """Whether joints [..., 2] lie on an (H, W) image: -1/2 <= x < W - 1/2, -1/2 <= y < H - 1/2."""
    h, w = check_size("inside", "size", size)
    x, y = joints[..., 0], joints[..., 1]
    return (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def flip_permutation(flip_pairs, num_joints):
    """Index map of a horizontal flip: perm[l] = r and perm[r] = l for each (l, r) in flip_pairs,
    perm[k] = k otherwise, as a static numpy array. Raises ValueError on an index outside
    [0, num_joints), a self-pair or an index listed twice."""
    perm = np.arange(num_joints)
    seen = set()
    try:
        pairs = [tuple(operator.index(i) for i in pair) for pair in flip_pairs]
    except TypeError:
        raise ValueError(
            f"flip_pairs must be (left, right) index pairs, got {flip_pairs!r}") from None
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"flip_pairs: {pair} is not a pair of two different joints")
        for k in pair:
            if not 0 <= k < num_joints:
                raise ValueError(f"flip_pairs: joint {k} of {pair} is outside [0, {num_joints})")
            if k in seen:
                raise ValueError(f"flip_pairs: joint {k} appears in more than one pair")
            seen.add(k)
        perm[pair[0]], perm[pair[1]] = pair[1], pair[0]
    return perm


def augment_matrix(scale, degrees, flip, height, width):
    """3x3 output -> input matrix (jaxaug.ops.geometry / PIL convention) of the pose warp.

    The content is zoomed by `scale` (> 1 enlarges), rotated counter-clockwise (as displayed) by
    `degrees`, both about the image centre, and then mirrored left-right if `flip`. With
    c = (W/2, H/2) in PIL coordinates, theta = radians(degrees) and f = -1 if flip else 1:

        input - c = (1 / scale) [[f cos theta, -sin theta], [f sin theta, cos theta]] (output - c)

    which equals `geometry.compose(scale_matrix(scale), rotate_matrix(degrees), mirror)`. Built
    element-wise rather than with matmuls so that it keeps full float32 precision on
    accelerators whose default matmul precision is reduced.
    """
    theta = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    f = jnp.where(jnp.asarray(flip).astype(bool), -1.0, 1.0)
    inv = 1.0 / jnp.asarray(scale, jnp.float32)
    a, b, d, e = inv * f * cos, -inv * sin, inv * f * sin, inv * cos
    cx, cy = width / 2.0, height / 2.0
    zero, one = jnp.zeros((), jnp.float32), jnp.ones((), jnp.float32)
    return jnp.stack([jnp.stack([a, b, cx - a * cx - b * cy]),
                      jnp.stack([d, e, cy - d * cx - e * cy]),
                      jnp.stack([zero, zero, one])])


def transform_joints(joints, visible, size, scale, degrees, flip, flip_pairs):
    """Move joints [J, 2] with the warp of `augment_matrix` on an (H, W) = `size` image.

    With c = ((W - 1) / 2, (H - 1) / 2) (the image centre in joint coordinates),
    theta = radians(degrees) and d = p - c:

        p' = c + scale * (f (cos theta d_x + sin theta d_y), -sin theta d_x + cos theta d_y)

    (f = -1 if flip else 1), the inverse of the image warp. When flipped, the left/right joints of
    `flip_pairs` swap indices (the mirrored left wrist becomes the right wrist). Joints that
    leave the image (see `inside`) become invisible. Returns (joints float32 [J, 2], visible bool
    [J]).
    """
    _check_joints("transform_joints", joints, visible, num_leading=0)
    h, w = check_size("transform_joints", "size", size)
    perm = flip_permutation(flip_pairs, jnp.shape(joints)[0])
    flip = jnp.asarray(flip).astype(bool)
    theta = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    centre = jnp.array([(w - 1) / 2.0, (h - 1) / 2.0], jnp.float32)
    dx, dy = (jnp.asarray(joints, jnp.float32) - centre).T
    rx = cos * dx + sin * dy
    ry = -sin * dx + cos * dy
    rx = jnp.where(flip, -rx, rx)
    out = centre + jnp.asarray(scale, jnp.float32) * jnp.stack([rx, ry], axis=-1)
    vis = _mask(visible) & inside(out, (h, w))
    out = jnp.where(flip, out[perm], out)
    vis = jnp.where(flip, vis[perm], vis)
    return out, vis


def transform_sample(image, joints, visible, scale, degrees, flip, flip_pairs, *,
                     interpolation="bilinear", fill=0.0):
    """Deterministic pose warp of one sample: image [H, W, C] (float, [0, 1]), joints [J, 2],
    visible [J].

    The image is resampled once by `augment_matrix(scale, degrees, flip, H, W)` with
    `geometry.affine` (pixels from outside the input get `fill`); the joints move with exactly
    the same map (`transform_joints`), so a joint stays on the image feature it marked. scale,
    degrees and flip may be traced (an adversarial augmenter can pick them), flip_pairs is
    static. Returns (image, joints, visible).
    """
    check_image("transform_sample", image)
    _check_joints("transform_sample", joints, visible, num_leading=0)
    flip_permutation(flip_pairs, jnp.shape(joints)[0])  # validate before any work
    h, w, _ = image.shape
    matrix = augment_matrix(scale, degrees, flip, h, w)
    out = affine(image, matrix.astype(image.dtype), interpolation=interpolation, fill=fill)
    joints, visible = transform_joints(joints, visible, (h, w), scale, degrees, flip, flip_pairs)
    return out, joints, visible


def affine_augment(key, image, joints, visible, *, flip_pairs, scale_range=(0.75, 1.25),
                   max_rotation=30.0, flip_prob=0.5, fill=0.0):
    """Random pose augmentation of one sample (batch with jax.vmap over key and the arrays).

    scale ~ U(scale_range), degrees ~ U(-max_rotation, max_rotation) (counter-clockwise about
    the image centre), flip ~ Bernoulli(flip_prob); then `transform_sample`. Returns
    (image, joints, visible); joints that leave the image become invisible.
    """
    lo, hi = scale_range
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and not 0 < lo <= hi:
        raise ValueError(f"affine_augment: scale_range must satisfy 0 < low <= high, "
                         f"got {scale_range!r}")
    if isinstance(max_rotation, (int, float)) and max_rotation < 0:
        raise ValueError(f"affine_augment: max_rotation must be >= 0, got {max_rotation!r}")
    if isinstance(flip_prob, (int, float)) and not 0 <= flip_prob <= 1:
        raise ValueError(f"affine_augment: flip_prob must be in [0, 1], got {flip_prob!r}")
    k_scale, k_rot, k_flip = jax.random.split(key, 3)
    scale = jax.random.uniform(k_scale, (), jnp.float32, lo, hi)
    degrees = jax.random.uniform(k_rot, (), jnp.float32, -max_rotation, max_rotation)
    flip = jax.random.bernoulli(k_flip, flip_prob)
    return transform_sample(image, joints, visible, scale, degrees, flip, flip_pairs, fill=fill)
