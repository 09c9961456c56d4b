"""Tests of the published policy tables and the level-to-parameter mappings."""

import numpy as np
import pytest

from jaxaug.policies import levels, tables
from jaxaug.policies.levels import apply_sign, is_signed, level_to_arg
from jaxaug.policies.tables import (
    AUTOAUGMENT_CIFAR10,
    AUTOAUGMENT_IMAGENET,
    AUTOAUGMENT_SVHN,
    OP_NAMES,
    POLICIES,
    RANDAUGMENT_OPS,
    TRIVIAL_AUGMENT_WIDE_OPS,
    validate_policy,
)

ALL_TABLES = [AUTOAUGMENT_CIFAR10, AUTOAUGMENT_SVHN, AUTOAUGMENT_IMAGENET]


@pytest.mark.parametrize("policy", ALL_TABLES, ids=["cifar10", "svhn", "imagenet"])
def test_table_shape_and_contents(policy):
    assert len(policy) == 25
    assert all(len(sub) == 2 for sub in policy)
    for sub in policy:
        for op_name, prob, level in sub:
            assert op_name in OP_NAMES
            assert 0.0 <= prob <= 1.0
            assert isinstance(level, int) and 0 <= level <= 10
    assert validate_policy(policy) is policy


def test_policies_registry():
    assert set(POLICIES) == {
        "autoaugment_cifar10",
        "autoaugment_svhn",
        "autoaugment_imagenet",
    }
    assert POLICIES["autoaugment_cifar10"] is AUTOAUGMENT_CIFAR10


@pytest.mark.parametrize(
    "policy, index, expected",
    [
        # Values read from torchvision / DeepVoltaire / tensorflow/models policies.py.
        (AUTOAUGMENT_CIFAR10, 0, (("invert", 0.1, 7), ("contrast", 0.2, 6))),
        (AUTOAUGMENT_CIFAR10, 1, (("rotate", 0.7, 2), ("translate_x", 0.3, 9))),
        (AUTOAUGMENT_CIFAR10, 5, (("shear_y", 0.2, 7), ("posterize", 0.3, 7))),
        (AUTOAUGMENT_CIFAR10, 17, (("color", 0.9, 9), ("equalize", 0.6, 6))),
        (AUTOAUGMENT_CIFAR10, 24, (("translate_y", 0.7, 9), ("auto_contrast", 0.9, 1))),
        (AUTOAUGMENT_SVHN, 0, (("shear_x", 0.9, 4), ("invert", 0.2, 3))),
        (AUTOAUGMENT_SVHN, 14, (("contrast", 0.3, 3), ("rotate", 0.8, 4))),
        (AUTOAUGMENT_SVHN, 24, (("shear_x", 0.7, 2), ("invert", 0.1, 5))),
        (AUTOAUGMENT_IMAGENET, 0, (("posterize", 0.4, 8), ("rotate", 0.6, 9))),
        (AUTOAUGMENT_IMAGENET, 14, (("color", 0.6, 4), ("contrast", 1.0, 8))),
        (AUTOAUGMENT_IMAGENET, 18, (("shear_x", 0.6, 5), ("equalize", 1.0, 9))),
    ],
)
def test_published_entries(policy, index, expected):
    assert policy[index] == expected


def test_imagenet_is_the_paper_policy_not_tpu_v0():
    # tensorflow/tpu policy_v0 starts with (Equalize 0.8 1, ShearY 0.8 4).
    assert AUTOAUGMENT_IMAGENET[0] != (("equalize", 0.8, 1), ("shear_y", 0.8, 4))
    # The published table repeats five sub-policies.
    for late, early in [(20, 4), (21, 1), (22, 13), (23, 14), (24, 2)]:
        assert AUTOAUGMENT_IMAGENET[late] == AUTOAUGMENT_IMAGENET[early]


def test_op_lists():
    assert len(RANDAUGMENT_OPS) == 14 and len(set(RANDAUGMENT_OPS)) == 14
    assert set(TRIVIAL_AUGMENT_WIDE_OPS) == set(RANDAUGMENT_OPS)
    assert set(RANDAUGMENT_OPS) <= set(OP_NAMES)
    assert "identity" in RANDAUGMENT_OPS and "invert" not in RANDAUGMENT_OPS
    assert "cutout" not in TRIVIAL_AUGMENT_WIDE_OPS
    assert set(tables.REFERENCE_OP_NAMES.values()) == set(OP_NAMES)


def test_validate_policy_errors():
    with pytest.raises(ValueError, match="probability 1.5"):
        validate_policy([[("rotate", 1.5, 3)]])
    with pytest.raises(ValueError, match="probability -0.1"):
        validate_policy([[("rotate", -0.1, 3)]])
    with pytest.raises(ValueError, match=r"'Rotate'.*valid ops are: shear_x"):
        validate_policy([[("Rotate", 0.5, 3)]])
    with pytest.raises(ValueError, match=r"'rotate': level 11"):
        validate_policy([[("rotate", 0.5, 11)]])
    with pytest.raises(ValueError, match=r"'rotate': level 2.5"):
        validate_policy([[("rotate", 0.5, 2.5)]])
    with pytest.raises(ValueError, match=r"sub-policy 1, step 0"):
        validate_policy([[("rotate", 0.5, 1)], [("rotate", 0.5, -1)]])
    with pytest.raises(ValueError, match="expected"):
        validate_policy([[("rotate", 0.5)]])
    with pytest.raises(ValueError):
        validate_policy([])
    with pytest.raises(ValueError):
        validate_policy([[]])


# (op, variant, image_size, {level: expected}) from the closed forms of the references.
AA = "autoaugment"
RA = "randaugment"
TAW = "trivialaugment_wide"
MAPPINGS = [
    ("rotate", AA, 32, {0: 0.0, 5: 15.0, 10: 30.0}),
    ("rotate", RA, 224, {0: 0.0, 5: 15.0, 10: 30.0}),
    ("rotate", TAW, 32, {0: 0.0, 15: 67.5, 30: 135.0}),
    ("shear_x", AA, 32, {0: 0.0, 5: 0.15, 10: 0.3}),
    ("shear_y", AA, 224, {0: 0.0, 5: 0.15, 10: 0.3}),
    ("shear_x", TAW, 32, {0: 0.0, 15: 0.495, 30: 0.99}),
    ("translate_x", AA, 32, {0: 0.0, 5: 5.0, 10: 10.0}),
    ("translate_y", AA, 224, {0: 0.0, 5: 125.0, 10: 250.0}),
    ("translate_x", RA, 32, {0: 0.0, 5: 5.0, 10: 10.0}),
    ("translate_x", RA, 224, {0: 0.0, 5: 50.0, 10: 100.0}),
    # torchvision applies int(linspace(0, 32, 31)[level]): 8.53 px at level 8 moves 8 px.
    ("translate_y", TAW, 224, {0: 0.0, 1: 1.0, 8: 8.0, 14: 14.0, 15: 16.0, 29: 30.0, 30: 32.0}),
    ("solarize", AA, 32, {0: 256 / 255, 3: 180 / 255, 5: 128 / 255, 10: 0.0}),
    ("solarize", RA, 224, {0: 256 / 255, 5: 128 / 255, 10: 0.0}),
    ("solarize", TAW, 32, {0: 1.0, 15: 0.5, 30: 0.0}),
    ("posterize", AA, 32, {0: 4, 3: 3, 5: 2, 8: 1, 10: 0}),
    ("posterize", TAW, 32, {0: 8, 5: 7, 15: 5, 30: 2}),
    ("brightness", AA, 32, {0: 0.1, 5: 1.0, 10: 1.9}),
    ("color", RA, 224, {0: 0.1, 5: 1.0, 10: 1.9}),
    ("contrast", AA, 224, {0: 0.1, 5: 1.0, 10: 1.9}),
    ("sharpness", TAW, 32, {0: 1.0, 15: 1.495, 30: 1.99}),
    ("cutout", AA, 32, {0: 0, 5: 10, 10: 20}),
    ("cutout", AA, 224, {0: 0, 5: 100, 10: 200}),
    ("cutout", RA, 224, {0: 0, 5: 40, 10: 80}),
    ("sample_pairing", AA, 32, {0: 0.0, 5: 0.2, 10: 0.4}),
]


@pytest.mark.parametrize("op_name, variant, image_size, expected", MAPPINGS)
def test_level_mappings(op_name, variant, image_size, expected):
    for level, value in expected.items():
        got = level_to_arg(op_name, level, image_size=image_size, variant=variant)
        assert got == pytest.approx(value, abs=1e-9), (op_name, variant, level)
        if op_name in ("posterize", "cutout"):
            assert isinstance(got, int)


@pytest.mark.parametrize("op_name", ["auto_contrast", "equalize", "invert", "identity"])
def test_magnitude_free_ops(op_name):
    for level in (0, 5, 10):
        assert level_to_arg(op_name, level) is None


# Each op's parameter that changes nothing: the strength of a value is its distance from it.
IDENTITY_POINT = {"rotate": 0.0, "shear_x": 0.0, "shear_y": 0.0, "translate_x": 0.0,
                  "translate_y": 0.0, "solarize": 256 / 255, "posterize": 8, "cutout": 0,
                  "sample_pairing": 0.0, "brightness": 1.0, "color": 1.0, "contrast": 1.0,
                  "sharpness": 1.0}


def test_every_op_and_level_maps_in_every_variant():
    """Every (variant, op, level) maps to its kind of value, and a higher level is never a weaker
    change (the levels module's rule: tf/models' direction for posterize and solarize, not tpu's
    reversed one); AutoAugment's unsigned enhance factors, 0.1-1.9, are the one exception."""
    for variant in levels.VARIANTS:
        top = levels.VARIANT_MAX_LEVEL[variant]
        for op_name in OP_NAMES:
            if variant == TAW and op_name in ("cutout", "sample_pairing"):
                continue
            values = [level_to_arg(op_name, level, variant=variant, image_size=224)
                      for level in range(top + 1)]
            if op_name not in IDENTITY_POINT:
                assert values == [None] * (top + 1), (variant, op_name)
                continue
            if op_name in ("posterize", "cutout"):
                assert all(isinstance(v, int) for v in values), (variant, op_name)
            if variant != TAW and op_name in levels._ENHANCE_OPS:
                continue
            strength = np.abs(np.asarray(values, float) - IDENTITY_POINT[op_name])
            assert np.all(np.diff(strength) >= 0), (variant, op_name, values)
            assert strength[-1] > strength[0], (variant, op_name, values)


def test_level_mapping_errors():
    with pytest.raises(ValueError, match=r"'spin'.*valid ops are:.*rotate"):
        level_to_arg("spin", 3)
    with pytest.raises(ValueError, match=r"'rotate': level 11"):
        level_to_arg("rotate", 11)
    with pytest.raises(ValueError, match=r"'posterize': level -1"):
        level_to_arg("posterize", -1)
    with pytest.raises(ValueError, match=r"'rotate': level True"):
        level_to_arg("rotate", True)
    with pytest.raises(ValueError, match=r"'rotate': level 31 .*\[0, 30\]"):
        level_to_arg("rotate", 31, variant=TAW)
    assert level_to_arg("rotate", 30, variant=TAW) == pytest.approx(135.0)
    with pytest.raises(ValueError, match="unknown variant"):
        level_to_arg("rotate", 3, variant="fastautoaugment")
    with pytest.raises(ValueError, match=r"'cutout'.*trivialaugment_wide"):
        level_to_arg("cutout", 3, variant=TAW)
    with pytest.raises(ValueError, match="image_size"):
        level_to_arg("rotate", 3, image_size=0)


def test_signs():
    for op_name in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y"):
        for variant in levels.VARIANTS:
            assert is_signed(op_name, variant=variant)
    assert apply_sign("rotate", 21.0, True) == -21.0
    assert apply_sign("rotate", 21.0, False) == 21.0
    # Enhance factors are unsigned in AutoAugment, reflected about 1 in TrivialAugment-Wide.
    assert not is_signed("brightness", variant=AA)
    assert apply_sign("brightness", 1.9, True, variant=AA) == 1.9
    assert is_signed("brightness", variant=TAW)
    assert apply_sign("brightness", 1.99, True, variant=TAW) == pytest.approx(0.01)
    assert not is_signed("solarize", variant=TAW)
    with pytest.raises(ValueError, match="'spin'"):
        is_signed("spin")
