"""Apply a sampled sub-policy as a fixed sequence of cheap, parameterised stages.

A sampled sub-policy of T steps is three arrays: ``op_index [T]`` (into a static tuple of op
names, the policy's *vocabulary*), ``value [T]`` (each op's parameter in natural units, sign
applied) and ``applied [T]`` (bool). Under ``vmap`` every image has its own arrays, so a
``lax.switch`` over ops would evaluate every op for every image. Instead every op is one of
four parameterised stages, and a step evaluates each stage *kind* once, with per-image
parameters selected by ``jnp.where``:

* **warp**: the geometric ops (shear, translate, rotate) are 3x3 matrices. All matrices are
  built (3x3 each, negligible) and the step's one is selected; non-geometric steps give the
  identity.
* **lut**: the 8-bit point ops map levels ``round(255 x)``: invert, solarize and posterize
  elementwise, auto_contrast and equalize through one per-image, per-channel 256-entry table
  built from the image's histogram.
* **blend**: the enhance ops (brightness, color, contrast, sharpness) are
  ``clip(d + f (x - d))`` with the degenerate image ``d`` black, grey, the grey mean or the
  smoothed image.
* **cutout**: a grey square at a random centre.

Stages the vocabulary does not use are left out at trace time, and a stage whose op was not
drawn is an exact identity (``jnp.where``), so results do not drift through unused stages.

Two schedules:

* ``fuse=True`` (default): the geometric steps are resampled **once**, by
  ``ops.warp_chain``, which maps every output pixel back through each step's matrix (snapping
  to pixel centres between nearest warps, and filling where a point leaves the frame at any
  step), so content moved out and back is lost as in the reference. The first step's other
  stages run before that warp, the later steps' after it; point stages commute with a nearest
  warp, and a later step leaves alone the fill that, in the reference, a later warp brings in.
  For sub-policies of up to two steps this *is* the sequential order, exactly. With three or
  more, a middle step that precedes the first warp takes its statistics from an unwarped copy,
  and what remains approximate is a middle sharpness (a 3x3 blur) or cutout before a later
  warp, and statistics ops between two warps (they see the image after all warps).
* ``fuse=False``: each step warps (if geometric) and then runs its stages, in order: the
  sequential semantics of the reference code, at the price of one resampling per step.

``tests/test_policies.py`` measures both against the Pillow reference.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxaug import ops
from jaxaug.ops.color import mean_grey
from jaxaug.ops.geometry import GREY, Interpolation
from jaxaug.ops.point import (
    auto_contrast_lut,
    equalize_lut,
    from_levels,
    invert_levels,
    lookup,
    posterize_levels,
    solarize_levels,
    to_levels,
)
from jaxaug.ops.validate import check_image
from jaxaug.policies.tables import check_op_name

GEOMETRIC_OPS = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
LUT_OPS = ("invert", "solarize", "posterize", "auto_contrast", "equalize")
BLEND_OPS = ("brightness", "color", "contrast", "sharpness")


def check_vocabulary(op_names: Sequence[str], has_partner: bool = False) -> tuple[str, ...]:
    """Raise ValueError for an unknown op, or for sample_pairing without a partner image."""
    for name in op_names:
        check_op_name(name)
        if name == "sample_pairing" and not has_partner:
            raise ValueError(
                "op 'sample_pairing' needs a partner image, which a (key, img) -> img policy "
                "does not have; pass partner= to apply_steps / apply_actions, or call "
                "jaxaug.ops.sample_pairing directly"
            )
    return tuple(op_names)


def _select(op, op_names, candidates, default):
    """candidates[name] for the drawn op (a traced index), `default` for ops not in it."""
    out = default
    for i, name in enumerate(op_names):
        if name in candidates:
            out = jnp.where(op == i, candidates[name], out)
    return out


def _is_any(op, op_names, kind):
    return jnp.any(jnp.asarray([op == i for i, n in enumerate(op_names) if n in kind] or [False]))


def step_matrix(op: jax.Array, value: jax.Array, op_names: tuple[str, ...], height: int, width: int
                ) -> jax.Array:
    """3x3 output->input matrix of one step: the drawn geometric op's matrix, else identity."""
    builders = {
        "shear_x": lambda: ops.shear_x_matrix(value),
        "shear_y": lambda: ops.shear_y_matrix(value),
        "translate_x": lambda: ops.translate_x_matrix(value),
        "translate_y": lambda: ops.translate_y_matrix(value),
        "rotate": lambda: ops.rotate_matrix(value, height, width),
    }
    mats = {name: builders[name]() for name in op_names if name in builders}
    return _select(op, op_names, mats, jnp.eye(3, dtype=jnp.float32))


def _is_warp(op_index, applied, op_names):
    return [applied[t] & _is_any(op_index[t], op_names, GEOMETRIC_OPS)
            for t in range(op_index.shape[0])]


def step_matrices(op_index: jax.Array, value: jax.Array, applied: jax.Array, *,
                  op_names: Sequence[str], height: int, width: int) -> jax.Array:
    """[T, 3, 3] output->input matrices of T sampled steps: each applied geometric step's
    matrix, the identity for the others. `apply_steps` warps the image with these (one
    `warp_chain`, or one `affine` per step), so `ops.warp_targets(step_matrices(...), ...,
    interpolation=interpolation if fuse else "nearest")` moves labels with it."""
    op_names = tuple(op_names)
    value = jnp.asarray(value, jnp.float32)
    is_warp = _is_warp(op_index, applied, op_names)
    eye = jnp.eye(3, dtype=jnp.float32)
    return jnp.stack([jnp.where(is_warp[t], step_matrix(op_index[t], value[t], op_names,
                                                        height, width), eye)
                      for t in range(op_index.shape[0])])


def _lut_stage(img, stats, op, value, op_names, straight_through):
    used = [n for n in op_names if n in LUT_OPS]
    if not used:
        return img
    v = to_levels(img)
    candidates = {
        "invert": lambda: invert_levels(v),
        "solarize": lambda: solarize_levels(v, value),
        "posterize": lambda: posterize_levels(v, value),
    }
    out = {n: candidates[n]() for n in used if n in candidates}
    # The histogram ops share one per-image table and one gather.
    tables = {"auto_contrast": auto_contrast_lut, "equalize": equalize_lut}
    if any(n in tables for n in used):
        levels = to_levels(stats)
        lut = _select(op, op_names, {n: tables[n](levels) for n in used if n in tables},
                      jnp.broadcast_to(jnp.arange(256), (img.shape[-1], 256)))
        looked_up = lookup(v, lut)
        out.update({n: looked_up for n in used if n in tables})
    out = from_levels(img, _select(op, op_names, out, v), straight_through=straight_through)
    return jnp.where(_is_any(op, op_names, LUT_OPS), out, img)


def _blend_stage(img, stats, op, value, op_names, partner):
    used = [n for n in op_names if n in BLEND_OPS + ("sample_pairing",)]
    if not used:
        return img
    degenerates = {
        "brightness": lambda: jnp.zeros_like(img),
        "color": lambda: ops.color(img, 0.0),
        "contrast": lambda: jnp.broadcast_to(mean_grey(stats), img.shape),
        "sharpness": lambda: ops.smooth(img),
        "sample_pairing": lambda: partner,
    }
    degenerate = _select(op, op_names, {n: degenerates[n]() for n in used}, img)
    # Sample pairing is a blend towards the partner with weight w: factor 1 - w.
    factor = _select(op, op_names, {"sample_pairing": 1.0 - value}, value).astype(img.dtype)
    out = jnp.clip(degenerate + factor * (img - degenerate), 0.0, 1.0)
    return jnp.where(_is_any(op, op_names, BLEND_OPS + ("sample_pairing",)), out, img)


def cutout_centers(key: jax.Array, num_steps: int, height: int, width: int) -> jax.Array:
    """int32 [T, 2]: the (row, col) centre of each step's cutout square, each uniform over the
    pixels, drawn from `key` as `apply_steps` does (one key per step, split from `key`). Every step
    gets one; only the steps whose op is cutout use theirs."""
    shape = jnp.asarray([height, width])
    return jax.vmap(lambda k: jax.random.randint(k, (2,), 0, shape))(
        jax.random.split(key, num_steps))


def _cutout_stage(center, img, op, value, op_names):
    if "cutout" not in op_names:
        return img
    out = ops.cutout(img, center, jnp.round(value).astype(jnp.int32), fill=GREY)
    return jnp.where(op == op_names.index("cutout"), out, img)


def _point_stages(center, img, op, value, op_names, straight_through, stats=None, partner=None):
    """The lut, blend and cutout stages of one step. Image statistics (auto_contrast, equalize,
    contrast) are those of `stats` (default: `img`), the image the reference's step sees."""
    stats = img if stats is None else stats
    img = _lut_stage(img, stats, op, value, op_names, straight_through)
    img = _blend_stage(img, stats, op, value, op_names, partner)
    return _cutout_stage(center, img, op, value, op_names)


def apply_steps(key: jax.Array | None, img: jax.Array, op_index: jax.Array, value: jax.Array,
                applied: jax.Array, *, op_names: Sequence[str], fuse: bool = True,
                interpolation: Interpolation = "nearest", fill: float | jax.Array = GREY,
                straight_through: bool = False, partner: jax.Array | None = None,
                cutout_center: jax.Array | None = None) -> jax.Array:
    """Apply T sampled steps to one float image [H, W, C] in [0, 1].

    Args:
        key: PRNG key of the cutout centres (`cutout_centers`); unused (may be None) when
            `cutout_center` is given or the vocabulary has no cutout.
        img: float HWC image.
        op_index: int [T], indices into `op_names`.
        value: float [T], each step's parameter in natural units (see `level_to_arg`).
        applied: bool [T]; a step that is not applied is the identity.
        op_names: static tuple of op names, the vocabulary `op_index` refers to.
        fuse: one composed warp for all geometric steps (True) or one warp per step (False);
            see the module docstring for what fusing changes.
        interpolation: "nearest" (the reference's PIL default) or "bilinear" (differentiable in
            the matrix).
        fill: value of pixels warped in from outside the image (reference: grey 128/255).
        straight_through: identity gradient through the 8-bit point ops.
        partner: the image that ``sample_pairing`` blends with (same shape as ``img``, as it is
            at the step: geometric steps do not move it); required if `op_names` has that op.
        cutout_center: int [T, 2], the cutout centres already drawn (`cutout_centers`), as
            `Policy.sample_steps` gives them; default: drawn from `key`.
    """
    check_image("policy", img)
    op_names = check_vocabulary(op_names, has_partner=partner is not None)
    if partner is not None and partner.shape != img.shape:
        raise ValueError(f"apply_steps: partner must have img's shape {img.shape}, "
                         f"got {partner.shape}")
    h, w, _ = img.shape
    num_steps = op_index.shape[0]
    value = jnp.asarray(value, jnp.float32)
    if "cutout" not in op_names:
        cutout_center = [None] * num_steps
    elif cutout_center is None:
        cutout_center = cutout_centers(key, num_steps, h, w)
    has_geometric = any(n in GEOMETRIC_OPS for n in op_names)
    is_warp = _is_warp(op_index, applied, op_names)
    warps = step_matrices(op_index, value, applied, op_names=op_names, height=h,
                          width=w) if has_geometric else None

    def step(t, img, stats=None):
        out = _point_stages(cutout_center[t], img, op_index[t], value[t], op_names,
                            straight_through, stats, partner)
        return jnp.where(applied[t], out, img)

    if not fuse:
        for t in range(num_steps):
            if has_geometric:
                img = ops.affine(img, warps[t], interpolation=interpolation, fill=fill)
            img = step(t, img)
        return img

    if not has_geometric:
        for t in range(num_steps):
            img = step(t, img)
        return img

    # Step 0 runs on the image before the single resampling of all geometric steps, the others
    # after it; pixel-wise stages commute with a nearest warp. For two steps this is the
    # sequential order whatever their kinds. With more, a middle step that precedes the first
    # geometric one takes its statistics from `unwarped`, which follows the reference up to there
    # (the last step needs no such copy: if no warp precedes it, there is none at all).
    img = step(0, img)
    unwarped, before_warp = img, ~is_warp[0]
    img, fill_step = ops.warp_chain(img, warps, interpolation=interpolation, fill=fill)
    for t in range(1, num_steps):
        stats = jnp.where(before_warp, unwarped, img) if t + 1 < num_steps else img
        # Where the reference fills at a later geometric step, this step must not touch the fill.
        img = jnp.where(fill_step[..., None] > t, img, step(t, img, stats))
        if t + 1 < num_steps:
            unwarped = step(t, unwarped, stats)
            before_warp &= ~is_warp[t]
    return img
