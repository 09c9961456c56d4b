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
* **lut**: the 8-bit point ops (invert, solarize, posterize, auto_contrast, equalize) are
  per-image, per-channel 256-entry tables: ``out = lut[c][round(255 x)] / 255``.
* **blend**: the enhance ops (brightness, color, contrast, sharpness) are
  ``clip(d + f (x - d))`` with the degenerate image ``d`` black, grey, the grey mean or the
  smoothed image.
* **cutout**: a grey square at a random centre.

Stages the vocabulary does not use are left out at trace time, and a stage whose op was not
drawn is an exact identity (``jnp.where``), so results do not drift through unused stages.

Two schedules:

* ``fuse=True`` (default): the matrices of all applied geometric steps are composed
  (``ops.compose``) and the image is resampled **once**, before the other stages. This is
  exact when the geometric steps are the only ones, or come first, except that consecutive
  geometric steps no longer lose content that one step moves out of the frame and the next
  moves back, and nearest sampling snaps to the pixel grid once instead of after each step.
  When a non-geometric step precedes a geometric one, its pixel values are still exact for
  point ops and brightness/color (they commute with a nearest warp), the grey fill is kept
  out of it (as in the reference, where the fill arrives after it), but ops whose parameters
  depend on the whole image (auto_contrast, equalize, contrast, sharpness, cutout) see the
  warped image instead of the unwarped one. ``bench/ops_throughput.py`` and
  ``tests/test_policies.py`` measure this against the sequential schedule.
* ``fuse=False``: each step warps (if geometric) and then runs its stages, in order: the
  sequential semantics of the reference code, at the price of one resampling per step.
"""

import jax
import jax.numpy as jnp

from jaxaug import ops
from jaxaug.ops.color import mean_grey
from jaxaug.ops.point import (
    apply_luts,
    auto_contrast_lut,
    equalize_lut,
    invert_lut,
    posterize_lut,
    solarize_lut,
    to_levels,
)
from jaxaug.ops.validate import check_image
from jaxaug.policies.tables import check_op_name

GREY = 128.0 / 255.0

GEOMETRIC_OPS = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
LUT_OPS = ("invert", "solarize", "posterize", "auto_contrast", "equalize")
BLEND_OPS = ("brightness", "color", "contrast", "sharpness")


def check_vocabulary(op_names):
    """Raise ValueError for an unknown op, or for an op a single-image policy cannot run."""
    for name in op_names:
        check_op_name(name)
        if name == "sample_pairing":
            raise ValueError(
                "op 'sample_pairing' needs a partner image, which a (key, img) -> img policy "
                "does not have; call jaxaug.ops.sample_pairing directly"
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


def step_matrix(op, value, op_names, height, width):
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


def _lut_stage(img, stats, op, value, op_names, straight_through):
    used = [n for n in op_names if n in LUT_OPS]
    if not used:
        return img
    levels = to_levels(stats)
    builders = {
        "invert": lambda: invert_lut(),
        "solarize": lambda: solarize_lut(value),
        "posterize": lambda: posterize_lut(value),
        "auto_contrast": lambda: auto_contrast_lut(levels),
        "equalize": lambda: equalize_lut(levels),
    }
    channels = img.shape[-1]
    luts = {n: jnp.broadcast_to(builders[n](), (channels, 256)) for n in used}
    lut = _select(op, op_names, luts, jnp.broadcast_to(jnp.arange(256), (channels, 256)))
    out = apply_luts(img, lut, straight_through=straight_through)
    return jnp.where(_is_any(op, op_names, LUT_OPS), out, img)


def _blend_stage(img, stats, op, value, op_names):
    used = [n for n in op_names if n in BLEND_OPS]
    if not used:
        return img
    degenerates = {
        "brightness": lambda: jnp.zeros_like(img),
        "color": lambda: ops.color(img, 0.0),
        "contrast": lambda: jnp.broadcast_to(mean_grey(stats), img.shape),
        "sharpness": lambda: ops.smooth(img),
    }
    degenerate = _select(op, op_names, {n: degenerates[n]() for n in used}, img)
    out = jnp.clip(degenerate + value.astype(img.dtype) * (img - degenerate), 0.0, 1.0)
    return jnp.where(_is_any(op, op_names, BLEND_OPS), out, img)


def _cutout_stage(key, img, op, value, op_names):
    if "cutout" not in op_names:
        return img
    h, w, _ = img.shape
    center = jax.random.randint(key, (2,), 0, jnp.asarray([h, w]))
    out = ops.cutout(img, center, jnp.round(value).astype(jnp.int32), fill=GREY)
    return jnp.where(op == op_names.index("cutout"), out, img)


def _point_stages(key, img, op, value, op_names, straight_through, stats=None):
    """The lut, blend and cutout stages of one step. Image statistics (auto_contrast, equalize,
    contrast) are those of `stats` (default: `img`), the image the reference's step sees."""
    stats = img if stats is None else stats
    img = _lut_stage(img, stats, op, value, op_names, straight_through)
    img = _blend_stage(img, stats, op, value, op_names)
    return _cutout_stage(key, img, op, value, op_names)


def apply_steps(key, img, op_index, value, applied, *, op_names, fuse=True,
                interpolation="nearest", fill=GREY, straight_through=False):
    """Apply T sampled steps to one float image [H, W, C] in [0, 1].

    Args:
        key: PRNG key (cutout centres).
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
    """
    check_image("policy", img)
    op_names = check_vocabulary(op_names)
    h, w, _ = img.shape
    num_steps = op_index.shape[0]
    value = jnp.asarray(value, jnp.float32)
    keys = jax.random.split(key, num_steps)
    has_geometric = any(n in GEOMETRIC_OPS for n in op_names)
    eye = jnp.eye(3, dtype=jnp.float32)
    warps = [jnp.where(applied[t] & _is_any(op_index[t], op_names, GEOMETRIC_OPS),
                       step_matrix(op_index[t], value[t], op_names, h, w), eye)
             for t in range(num_steps)] if has_geometric else []

    if not fuse:
        for t in range(num_steps):
            if has_geometric:
                img = ops.affine(img, warps[t], interpolation=interpolation, fill=fill)
            out = _point_stages(keys[t], img, op_index[t], value[t], op_names, straight_through)
            img = jnp.where(applied[t], out, img)
        return img

    if not has_geometric:
        for t in range(num_steps):
            out = _point_stages(keys[t], img, op_index[t], value[t], op_names, straight_through)
            img = jnp.where(applied[t], out, img)
        return img

    # One resampling for all geometric steps. `unwarped` follows the reference until its first
    # geometric step, so the steps before it take their statistics from the image they see
    # there; pixel-wise stages commute with a nearest warp, so their values on the warped image
    # are the reference's.
    unwarped = img
    img, fill_step = ops.warp_chain(img, jnp.stack(warps), interpolation=interpolation,
                                    fill=fill)
    fill_step = fill_step[..., None]
    before_warp = jnp.asarray(True)
    for t in range(num_steps):
        stats = jnp.where(before_warp, unwarped, img)
        out = _point_stages(keys[t], img, op_index[t], value[t], op_names, straight_through,
                            stats)
        # Where the reference fills at a later geometric step, this step must not touch the fill.
        out = jnp.where(fill_step > t, img, out)
        img = jnp.where(applied[t], out, img)
        if t + 1 < num_steps:
            unwarped_out = _point_stages(keys[t], unwarped, op_index[t], value[t], op_names,
                                         straight_through, stats)
            unwarped = jnp.where(applied[t], unwarped_out, unwarped)
            before_warp &= ~(applied[t] & _is_any(op_index[t], op_names, GEOMETRIC_OPS))
    return img
