"""timm's policy strings: each token's effect on the policy (its recorded settings and what its
sampler draws: magnitude and its noise, ops per image, probability, the increasing table), the
AugMix and TrivialAugment strings, and bad tokens named in the error."""

import functools
import math

import jax
import numpy as np
import pytest

from jaxaug import policies
from jaxaug.policies.augmix_policy import AugMix
from jaxaug.policies.timm import TIMM_RAND_OPS

DEFAULTS = {"magnitude": 10, "num_ops": 2, "prob": 0.5, "magnitude_std": 0.0,
            "magnitude_max": 10.0, "increasing": False}


@pytest.mark.parametrize("spec,changes", [
    ("rand", {}),
    ("rand-m9-n2-mstd0.5-inc1", {"magnitude": 9, "magnitude_std": 0.5, "increasing": True}),
    ("rand-m9-mstd0.5-p0.5", {"magnitude": 9, "magnitude_std": 0.5}),
    ("rand-n3-m7-p0.3-mmax20-inc0", {"magnitude": 7, "num_ops": 3, "prob": 0.3,
                                     "magnitude_max": 20.0}),
    ("rand-mstd101", {"magnitude_std": math.inf}),  # timm: above 100 means uniform
])
def test_rand_tokens_set_the_policy(spec, changes):
    policy = policies.get(spec)
    assert dict(policy.hparams) == {**DEFAULTS, **changes}
    assert policy.op_names == TIMM_RAND_OPS and policy.interpolation == "bilinear"


def test_augmix_and_trivialaugment_strings():
    assert policies.get("augmix-m5-w4-d2") == AugMix(5, 4, 2, 1.0, all_ops=True)
    assert policies.get("augmix-a0.5-b1") == AugMix(3, 3, -1, 0.5, all_ops=True)
    assert policies.get("augmix") == AugMix()  # our name: the paper's op set
    assert policies.get("trivialaugment").name == "trivial_augment_wide"
    assert policies.get("randaugment").name == "randaugment_2_9"


@pytest.mark.parametrize("spec,token", [
    ("rand-m9-x3", "x3"), ("rand-mfoo", "mfoo"), ("rand-m9.5", "m9.5"), ("rand-m9-m8", "m8"),
    ("rand-n0", "n0"), ("rand-p1.5", "p1.5"), ("rand-tweights", "tweights"),
    ("augmix-w0", "w0"), ("augmix-m11", "m11"), ("augmix-d0", "d0"), ("augmix-a0", "a0"),
    ("augmix-mstd1", "mstd1"),
])
def test_bad_token_is_named(spec, token):
    with pytest.raises(ValueError, match=f"policy '{spec}'.*'{token}'"):
        policies.get(spec)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown policy 'randaugment-m9'.*timm string"):
        policies.get("randaugment-m9")


N = 3000
SPECS = ("rand-m9-n3", "rand-m9-n3-inc1", "rand-m9-mstd0.5-p1", "rand-m15-mstd101-mmax20-p1",
         "rand-m15-p0.2")


@functools.cache
def _draws():
    """N draws of each policy of SPECS for 32-pixel images, one program."""
    samplers = [policies.get(spec).sample for spec in SPECS]

    @jax.jit
    def draw():
        keys = jax.random.split(jax.random.key(0), N)
        return [jax.vmap(lambda k, s=s: s(k, 32))(keys) for s in samplers]

    draws = draw()
    return dict(zip(SPECS, jax.tree.map(np.asarray, draws)))


def _assert_mean(samples, expected, what):
    """The sample mean is within 5 standard errors of ``expected``."""
    samples = np.asarray(samples, np.float64).ravel()
    error = 5 * max(samples.std(), 1e-3) / np.sqrt(samples.size)
    assert abs(samples.mean() - expected) < error, (what, samples.mean(), expected, error)


def _by_op(draw):
    op_index, value, _ = draw
    return {name: value[op_index == i] for i, name in enumerate(TIMM_RAND_OPS)}


def _magnitudes(draw):
    """The magnitude of each geometric draw, read back from its value (f = M / 10)."""
    v = _by_op(draw)
    return np.abs(np.concatenate([v["rotate"] / 3, v["shear_x"] / 0.03, v["shear_y"] / 0.03,
                                  v["translate_x"] / (0.045 * 32)]))


@pytest.mark.parametrize("increasing", [False, True])
def test_values_at_magnitude_9(increasing):
    draw = _draws()["rand-m9-n3-inc1" if increasing else "rand-m9-n3"]
    op_index, _, applied = draw
    assert op_index.shape == (N, 3)
    _assert_mean(applied, 0.5, "P(applied)")  # timm's default p
    for i in range(len(TIMM_RAND_OPS)):
        _assert_mean(op_index == i, 1 / 14, f"P({TIMM_RAND_OPS[i]})")
    v = _by_op(draw)
    for name, expected in (("rotate", 27.0), ("shear_x", 0.27), ("translate_y", 0.405 * 32)):
        np.testing.assert_allclose(np.abs(v[name]), expected, rtol=1e-6)
        _assert_mean(v[name] < 0, 0.5, f"P({name} < 0)")
    for name in ("auto_contrast", "equalize", "invert"):
        np.testing.assert_array_equal(v[name], 0.0)
    # int(4 f) = 3 bits and 8-bit threshold min(256, int(256 f)) = 230, or 4 - / 256 - those.
    np.testing.assert_array_equal(v["posterize"], 1.0 if increasing else 3.0)
    np.testing.assert_allclose(v["solarize"], (26 if increasing else 230) / 255, rtol=1e-6)
    for name in ("color", "contrast", "brightness", "sharpness"):
        if increasing:  # 1 +/- 0.9 f, each sign half the time
            np.testing.assert_allclose(np.abs(v[name] - 1), 0.81, rtol=1e-5)
            _assert_mean(v[name] < 1, 0.5, f"P({name} < 1)")
        else:
            np.testing.assert_allclose(v[name], 1.72, rtol=1e-6)


def test_magnitude_noise_and_bounds():
    draws = _draws()
    # mstd 0.5: M = clip(9 + 0.5 N(0, 1), 0, 10), moments by quadrature.
    m = _magnitudes(draws["rand-m9-mstd0.5-p1"])
    x = np.linspace(9 - 5, 9 + 5, 200_001)
    density = np.exp(-0.5 * ((x - 9) / 0.5) ** 2)
    density /= density.sum()
    clipped = np.minimum(x, 10)
    mean = (clipped * density).sum()
    assert m.max() <= 10 + 1e-4 and m.min() > 6
    _assert_mean(m, mean, "E M")
    _assert_mean((m - mean) ** 2, ((clipped - mean) ** 2 * density).sum(), "var M")
    _assert_mean(m > 10 - 1e-4, density[x > 10].sum(), "P(M = 10)")
    # mstd > 100: M ~ U(0, 15), which mmax20 leaves unclipped (the default bound 10 would not).
    m = _magnitudes(draws["rand-m15-mstd101-mmax20-p1"])
    assert m.min() >= 0 and 14.9 < m.max() <= 15 + 1e-4
    _assert_mean(m, 7.5, "E M")
    _assert_mean((m - 7.5) ** 2, 15 ** 2 / 12, "var M")
    for spec in ("rand-m9-mstd0.5-p1", "rand-m15-mstd101-mmax20-p1"):
        assert draws[spec][2].all()  # p1: every op applied
    # Without mmax, M = 15 is clipped to 10.
    np.testing.assert_allclose(_magnitudes(draws["rand-m15-p0.2"]), 10, rtol=1e-5)
    _assert_mean(draws["rand-m15-p0.2"][2], 0.2, "P(applied)")
