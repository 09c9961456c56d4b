"""Level-to-parameter mappings of the AutoAugment family.

A policy step names an op and an integer *level*; :func:`level_to_arg` turns the level into
the parameter the op takes, in natural units. Each op has one small function below whose
docstring states its formula and where the formula comes from. The references are:

* **tf/models**: ``tensorflow/models`` ``research/autoaugment/augmentation_transforms.py``
  (the AutoAugment CIFAR code; ``PARAMETER_MAX = 10``). It scales with
  ``float_parameter(level, m) = level * m / 10`` and
  ``int_parameter(level, m) = int(level * m / 10)``, and works on 32x32 images.
* **tpu**: ``tensorflow/tpu`` ``models/official/efficientnet/autoaugment.py`` (the ImageNet
  AutoAugment and RandAugment code; ``_MAX_LEVEL = 10``), whose translate and cutout scale
  with ``translate_const`` / ``cutout_const``: 250 / 100 for AutoAugment, 100 / 40 for
  RandAugment.
* **torchvision**: ``pytorch/vision`` ``torchvision/transforms/autoaugment.py``,
  ``TrivialAugmentWide._augmentation_space`` with 31 magnitude bins.
* **fast-autoaugment**: ``kakaobrain/fast-autoaugment`` ``augmentations.py``, whose
  ``SamplePairing`` takes a blend weight in [0, 0.4]; neither tensorflow repository
  implements sample pairing.

Variants and level ranges:

======================  ======  ==========================  ==============================
variant                 levels  image_size <= 32            image_size > 32
======================  ======  ==========================  ==============================
``autoaugment``         0-10    tf/models: translate 10 px, tpu AutoAugment: translate
                                cutout side 20 px           250 px, cutout side 2 * 100 px
``randaugment``         0-10    as ``autoaugment``          tpu RandAugment: translate
                                                            100 px, cutout side 2 * 40 px
``trivialaugment_wide`` 0-30    torchvision, independent of image_size (translate 32 px)
======================  ======  ==========================  ==============================

All other AutoAugment/RandAugment formulas are the same in tf/models and tpu, except
posterize and solarize, where tpu reverses the direction (see :func:`posterize_arg` and
:func:`solarize_arg`); we follow tf/models, in which a higher level is always a stronger
change.

Signs: rotate, shear and translate (and, in ``trivialaugment_wide`` only, the four enhance
ops) are *signed*. :func:`level_to_arg` returns the value for the positive sign; the sign
is drawn at sampling time, negative with probability 1/2 (as every reference does), and
applied by :func:`apply_sign`, which reflects the value about the op's identity point
(0 for geometric ops, 1 for enhance factors).
"""

from jaxaug.policies.tables import OP_NAMES, check_level, check_op_name

VARIANTS = ("autoaugment", "randaugment", "trivialaugment_wide")

#: Highest level each variant accepts (levels start at 0).
VARIANT_MAX_LEVEL = {"autoaugment": 10, "randaugment": 10, "trivialaugment_wide": 30}

#: Images at most this many pixels on a side get the tf/models CIFAR constants.
SMALL_IMAGE_SIZE = 32

# tensorflow/tpu translate_const / cutout_const per variant (for images over 32 px).
_TPU_TRANSLATE_CONST = {"autoaugment": 250.0, "randaugment": 100.0}
_TPU_CUTOUT_CONST = {"autoaugment": 100, "randaugment": 40}

_ENHANCE_OPS = ("brightness", "color", "contrast", "sharpness")
_GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
_MAGNITUDE_FREE_OPS = ("auto_contrast", "equalize", "invert", "identity")
_NOT_IN_WIDE = ("cutout", "sample_pairing")


def _fraction(level, variant):
    """The level as a fraction of the variant's top level."""
    return level / VARIANT_MAX_LEVEL[variant]


def rotate_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> float:
    """Rotation angle in degrees (signed).

    * autoaugment / randaugment: ``level / 10 * 30`` (tf/models
      ``int_parameter(level, 30)``, tpu ``level / 10 * 30``; equal for integer levels),
      so at most 30 degrees.
    * trivialaugment_wide: ``level / 30 * 135``, at most 135 degrees.
    """
    del image_size
    top = 135.0 if variant == "trivialaugment_wide" else 30.0
    return level * top / VARIANT_MAX_LEVEL[variant]


def shear_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> float:
    """Shear coefficient (signed), the off-diagonal entry of the affine matrix.

    * autoaugment / randaugment: ``level / 10 * 0.3`` (tf/models ``float_parameter(level,
      0.3)``, tpu ``_shear_level_to_arg``).
    * trivialaugment_wide: ``level / 30 * 0.99``. (torchvision passes
      ``degrees(atan(value))`` as its shear angle, i.e. the same coefficient.)
    """
    del image_size
    top = 0.99 if variant == "trivialaugment_wide" else 0.3
    return level * top / VARIANT_MAX_LEVEL[variant]


def translate_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> float:
    """Translation in pixels (signed).

    * autoaugment / randaugment, ``image_size <= 32``: ``int(level / 10 * 10)`` = ``level``
      pixels (tf/models ``int_parameter(level, 10)``, written for 32x32 CIFAR images).
    * autoaugment, ``image_size > 32``: ``level / 10 * 250`` pixels (tpu,
      ``translate_const=250`` of ``distort_image_with_autoaugment``).
    * randaugment, ``image_size > 32``: ``level / 10 * 100`` pixels (tpu,
      ``translate_const=100`` of ``distort_image_with_randaugment``).
    * trivialaugment_wide: ``int(level / 30 * 32)`` pixels whatever the image size
      (torchvision: magnitude ``linspace(0, 32, 31)[level]``, applied as
      ``translate=[int(magnitude), 0]``; truncation commutes with the sign). Untruncated, the
      nearest warp would round instead, a pixel further at 14 of the 31 levels.
    """
    if variant == "trivialaugment_wide":
        return float(int(level * 32 / 30))
    if image_size <= SMALL_IMAGE_SIZE:
        return float(int(level * 10 / 10))
    return level * _TPU_TRANSLATE_CONST[variant] / 10


def solarize_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> float:
    """Solarize threshold in [0, 1] pixel units: pixels ``>= threshold`` are inverted.

    The references work on 8-bit pixels; we return the 8-bit threshold divided by 255, so
    that an 8-bit pixel ``p`` is inverted exactly when ``p / 255 >= value`` (a value above 1
    inverts nothing).

    * autoaugment / randaugment: 8-bit threshold ``256 - int(level / 10 * 256)`` (tf/models
      ``256 - int_parameter(level, 256)``): 256 (no change) at level 0, 128 at level 5,
      0 (invert everything) at level 10. tpu instead uses ``int(level / 10 * 256)``, i.e.
      the reverse direction (level 0 inverts everything); we do not follow that.
    * trivialaugment_wide: 8-bit threshold ``255 - level / 30 * 255`` (torchvision
      ``linspace(255, 0, 31)``), i.e. ``1 - level / 30`` in [0, 1] units.
    """
    del image_size
    if variant == "trivialaugment_wide":
        return 1.0 - level / 30
    return (256 - int(level * 256 / 10)) / 255.0


def posterize_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> int:
    """Number of high bits kept per 8-bit channel (an int).

    * autoaugment / randaugment: ``4 - int(level / 10 * 4)`` (tf/models
      ``4 - int_parameter(level, 4)``): 4 bits at level 0, 2 at level 5, 0 at level 10 (an
      all-black image). tpu instead keeps ``int(level / 10 * 4)`` bits, the reverse
      direction; we do not follow that.
    * trivialaugment_wide: ``8 - round(level / 5)`` (torchvision
      ``8 - round(arange(31) / (30 / 6))``): 8 bits at level 0 down to 2 at level 30.
    """
    del image_size
    if variant == "trivialaugment_wide":
        return 8 - round(level / 5)
    return 4 - int(level * 4 / 10)


def enhance_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> float:
    """Enhancement factor of brightness, color, contrast and sharpness (1 = unchanged).

    * autoaugment / randaugment: ``level / 10 * 1.8 + 0.1``, in [0.1, 1.9], unsigned
      (tf/models ``float_parameter(level, 1.8) + 0.1``, tpu ``_enhance_level_to_arg``).
    * trivialaugment_wide: ``1 + level / 30 * 0.99`` for the positive sign and
      ``1 - level / 30 * 0.99`` for the negative one (torchvision applies
      ``1 + signed magnitude``), so factors span 0.01-1.99; signed, see :func:`apply_sign`.
    """
    del image_size
    if variant == "trivialaugment_wide":
        return 1.0 + level * 0.99 / 30
    return level * 1.8 / 10 + 0.1


def cutout_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> int:
    """Side length in pixels of the square cutout patch (an int).

    * ``image_size <= 32``: ``int(level / 10 * 20)`` (tf/models ``int_parameter(level,
      20)``; its mask spans ``size // 2`` each side of the centre).
    * ``image_size > 32``: ``2 * int(level / 10 * cutout_const)`` with cutout_const 100
      (autoaugment) or 40 (randaugment): tpu's ``cutout`` takes a half-side ``pad_size`` and
      masks ``2 * pad_size`` square.
    * trivialaugment_wide has no cutout.
    """
    if image_size <= SMALL_IMAGE_SIZE:
        return int(level * 20 / 10)
    return 2 * int(level * _TPU_CUTOUT_CONST[variant] / 10)


def sample_pairing_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> float:
    """Blend weight of the paired image: ``level / 10 * 0.4``, in [0, 0.4].

    The range is fast-autoaugment's ``SamplePairing`` (``Image.blend(img, other, v)`` with
    v in [0, 0.4]), scaled linearly as every other AutoAugment op. trivialaugment_wide has
    no sample pairing.
    """
    del image_size, variant
    return level * 0.4 / 10


def no_arg(level: int, *, image_size: int = 32, variant: str = "autoaugment") -> None:
    """Ops without a magnitude (auto_contrast, equalize, invert, identity): ``None``.

    The tables still carry a level for them (the search predicted one); it is ignored.
    """
    del level, image_size, variant


#: The mapping function of each op.
LEVEL_FNS = {
    "shear_x": shear_arg,
    "shear_y": shear_arg,
    "translate_x": translate_arg,
    "translate_y": translate_arg,
    "rotate": rotate_arg,
    "auto_contrast": no_arg,
    "invert": no_arg,
    "equalize": no_arg,
    "solarize": solarize_arg,
    "posterize": posterize_arg,
    "contrast": enhance_arg,
    "color": enhance_arg,
    "brightness": enhance_arg,
    "sharpness": enhance_arg,
    "cutout": cutout_arg,
    "sample_pairing": sample_pairing_arg,
    "identity": no_arg,
}
assert set(LEVEL_FNS) == set(OP_NAMES)


def _check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {variant!r}; valid variants are: {', '.join(VARIANTS)}"
        )


def level_to_arg(op_name: str, level: int, *, image_size: int = 32, variant: str = "autoaugment"
                 ) -> float | int | None:
    """The natural-unit parameter of ``op_name`` at integer ``level``.

    Args:
        op_name: one of :data:`jaxaug.policies.tables.OP_NAMES`.
        level: int in [0, 10] (autoaugment, randaugment) or [0, 30] (trivialaugment_wide).
        image_size: side of the (square) image in pixels; picks the translate and cutout
            constants of autoaugment / randaugment (see the module docstring).
        variant: ``"autoaugment"``, ``"randaugment"`` or ``"trivialaugment_wide"``.

    Returns:
        degrees (rotate), shear coefficient (shear_*), pixels (translate_*), threshold in
        [0, 1] units (solarize), bits kept (posterize, int), enhancement factor (brightness,
        color, contrast, sharpness), patch side in pixels (cutout, int), blend weight
        (sample_pairing), or ``None`` for magnitude-free ops. Signed ops return the value
        for the positive sign; see :func:`apply_sign`.

    Raises:
        ValueError: unknown op (the message lists the valid ones), unknown variant, level
            out of range (the message names op and level), a non-positive image_size, or an
            op that has no range in the trivialaugment_wide variant (cutout,
            sample_pairing).
    """
    check_op_name(op_name)
    _check_variant(variant)
    check_level(op_name, level, VARIANT_MAX_LEVEL[variant])
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, int)
        or image_size <= 0
    ):
        raise ValueError(
            f"op {op_name!r}: image_size {image_size!r} is not a positive int"
        )
    if variant == "trivialaugment_wide" and op_name in _NOT_IN_WIDE:
        raise ValueError(
            f"op {op_name!r} has no magnitude range in variant 'trivialaugment_wide'"
        )
    return LEVEL_FNS[op_name](level, image_size=image_size, variant=variant)


def is_signed(op_name: str, *, variant: str = "autoaugment") -> bool:
    """Whether ``op_name``'s parameter gets a random sign at sampling time in ``variant``."""
    check_op_name(op_name)
    _check_variant(variant)
    if op_name in _GEOMETRIC_OPS:
        return True
    return variant == "trivialaugment_wide" and op_name in _ENHANCE_OPS


def apply_sign(op_name: str, value: float, negate: bool, *, variant: str = "autoaugment") -> float:
    """The parameter for the drawn sign: ``value`` or its reflection about the identity point.

    For signed ops, ``negate=True`` maps ``value`` to ``-value`` (geometric ops) or to
    ``2 - value`` (enhance factors in trivialaugment_wide, i.e. ``1 - magnitude``). Unsigned
    ops return ``value`` whatever ``negate`` is. Draw ``negate`` with probability 1/2.
    """
    if not is_signed(op_name, variant=variant) or not negate:
        return value
    pivot = 1.0 if op_name in _ENHANCE_OPS else 0.0
    return 2.0 * pivot - value
