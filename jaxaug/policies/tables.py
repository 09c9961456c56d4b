"""Published augmentation policies, written as plain data.

A *policy* is a tuple of *sub-policies*; a sub-policy is a tuple of *steps*; a step is
``(op_name, probability, level)`` where ``op_name`` is one of :data:`OP_NAMES`,
``probability`` is the chance in [0, 1] that the step is applied, and ``level`` is an
integer magnitude on the 0-10 scale of the AutoAugment search space (the reference code
calls the top of that scale ``PARAMETER_MAX`` / ``_MAX_LEVEL`` = 10). Turning a level into
an op parameter is done by :func:`jaxaug.policies.levels.level_to_arg`.

Sources (the numbers below were read from these files; op names were renamed to ours):

* AutoAugment paper: Cubuk et al., "AutoAugment: Learning Augmentation Strategies from
  Data", CVPR 2019, arXiv:1805.09501, appendix tables of the CIFAR-10, SVHN and ImageNet
  policies.
* ``pytorch/vision`` ``torchvision/transforms/autoaugment.py`` (commit 0352a47a42bd),
  ``AutoAugment._get_policies``: all three policies. torchvision stores ``None`` as the
  magnitude of the ops that ignore it (auto_contrast, equalize, invert).
* ``DeepVoltaire/AutoAugment`` ``autoaugment.py`` (commit 17d718251f25): the same three
  policies with the paper's magnitudes kept for the magnitude-free ops as well; we take
  those levels from here, since they are part of the published tables.
* ``tensorflow/models`` ``research/autoaugment/policies.py`` (commit 27b4acd41d75),
  ``good_policies()``: the policy actually used by the CIFAR training code (95
  sub-policies from several search runs), which contains 20 of the 25 published CIFAR-10
  sub-policies verbatim (see :data:`AUTOAUGMENT_CIFAR10`).

Every probability and every magnitude-bearing level here agrees between torchvision and
DeepVoltaire; the levels of magnitude-free ops also agree with tensorflow/models wherever
that file contains the sub-policy.
"""

from collections.abc import Sequence

#: A policy table: sub-policies of (op_name, probability, level) steps.
PolicyTable = Sequence[Sequence[tuple[str, float, int]]]

#: Every op name a policy may use, in our naming.
OP_NAMES = (
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "auto_contrast",
    "invert",
    "equalize",
    "solarize",
    "posterize",
    "contrast",
    "color",
    "brightness",
    "sharpness",
    "cutout",
    "sample_pairing",
    "identity",
)

#: Reference-code op names (AutoAugment / torchvision CamelCase) mapped to ours.
REFERENCE_OP_NAMES = {
    "ShearX": "shear_x",
    "ShearY": "shear_y",
    "TranslateX": "translate_x",
    "TranslateY": "translate_y",
    "Rotate": "rotate",
    "AutoContrast": "auto_contrast",
    "Invert": "invert",
    "Equalize": "equalize",
    "Solarize": "solarize",
    "Posterize": "posterize",
    "Contrast": "contrast",
    "Color": "color",
    "Brightness": "brightness",
    "Sharpness": "sharpness",
    "Cutout": "cutout",
    "SamplePairing": "sample_pairing",
    "Identity": "identity",
}

#: Inclusive bounds of a level in the AutoAugment tables.
MIN_LEVEL = 0
MAX_LEVEL = 10

AUTOAUGMENT_CIFAR10 = (
    # 0-4: also tensorflow/models good_policies() exp0_0.
    (("invert", 0.1, 7), ("contrast", 0.2, 6)),
    (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
    (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
    (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
    (("auto_contrast", 0.5, 8), ("equalize", 0.9, 2)),
    # 5-9: also exp1_0.
    (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
    (("color", 0.4, 3), ("brightness", 0.6, 7)),
    (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
    (("equalize", 0.6, 5), ("equalize", 0.5, 1)),
    (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
    # 10-14: also exp2_0.
    (("color", 0.7, 7), ("translate_x", 0.5, 8)),
    (("equalize", 0.3, 7), ("auto_contrast", 0.4, 8)),
    (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
    (("brightness", 0.9, 6), ("color", 0.2, 8)),
    (("solarize", 0.5, 2), ("invert", 0.0, 3)),
    # 15-19: published, but absent from tensorflow/models good_policies().
    (("equalize", 0.2, 0), ("auto_contrast", 0.6, 0)),
    (("equalize", 0.2, 8), ("equalize", 0.6, 4)),
    (("color", 0.9, 9), ("equalize", 0.6, 6)),
    (("auto_contrast", 0.8, 4), ("solarize", 0.2, 8)),
    (("brightness", 0.1, 3), ("color", 0.7, 0)),
    # 20-24: also exp0_1.
    (("solarize", 0.4, 5), ("auto_contrast", 0.9, 3)),
    (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
    (("auto_contrast", 0.9, 2), ("solarize", 0.8, 3)),
    (("equalize", 0.8, 8), ("invert", 0.1, 3)),
    (("translate_y", 0.7, 9), ("auto_contrast", 0.9, 1)),
)
"""The published AutoAugment CIFAR-10 policy: 25 sub-policies of 2 steps.

Follows the paper's appendix table, as reproduced by torchvision and DeepVoltaire (see
the module docstring). Sub-policies 0-14 and 20-24 are, in the same order, the first
sub-policies of ``exp0_0``, ``exp1_0``, ``exp2_0`` and ``exp0_1`` in tensorflow/models
``good_policies()``; sub-policies 15-19 are not in that file, whose 95-sub-policy list is
what ``train_cifar.py`` really trained with. Levels are meant for the tensorflow/models
CIFAR mappings (``variant="autoaugment"`` with a 32-pixel image).
"""

AUTOAUGMENT_SVHN = (
    (("shear_x", 0.9, 4), ("invert", 0.2, 3)),
    (("shear_y", 0.9, 8), ("invert", 0.7, 5)),
    (("equalize", 0.6, 5), ("solarize", 0.6, 6)),
    (("invert", 0.9, 3), ("equalize", 0.6, 3)),
    (("equalize", 0.6, 1), ("rotate", 0.9, 3)),
    (("shear_x", 0.9, 4), ("auto_contrast", 0.8, 3)),
    (("shear_y", 0.9, 8), ("invert", 0.4, 5)),
    (("shear_y", 0.9, 5), ("solarize", 0.2, 6)),
    (("invert", 0.9, 6), ("auto_contrast", 0.8, 1)),
    (("equalize", 0.6, 3), ("rotate", 0.9, 3)),
    (("shear_x", 0.9, 4), ("solarize", 0.3, 3)),
    (("shear_y", 0.8, 8), ("invert", 0.7, 4)),
    (("equalize", 0.9, 5), ("translate_y", 0.6, 6)),
    (("invert", 0.9, 4), ("equalize", 0.6, 7)),
    (("contrast", 0.3, 3), ("rotate", 0.8, 4)),
    (("invert", 0.8, 5), ("translate_y", 0.0, 2)),
    (("shear_y", 0.7, 6), ("solarize", 0.4, 8)),
    (("invert", 0.6, 4), ("rotate", 0.8, 4)),
    (("shear_y", 0.3, 7), ("translate_x", 0.9, 3)),
    (("shear_x", 0.1, 6), ("invert", 0.6, 5)),
    (("solarize", 0.7, 2), ("translate_y", 0.6, 7)),
    (("shear_y", 0.8, 4), ("invert", 0.8, 8)),
    (("shear_x", 0.7, 9), ("translate_y", 0.8, 3)),
    (("shear_y", 0.8, 5), ("auto_contrast", 0.7, 3)),
    (("shear_x", 0.7, 2), ("invert", 0.1, 5)),
)
"""The published AutoAugment reduced-SVHN policy: 25 sub-policies of 2 steps.

Follows the paper's appendix table as reproduced by torchvision (``AutoAugmentPolicy.SVHN``)
and DeepVoltaire (``SVHNPolicy``); no tensorflow repository ships this table. SVHN images
are 32x32, so the levels are meant for the same mappings as the CIFAR-10 policy.
"""

AUTOAUGMENT_IMAGENET = (
    (("posterize", 0.4, 8), ("rotate", 0.6, 9)),
    (("solarize", 0.6, 5), ("auto_contrast", 0.6, 5)),
    (("equalize", 0.8, 8), ("equalize", 0.6, 3)),
    (("posterize", 0.6, 7), ("posterize", 0.6, 6)),
    (("equalize", 0.4, 7), ("solarize", 0.2, 4)),
    (("equalize", 0.4, 4), ("rotate", 0.8, 8)),
    (("solarize", 0.6, 3), ("equalize", 0.6, 7)),
    (("posterize", 0.8, 5), ("equalize", 1.0, 2)),
    (("rotate", 0.2, 3), ("solarize", 0.6, 8)),
    (("equalize", 0.6, 8), ("posterize", 0.4, 6)),
    (("rotate", 0.8, 8), ("color", 0.4, 0)),
    (("rotate", 0.4, 9), ("equalize", 0.6, 2)),
    (("equalize", 0.0, 7), ("equalize", 0.8, 8)),
    (("invert", 0.6, 4), ("equalize", 1.0, 8)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("rotate", 0.8, 8), ("color", 1.0, 2)),
    (("color", 0.8, 8), ("solarize", 0.8, 7)),
    (("sharpness", 0.4, 7), ("invert", 0.6, 8)),
    (("shear_x", 0.6, 5), ("equalize", 1.0, 9)),
    (("color", 0.4, 0), ("equalize", 0.6, 3)),
    (("equalize", 0.4, 7), ("solarize", 0.2, 4)),
    (("solarize", 0.6, 5), ("auto_contrast", 0.6, 5)),
    (("invert", 0.6, 4), ("equalize", 1.0, 8)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("equalize", 0.8, 8), ("equalize", 0.6, 3)),
)
"""The published AutoAugment ImageNet policy: 25 sub-policies of 2 steps.

This is the policy of the paper's appendix, as reproduced by torchvision
(``AutoAugmentPolicy.IMAGENET``) and DeepVoltaire (``ImageNetPolicy``). It is *not*
``policy_v0`` of tensorflow/tpu ``models/official/efficientnet/autoaugment.py`` (the
EfficientNet code): that list is a different set of 25 sub-policies (it starts
``Equalize 0.8 1, ShearY 0.8 4``) and uses ``SolarizeAdd``, an op outside this library's op
set, even though its docstring says it is the paper's policy. As published, the table
repeats five sub-policies: 20, 21, 22, 23 and 24 equal 4, 1, 13, 14 and 2.
"""

RANDAUGMENT_OPS = (
    "identity",
    "auto_contrast",
    "equalize",
    "rotate",
    "solarize",
    "color",
    "posterize",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
"""The 14 ops of RandAugment.

As listed in the RandAugment paper (Cubuk et al., arXiv:1909.13719) and in torchvision's
``RandAugment._augmentation_space``. The authors' tensorflow/tpu code
(``distort_image_with_randaugment``) samples from a different list of 16: it drops
``identity`` and adds ``invert``, ``cutout`` and ``SolarizeAdd``.
"""

TRIVIAL_AUGMENT_WIDE_OPS = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "auto_contrast",
    "equalize",
)
"""The 14 ops of TrivialAugment-Wide (Mueller and Hutter, arXiv:2103.10158).

The same op set as :data:`RANDAUGMENT_OPS`, per torchvision's ``TrivialAugmentWide``, but
with wider ranges: shear up to 0.99, translate up to 32 px, rotate up to 135 degrees,
enhance factors 1 +/- 0.99 (0.01-1.99), posterize 8 down to 2 bits, solarize threshold 255
down to 0. torchvision spreads these ranges over 31 magnitude bins (0-30) and samples the
bin uniformly, not over the 0-10 levels of the AutoAugment tables; the
``"trivialaugment_wide"`` variant of :func:`jaxaug.policies.levels.level_to_arg` therefore
takes levels 0-30.
"""

RANDOM_COMPOSITION_OPS = (
    "auto_contrast",
    "brightness",
    "color",
    "contrast",
    "cutout",
    "equalize",
    "invert",
    "posterize",
    "rotate",
    "sharpness",
    "shear_x",
    "shear_y",
    "solarize",
    "translate_x",
    "translate_y",
)
"""The 15 ops that uncertainty-based sampling's copies draw from (Wu et al. 2020; the authors'
``senwu/dauphin``, ``dauphin/image/augment_policy.py``, policy ``uncertainty_sampling``): their
list of 16 without ``Mixup``, which mixes in a second image and its label.
"""

#: All published policy tables, by name.
POLICIES = {
    "autoaugment_cifar10": AUTOAUGMENT_CIFAR10,
    "autoaugment_svhn": AUTOAUGMENT_SVHN,
    "autoaugment_imagenet": AUTOAUGMENT_IMAGENET,
}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_op_name(op_name: str) -> None:
    """Raise ``ValueError`` naming ``op_name`` and the valid names if it is not one of ours."""
    if op_name not in OP_NAMES:
        raise ValueError(
            f"unknown augmentation op {op_name!r}; valid ops are: {', '.join(OP_NAMES)}"
        )


def check_level(op_name: str, level: int, max_level: int = MAX_LEVEL) -> None:
    """Raise ``ValueError`` naming the op and level unless ``level`` is an int in [0, max_level]."""
    if not _is_int(level) or not MIN_LEVEL <= level <= max_level:
        raise ValueError(
            f"op {op_name!r}: level {level!r} is not an integer in [{MIN_LEVEL}, {max_level}]"
        )


def validate_policy(policy: PolicyTable) -> PolicyTable:
    """Check that ``policy`` is a well-formed policy table and return it unchanged.

    A policy is a non-empty sequence of non-empty sub-policies, each a sequence of
    ``(op_name, probability, level)`` steps with ``op_name`` in :data:`OP_NAMES`,
    ``probability`` a number in [0, 1] and ``level`` an int in [0, 10].

    Raises:
        ValueError: naming the sub-policy, step and offending value.
    """
    if (
        isinstance(policy, (str, bytes))
        or not hasattr(policy, "__len__")
        or len(policy) == 0
    ):
        raise ValueError("a policy must be a non-empty sequence of sub-policies")
    for i, sub_policy in enumerate(policy):
        if (
            isinstance(sub_policy, (str, bytes))
            or not hasattr(sub_policy, "__len__")
            or len(sub_policy) == 0
        ):
            raise ValueError(f"sub-policy {i} must be a non-empty sequence of steps")
        for j, step in enumerate(sub_policy):
            if (
                isinstance(step, (str, bytes))
                or not hasattr(step, "__len__")
                or len(step) != 3
            ):
                raise ValueError(
                    f"sub-policy {i}, step {j}: expected (op_name, probability, level), "
                    f"got {step!r}"
                )
            op_name, probability, level = step
            where = f"sub-policy {i}, step {j}: "
            try:
                check_op_name(op_name)
                check_level(op_name, level)
            except ValueError as err:
                raise ValueError(where + str(err)) from None
            if not _is_number(probability) or not 0.0 <= probability <= 1.0:
                raise ValueError(
                    f"{where}op {op_name!r}: probability {probability!r} is not in [0, 1]"
                )
    return policy
