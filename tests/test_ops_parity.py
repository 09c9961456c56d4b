"""Parity of jaxaug.ops with PIL on 8-bit images (real CIFAR-10 images when the shared zip exists,
generated images otherwise): float -> our op -> to_uint8, versus PIL on the uint8 image."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cifar_images import load_images
from PIL import Image, ImageEnhance, ImageOps

import jaxaug.ops as O

# Per-op tolerances vs PIL, in 8-bit levels: (max abs diff, mean abs diff). None = not bounded.
# - 8-bit point ops are exact.
# - Enhance ops: PIL truncates the blend to an integer where to_uint8 rounds -> within 1 level.
# - Shear/translate, nearest: same pixel-centre convention and floor as PIL's NEAREST -> exact.
# - Rotate, nearest: PIL accumulates coordinates incrementally, so a sample lying (numerically) on
#   a pixel edge may pick the neighbour: a few pixels differ fully (max unbounded), mean <= 0.15
#   (measured 0.03-0.04 at 23 and 45 degrees, 0 at -30 and 10).
# - General affine matrix, nearest: sample points can fall exactly on a pixel edge (here y exactly
#   integral); PIL's float64 accumulation and our float32 product may round to different sides
#   (measured mean 0.12, 10 of 1024 pixels on a generated image). Bilinear: the same edge cases
#   decide fill vs inside (PIL: outside iff x < 0 or x >= W), measured mean 0.72.
# - Bilinear (all affine ops) vs PIL BILINEAR: PIL truncates, we round -> within 1 level,
#   mean <= 0.6 (measured 0.30-0.46).
THRESHOLDS = {
    "invert": (0, 0.0), "solarize": (0, 0.0), "posterize": (0, 0.0),
    "auto_contrast": (0, 0.0), "equalize": (0, 0.0),
    "brightness": (1, 0.6), "color": (1, 0.6), "contrast": (1, 0.6), "sharpness": (1, 0.6),
    "shear_nearest": (0, 0.0), "translate_nearest": (0, 0.0),
    "rotate_nearest": (None, 0.15),
    "affine_nearest": (None, 0.25),
    "affine_bilinear_general": (None, 1.0),
    "affine_bilinear": (1, 0.6),
}

GRAY = (128, 128, 128)
NEAREST, BILINEAR = Image.Resampling.NEAREST, Image.Resampling.BILINEAR


IMAGES = load_images()


_COMPILED = {}


def _diff(ours, pil, param, images=IMAGES, key=None):
    """ours(img, param) batched with vmap under jit vs pil(PIL image). Functions are compiled once
    per `key` (the parameter is traced), so parameter sweeps reuse one compile."""
    params = jnp.full((len(images),), param)
    fn = _COMPILED.setdefault(key, jax.jit(jax.vmap(ours))) if key else jax.jit(jax.vmap(ours))
    out = fn(O.to_float(images), params)
    got = np.asarray(O.to_uint8(out)).astype(int)
    ref = np.stack([np.asarray(pil(Image.fromarray(im))) for im in images]).astype(int)
    assert got.shape == ref.shape
    d = np.abs(got - ref)
    return d.max(), d.mean()


def _check(name, ours, pil, param, key=None):
    max_tol, mean_tol = THRESHOLDS[name]
    dmax, dmean = _diff(ours, pil, param, key=key)
    if max_tol is not None:
        assert dmax <= max_tol, (name, param, dmax, dmean)
    assert dmean <= mean_tol, (name, param, dmax, dmean)


def test_to_float_to_uint8_roundtrip():
    x = O.to_float(IMAGES)
    assert x.dtype == jnp.float32 and float(x.max()) <= 1.0
    np.testing.assert_array_equal(np.asarray(O.to_uint8(x)), IMAGES)
    np.testing.assert_array_equal(np.asarray(O.to_uint8(jnp.array([-0.2, 0.5, 1.3]))), [0, 128, 255])


@pytest.mark.parametrize("param", [0.0])
def test_invert(param):
    _check("invert", lambda i, p: O.invert(i), ImageOps.invert, param)


@pytest.mark.parametrize("level", [0, 1, 77, 128, 200, 255, 256])
def test_solarize(level):
    _check("solarize", O.solarize, lambda p: ImageOps.solarize(p, level), level / 255, "solarize")


def test_solarize_fractional_thresholds_of_trivialaugment_wide():
    """TrivialAugment-Wide's solarize thresholds are torchvision's linspace(255, 0, 31): 8.5 l
    below 255, fractional at odd levels (246.5 at level 1), and torchvision inverts exactly the
    levels >= that float (PIL's lut: i < threshold is kept). Every level 0..255 is in the image;
    the JAX op (with the float32 values the policies' tables hold) and the Pillow replay of
    host_augment must both match PIL given the float threshold."""
    from jaxaug.policies import levels, pil_reference

    img = np.arange(256 * 3, dtype=np.uint8).reshape(16, 16, 3)  # all levels, every channel
    values = np.float32([levels.level_to_arg("solarize", lv, variant="trivialaugment_wide")
                         for lv in range(31)])
    got = np.asarray(O.to_uint8(jax.jit(jax.vmap(O.solarize, in_axes=(None, 0)))(
        O.to_float(img), jnp.asarray(values))))
    for lv, value in enumerate(values):
        ref = np.asarray(ImageOps.solarize(Image.fromarray(img), 255 - 8.5 * lv))
        np.testing.assert_array_equal(got[lv], ref, err_msg=f"level {lv}")
        replay = pil_reference.apply_op(Image.fromarray(img), "solarize", value)
        np.testing.assert_array_equal(np.asarray(replay), ref, err_msg=f"pil_reference {lv}")
    assert got[1][img == 246].tolist() == [246] * 3 and got[1][img == 247].tolist() == [8] * 3


@pytest.mark.parametrize("bits", [1, 3, 4, 7, 8])
def test_posterize(bits):
    _check("posterize", lambda i, b: O.posterize(i, b.astype(jnp.int32)),
           lambda p: ImageOps.posterize(p, bits), bits, "posterize")


def _stretched(images, seed):
    """Images squeezed into random per-channel level ranges, so auto_contrast has work to do."""
    rng = np.random.default_rng(seed)
    lo = rng.integers(0, 200, (len(images), 1, 1, 3))
    hi = np.minimum(255, lo + rng.integers(1, 120, lo.shape))
    return (lo + images.astype(np.float64) / 255 * (hi - lo)).round().astype(np.uint8)


@pytest.mark.parametrize("op,pil", [("auto_contrast", ImageOps.autocontrast),
                                    ("equalize", ImageOps.equalize)])
def test_histogram_ops(op, pil):
    ours = lambda i, p: getattr(O, op)(i)
    for images in (IMAGES, _stretched(IMAGES, 0), _stretched(IMAGES, 1)):
        dmax, _ = _diff(ours, pil, 0.0, images, key=op)
        assert dmax == 0, op


def test_auto_contrast_float_rounding_cases():
    """PIL computes int(i * s - lo * s) in float64; at some exact integers this lands one below.
    Cover every (lo, hi) pair with 2-pixel images containing both extremes and the pixel i."""
    rng = np.random.default_rng(5)
    lo = rng.integers(0, 255, 3000)
    hi = np.minimum(255, lo + rng.integers(1, 256, 3000))
    mid = lo + (rng.random(3000) * (hi - lo + 1)).astype(int).clip(0, 255 - lo)
    imgs = np.stack([lo, hi, mid], -1)[:, None, :, None].repeat(3, -1).astype(np.uint8)  # [N,1,3,3]
    got = np.asarray(O.to_uint8(jax.jit(jax.vmap(O.auto_contrast))(O.to_float(imgs))))
    ref = np.stack([np.asarray(ImageOps.autocontrast(Image.fromarray(im))) for im in imgs])
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("value", [0, 77, 255])
@pytest.mark.parametrize("op,pil", [("auto_contrast", ImageOps.autocontrast),
                                    ("equalize", ImageOps.equalize)])
def test_degenerate_images(op, pil, value):
    """Constant images, one-constant-channel images and two-level images equal PIL."""
    const = np.full((8, 8, 3), value, np.uint8)
    one_const = IMAGES[0].copy()
    one_const[..., 1] = value
    two_level = np.full((8, 8, 3), value, np.uint8)
    two_level[0, 0] = 255 - value if value != 255 else 3
    for im in (const, one_const, two_level):
        got = np.asarray(O.to_uint8(jax.jit(getattr(O, op))(O.to_float(im))))
        np.testing.assert_array_equal(got, np.asarray(pil(Image.fromarray(im))))


@pytest.mark.parametrize("factor", [0.0, 0.1, 0.5, 1.0, 1.5, 1.9])
@pytest.mark.parametrize("op,enhancer", [("brightness", ImageEnhance.Brightness),
                                         ("color", ImageEnhance.Color),
                                         ("contrast", ImageEnhance.Contrast),
                                         ("sharpness", ImageEnhance.Sharpness)])
def test_enhance(op, enhancer, factor):
    _check(op, getattr(O, op), lambda p: enhancer(p).enhance(factor), factor, op)


@pytest.mark.parametrize("shear", [-0.3, 0.1, 0.3])
@pytest.mark.parametrize("axis", ["x", "y"])
def test_shear(axis, shear):
    data = (1, shear, 0, 0, 1, 0) if axis == "x" else (1, 0, 0, shear, 1, 0)
    op = getattr(O, f"shear_{axis}")
    for interp, resample, name in (("nearest", NEAREST, "shear_nearest"),
                                   ("bilinear", BILINEAR, "affine_bilinear")):
        _check(name, lambda i, s, interp=interp: op(i, s, interpolation=interp),
               lambda p, r=resample: p.transform(p.size, Image.AFFINE, data, r, fillcolor=GRAY), shear,
               (axis, "shear", interp))


@pytest.mark.parametrize("pixels", [-10.0, 3.0, 7.5])
@pytest.mark.parametrize("axis", ["x", "y"])
def test_translate(axis, pixels):
    data = (1, 0, pixels, 0, 1, 0) if axis == "x" else (1, 0, 0, 0, 1, pixels)
    op = getattr(O, f"translate_{axis}")
    for interp, resample, name in (("nearest", NEAREST, "translate_nearest"),
                                   ("bilinear", BILINEAR, "affine_bilinear")):
        _check(name, lambda i, t, interp=interp: op(i, t, interpolation=interp),
               lambda p, r=resample: p.transform(p.size, Image.AFFINE, data, r, fillcolor=GRAY), pixels,
               (axis, "translate", interp))


@pytest.mark.parametrize("degrees", [-30.0, 10.0, 23.0, 45.0])
def test_rotate(degrees):
    for interp, resample, name in (("nearest", NEAREST, "rotate_nearest"),
                                   ("bilinear", BILINEAR, "affine_bilinear")):
        _check(name, lambda i, d, interp=interp: O.rotate(i, d, interpolation=interp),
               lambda p, r=resample: p.rotate(degrees, r, fillcolor=GRAY), degrees, ("rotate", interp))


def test_affine_general_matrix_and_fill():
    """A general 2x3 matrix (rotation, scale, shear, translation) and a non-gray fill."""
    data = (0.9, 0.25, -2.3, -0.3, 1.1, 4.1)
    matrix = jnp.asarray(data).reshape(2, 3)
    fill = jnp.array([1.0, 0.0, 40 / 255])
    for interp, resample, name in (("nearest", NEAREST, "affine_nearest"),
                                   ("bilinear", BILINEAR, "affine_bilinear_general")):
        _check(name, lambda i, p, interp=interp: O.affine(i, matrix, interpolation=interp, fill=fill),
               lambda p, r=resample: p.transform(p.size, Image.AFFINE, data, r, fillcolor=(255, 0, 40)),
               0.0)
