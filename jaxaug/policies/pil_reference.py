"""The reference semantics of a policy step on 8-bit PIL images, one op at a time.

This is the second implementation the JAX policies are checked against (tests), the
per-image Pillow loop they are timed against (``bench/ops_throughput.py``) and the applier of
the host-side policies (:mod:`jaxaug.data.host_augment`). It mirrors the
AutoAugment / RandAugment reference code: every op works on a uint8 RGB ``PIL.Image``, the
geometric ops resample with NEAREST and fill with grey (128, 128, 128), and the parameters are
the natural-unit values of :func:`jaxaug.policies.levels.level_to_arg` (after the sign).
"""

import math
from collections.abc import Sequence

from PIL import Image, ImageEnhance, ImageOps

GREY = (128, 128, 128)


RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}


def _affine(img, data, resample, fill):
    return img.transform(img.size, Image.Transform.AFFINE, data, resample, fillcolor=fill)


def _cutout(img, size, center):
    cy, cx = center
    half = int(size) // 2
    out = img.copy()
    box = (max(cx - half, 0), max(cy - half, 0), min(cx + half, img.width),
           min(cy + half, img.height))
    if box[2] > box[0] and box[3] > box[1]:
        out.paste(GREY, box)
    return out


_GEOMETRIC = {
    "shear_x": lambda img, v, r, f: _affine(img, (1, v, 0, 0, 1, 0), r, f),
    "shear_y": lambda img, v, r, f: _affine(img, (1, 0, 0, v, 1, 0), r, f),
    "translate_x": lambda img, v, r, f: _affine(img, (1, 0, v, 0, 1, 0), r, f),
    "translate_y": lambda img, v, r, f: _affine(img, (1, 0, 0, 0, 1, v), r, f),
    "rotate": lambda img, v, r, f: img.rotate(v, resample=r, fillcolor=f),
}

_OPS = {
    "identity": lambda img, v: img,
    "auto_contrast": lambda img, v: ImageOps.autocontrast(img),
    "invert": lambda img, v: ImageOps.invert(img),
    "equalize": lambda img, v: ImageOps.equalize(img),
    # Our threshold is the 8-bit threshold / 255; PIL takes the 8-bit one, which may be
    # fractional (TrivialAugment-Wide's 246.5): the first level at or above it, with the slack
    # that keeps k / 255 at k after float rounding (jaxaug.ops.point.solarize_threshold).
    "solarize": lambda img, v: ImageOps.solarize(img, math.ceil(float(v) * 255 - 1e-3)),
    "posterize": lambda img, v: (ImageOps.posterize(img, int(v)) if int(v) > 0
                                 else Image.new(img.mode, img.size)),
    "contrast": lambda img, v: ImageEnhance.Contrast(img).enhance(v),
    "color": lambda img, v: ImageEnhance.Color(img).enhance(v),
    "brightness": lambda img, v: ImageEnhance.Brightness(img).enhance(v),
    "sharpness": lambda img, v: ImageEnhance.Sharpness(img).enhance(v),
}


#: The ops this module can apply.
OP_NAMES = (*_GEOMETRIC, *_OPS, "cutout")


def apply_op(img: Image.Image, op_name: str, value: float | None, *,
             cutout_center: tuple[int, int] | None = None, interpolation: str = "nearest",
             fill: tuple[int, ...] = GREY) -> Image.Image:
    """Apply one op to the uint8 PIL image ``img``; ``cutout_center`` (row, col) for cutout.
    Geometric ops resample with ``interpolation`` ("nearest", the reference's, or "bilinear")
    and fill with the 8-bit ``fill``; cutout always fills grey, as the policies' cutout does.

    posterize to 0 bits gives black (PIL refuses bits=0; the tf/models reference computes
    the same black image with its own bit mask).
    """
    if op_name == "cutout":
        return _cutout(img, value, cutout_center)
    if op_name in _GEOMETRIC:
        return _GEOMETRIC[op_name](img, value, RESAMPLING[interpolation], fill)
    if op_name not in _OPS:
        raise ValueError(f"pil_reference: no reference for op {op_name!r}")
    return _OPS[op_name](img, value)


def apply_steps(img: Image.Image, steps: Sequence[tuple], *, interpolation: str = "nearest",
                fill: tuple[int, ...] = GREY) -> Image.Image:
    """Apply ``steps``, a sequence of ``(op_name, value)`` or ``(op_name, value, cutout_center)``,
    in order, as the reference code does (each op sees the previous op's 8-bit output);
    ``interpolation`` and ``fill`` as in :func:`apply_op`."""
    for step in steps:
        img = apply_op(img, step[0], step[1], cutout_center=step[2] if len(step) > 2 else None,
                       interpolation=interpolation, fill=fill)
    return img
