"""random_resized_crop / inception_crop, color_jitter, gaussian_blur and random_erasing's timm
modes: parity with PIL (crop + resize, ImageEnhance) and scipy (Gaussian filter), closed forms,
and the samplers' distributions against their definitions (jit/vmap, dtype and bad images of
every op: tests/test_ops_api.py)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cifar_images import load_images
from PIL import Image, ImageEnhance
from scipy import ndimage

import jaxaug.ops as O
from jaxaug.ops.color import _jitter_params, _jitter_ranges
from jaxaug.ops.crop import crop_box
from jaxaug.ops.filter import default_kernel_size

LEVELS = load_images(8)[:, :16, :16]  # uint8 [8, 16, 16, 3]
IMAGES = np.asarray(O.to_float(LEVELS))
KEYS = jax.random.split(jax.random.key(0), 8)
N = 2000  # draws of the distribution checks
# Kolmogorov-Smirnov: P(sup |F_n - F| > 1.95 / sqrt(n)) ~ 1e-3 for the true F.
KS = 1.95 / math.sqrt(N)


def _ks(samples, cdf):
    """sup |F_n - F| of `samples` against the cdf (vectorised callable)."""
    x = np.sort(samples)
    f = cdf(x)
    n = len(x)
    return max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))


# random_resized_crop
@functools.cache
def _crops():
    """The 8 images cropped to 24x24 (upsampling: every box side is <= 16), bilinear and nearest,
    their boxes, and the same boxes through the matrix form (affine, nearest)."""
    def one(key, img, weight, direction):
        m = O.random_resized_crop_matrix(key, 16, 16)
        crop = lambda x: O.random_resized_crop(key, x, 24)
        # The crop is linear in img, so <grad of <weight, crop(img)>, d> = <weight, crop(d)>.
        linear = (jnp.vdot(jax.grad(lambda x: jnp.vdot(weight, crop(x)))(img), direction),
                  jnp.vdot(weight, crop(direction)))
        return (crop(img), O.random_resized_crop(key, img, 24, interpolation="nearest"),
                crop_box(key, 16, 16), O.random_resized_crop(key, img, 16, interpolation="nearest"),
                O.affine(img, m, interpolation="nearest"), O.random_resized_crop(key, img, 16),
                O.affine(img, m), m, linear)
    rng = np.random.default_rng(1)
    return jax.jit(jax.vmap(one))(KEYS, IMAGES, rng.standard_normal((8, 24, 24, 3), np.float32),
                                  rng.standard_normal(IMAGES.shape, np.float32))


def test_random_resized_crop_matches_pil_crop_then_resize():
    bilinear, nearest, boxes = (np.asarray(a) for a in _crops()[:3])
    diffs = []
    for img, box, ours_b, ours_n in zip(LEVELS, boxes, bilinear, nearest):
        top, left, h, w = (int(v) for v in box)
        crop = Image.fromarray(img).crop((left, top, left + w, top + h))
        ref_b = np.asarray(crop.resize((24, 24), Image.Resampling.BILINEAR)).astype(int)
        ref_n = np.asarray(crop.resize((24, 24), Image.Resampling.NEAREST)).astype(int)
        np.testing.assert_array_equal(np.asarray(O.to_uint8(ours_n)), ref_n)
        diffs.append(np.abs(np.asarray(O.to_uint8(ours_b)).astype(int) - ref_b))
    diffs = np.stack(diffs)
    print(f"bilinear vs PIL: max {diffs.max()} levels, mean {diffs.mean():.3f}")
    # PIL truncates its fixed-point result where to_uint8 rounds: within one level.
    assert diffs.max() <= 1 and diffs.mean() <= 0.6
    assert len({tuple(b) for b in boxes}) == len(boxes)


def test_random_resized_crop_is_its_matrix():
    """Nearest: the op is `affine` by its matrix exactly. Bilinear: equal where the point lies
    at least half a pixel inside the box (there the clamp to the box is inactive)."""
    crop_n, affine_n, crop_b, affine_b, m = (np.asarray(a) for a in _crops()[3:8])
    np.testing.assert_array_equal(crop_n, affine_n)
    centres = np.arange(16) + 0.5
    xs = m[:, 0, 0, None] * centres + m[:, 0, 2, None]  # [8, 16] input x per output column
    ys = m[:, 1, 1, None] * centres + m[:, 1, 2, None]
    inner_x = (xs >= m[:, 0, 2, None] + 0.5) & (xs <= m[:, 0, 2, None] + 16 * m[:, 0, 0, None] - 0.5)
    inner_y = (ys >= m[:, 1, 2, None] + 0.5) & (ys <= m[:, 1, 2, None] + 16 * m[:, 1, 1, None] - 0.5)
    inner = inner_y[:, :, None] & inner_x[:, None, :]
    np.testing.assert_allclose(crop_b[inner], affine_b[inner], atol=1e-5)
    assert inner.mean() > 0.6


def test_random_resized_crop_gradient_is_its_transpose():
    grad_dot, direct = (np.asarray(a) for a in _crops()[8])
    np.testing.assert_allclose(grad_dot, direct, rtol=1e-4)


@functools.cache
def _boxes(height, width, scale, ratio):
    keys = jax.random.split(jax.random.key(1), N)
    return np.asarray(jax.jit(jax.vmap(lambda k: crop_box(k, height, width, scale, ratio)))(keys))


def test_crop_box_area_and_aspect_distributions():
    """The first fitting try is a draw of (a, l = log(w / h)) uniform on the region of
    scale x log(ratio) where the box fits, a e^|l| <= 1 on a square image (the fallback after 10
    misses has probability ~ 1e-9 here). Marginals: density of a proportional to
    min(L, -log a), of l to e^-|l| - a_min, L = log(4/3). Box sides are rounded: on 1024x1024
    that moves a by at most 1e-3 and l by 4e-3, i.e. the CDFs by < 0.002 and < 0.009."""
    side, (a0, a1), L = 1024, (0.08, 1.0), math.log(4 / 3)
    boxes = _boxes(side, side, (a0, a1), (3 / 4, 4 / 3))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (top + h <= side).all() and (left >= 0).all() and (left + w <= side).all()
    area, log_aspect = h * w / side**2, np.log(w / h)

    grid = np.linspace(a0, a1, 20001)
    density = np.minimum(L, -np.log(grid))
    cdf_a = np.concatenate([[0], np.cumsum((density[1:] + density[:-1]) / 2)])
    cdf_a /= cdf_a[-1]
    d_area = _ks(area, lambda x: np.interp(x, grid, cdf_a))
    # CDF of l: integral of e^-|t| - a0 over [-L, l], normalised.
    prim = lambda t: np.sign(t) * (1 - np.exp(-np.abs(t))) - a0 * t
    d_aspect = _ks(log_aspect, lambda x: (prim(x) - prim(-L)) / (prim(L) - prim(-L)))
    print(f"KS area {d_area:.4f}, log-aspect {d_aspect:.4f} (bound {KS:.4f} + rounding)")
    assert d_area <= KS + 0.002 and d_aspect <= KS + 0.009
    # Uniform corner: the mean offset is half the slack.
    assert abs(np.mean(top / np.maximum(side - h, 1)) - 0.5) < 4 * 0.29 / math.sqrt(N)


def test_crop_box_fallback_is_torchvision_centre_crop():
    """On a 4x64 strip a box of aspect in [3/4, 4/3] fits only with area fraction <= 1/12
    (h <= 4): most draws miss 10 times and take the centre crop with the aspect clamped to
    4/3: h = 4, w = round(4 * 4 / 3) = 5, at top 0, left (64 - 5) // 2 = 29."""
    boxes = _boxes(4, 64, (0.08, 1.0), (3 / 4, 4 / 3))
    fallback = (boxes == [0, 29, 4, 5]).all(1)
    fits = (boxes[:, 2] <= 4) & (boxes[:, 3] <= 64)
    assert fits.all() and fallback.mean() > 0.9 and not fallback.all()


def test_inception_crop_uses_big_vision_defaults():
    key, img = KEYS[0], jnp.asarray(IMAGES[0])
    ours = jax.jit(lambda k, x: (O.inception_crop(k, x, 16),
                                 O.random_resized_crop(k, x, 16, scale=(0.05, 1.0),
                                                       ratio=(0.75, 1.33))))(key, img)
    np.testing.assert_array_equal(*ours)


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0}, "size"), ({"size": (4, 4, 4)}, "size"), ({"scale": (0.5, 0.2)}, "scale"),
    ({"ratio": (0.0, 1.0)}, "ratio"), ({"interpolation": "bicubic"}, "interpolation"),
])
def test_random_resized_crop_rejects_bad_arguments(kwargs, match):
    args = {"size": 8} | kwargs
    with pytest.raises(ValueError, match=f"^random_resized_crop: {match}"):
        jax.eval_shape(lambda k, x: O.random_resized_crop(k, x, **args), KEYS[0], IMAGES[0])


# color_jitter
FIXED = {"brightness": (1.3, 1.3), "contrast": (0.6, 0.6), "saturation": (1.5, 1.5),
         "hue": (0.1, 0.1)}
_ENHANCE = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
# The ops color_jitter chains, each compiled once (order index: brightness, contrast,
# saturation, hue).
_OPS = [jax.jit(op) for op in (O.brightness, O.contrast, O.color, O.hue_shift)]
_FACTORS = [FIXED[k][0] for k in ("brightness", "contrast", "saturation", "hue")]


@functools.cache
def _jitters():
    """color_jitter on the 8 images with fixed factors, and each image's order."""
    ranges = _jitter_ranges(**FIXED)
    return jax.jit(jax.vmap(lambda k, x: (O.color_jitter(k, x, **FIXED),
                                          _jitter_params(k, ranges)[0])))(KEYS, IMAGES)


def test_color_jitter_applies_the_ops_in_its_order():
    """The ops chained by hand in the order `_jitter_params` drew. Brightness, contrast and
    saturation nearly commute (only clipping and the rounded grey tell their orders apart), hue
    does not: a wrong order or factor shows here."""
    ours, orders = (np.asarray(a) for a in _jitters())
    for img, out, order in zip(IMAGES, ours, orders):
        expected = img
        for index in order:
            expected = _OPS[index](expected, _FACTORS[index])
        np.testing.assert_allclose(out, expected, atol=1e-6)
    assert len({tuple(o) for o in orders}) >= 4


def test_color_jitter_matches_pil_enhance_in_its_order():
    """PIL's ImageEnhance for brightness, contrast and saturation (torchvision's PIL path), in
    the drawn order; the hue step (PIL's path quantizes hue) is `hue_shift` on the 8-bit
    intermediate (hue_shift is checked against colorsys in test_ops_extra.py)."""
    ours, orders = (np.asarray(a) for a in _jitters())
    diffs = []
    for img, out, order in zip(LEVELS, ours, orders):
        ref = Image.fromarray(img)
        for index in order:
            if index < 3:
                ref = _ENHANCE[index](ref).enhance(_FACTORS[index])
            else:
                shifted = _OPS[3](O.to_float(np.asarray(ref)), _FACTORS[3])
                ref = Image.fromarray(np.asarray(O.to_uint8(shifted)))
        diffs.append(np.asarray(O.to_uint8(out)).astype(int) - np.asarray(ref).astype(int))
    diffs = np.stack(diffs)
    print(f"color_jitter vs PIL: signed {diffs.min()}..{diffs.max()} levels, mean "
          f"{diffs.mean():.3f}, mean abs {np.abs(diffs).mean():.3f}; "
          f"orders {[''.join('bcsh'[i] for i in o) for o in orders]}")
    # PIL truncates to 8 bits after each enhance where we keep floats: each step leaves PIL up
    # to one level lower, the later factors (<= 1.5) scale it: ours - PIL <= (1.5 + 1) 1.5 + 1
    # < 5, about +1 on average. The hue step's 8-bit rounding gives the rare negative levels.
    assert -2 <= diffs.min() and diffs.max() <= 4
    assert 0.5 <= diffs.mean() <= 1.5 and np.abs(diffs).mean() <= 1.5


def test_color_jitter_factor_ranges_and_order_distribution():
    ranges = _jitter_ranges(brightness=0.4, contrast=(0.5, 0.9), saturation=1.5, hue=0.2)
    assert ranges == ((0.6, 1.4), (0.5, 0.9), (0.0, 2.5), (-0.2, 0.2))
    keys = jax.random.split(jax.random.key(2), N)
    orders, factors = (np.asarray(a) for a in jax.jit(jax.vmap(lambda k: _jitter_params(k, ranges)))(keys))
    lo, hi = np.array(ranges).T
    width = hi - lo
    assert ((factors >= lo) & (factors <= hi)).all()
    # Uniform: the mean within 4 standard errors, both ends reached within 0.5% of the width.
    assert (np.abs(factors.mean(0) - (lo + hi) / 2) < 4 * width / math.sqrt(12 * N)).all()
    assert (factors.min(0) < lo + 0.005 * width).all() and (factors.max(0) > hi - 0.005 * width).all()
    assert (np.sort(orders, axis=1) == np.arange(4)).all()
    # Each op at each position with probability 1/4 (binomial, 4.5 standard deviations).
    counts = np.stack([(orders == i).sum(0) for i in range(4)])
    assert (np.abs(counts - N / 4) < 4.5 * math.sqrt(N * 3 / 16)).all(), counts


@pytest.mark.parametrize("kwargs, match", [
    ({"brightness": -0.1}, "brightness"), ({"contrast": (1.2, 0.8)}, "contrast"),
    ({"saturation": (0.5, 1.0, 2.0)}, "saturation"), ({"hue": 0.6}, "hue"),
])
def test_color_jitter_rejects_bad_ranges(kwargs, match):
    with pytest.raises(ValueError, match=f"^color_jitter: {match}"):
        O.color_jitter(KEYS[0], IMAGES[0], **kwargs)


def test_color_jitter_skips_disabled_ops():
    img = IMAGES[0]
    assert O.color_jitter(KEYS[0], img) is img
    assert O.color_jitter(KEYS[0], img, brightness=(1.0, 1.0), hue=(0.0, 0.0)) is img


# gaussian_blur
SIGMAS = np.asarray([0.6, 1.3, 2.5], np.float32)
PADDING_TO_SCIPY = {"reflect": "mirror", "symmetric": "reflect", "edge": "nearest"}


@functools.cache
def _blurs():
    img = IMAGES[0]
    impulse = jnp.zeros((15, 15, 1)).at[7, 7].set(1.0)

    def blurs(img):
        by_padding = {p: jax.vmap(lambda s: O.gaussian_blur(img, s, 9, padding=p))(SIGMAS)
                      for p in PADDING_TO_SCIPY}
        return (by_padding, O.gaussian_blur(img, 1.3), O.gaussian_blur(img, 1.3, 11),
                O.gaussian_blur(impulse, 1.1, 7))
    return jax.jit(blurs)(img)


def test_gaussian_blur_matches_scipy_per_padding():
    by_padding = _blurs()[0]
    for padding, mode in PADDING_TO_SCIPY.items():
        for sigma, ours in zip(SIGMAS, np.asarray(by_padding[padding])):
            ref = ndimage.gaussian_filter(IMAGES[0].astype(np.float64), (sigma, sigma, 0),
                                          mode=mode, radius=(4, 4, 0))
            np.testing.assert_allclose(ours, ref, atol=2e-6, err_msg=f"{padding} {sigma}")


def test_gaussian_blur_kernel_closed_form_and_default_size():
    _, default, explicit, impulse = (np.asarray(a) for a in _blurs())
    np.testing.assert_array_equal(default, explicit)  # 2 * int(4 * 1.3 + 0.5) + 1 = 11
    t = np.arange(7) - 3.0
    g = np.exp(-t**2 / (2 * 1.1**2))
    g /= g.sum()
    expected = np.zeros((15, 15))
    expected[4:11, 4:11] = np.outer(g, g)
    np.testing.assert_allclose(impulse[..., 0], expected, atol=1e-7)
    assert default_kernel_size(0.6) == 5 and default_kernel_size(2.5) == 21


def test_gaussian_blur_sigma_gradient_matches_finite_difference():
    with jax.enable_x64(True):
        img = jnp.asarray(IMAGES[1], jnp.float64)
        w = jnp.asarray(np.random.default_rng(0).standard_normal(img.shape))
        loss = lambda s: jnp.sum(w * O.gaussian_blur(img, s, 7))
        eps = 1e-6
        grad, fd = jax.jit(lambda s: (jax.grad(loss)(s), (loss(s + eps) - loss(s - eps)) / (2 * eps)))(
            jnp.float64(0.9))
        assert abs(float(grad) - float(fd)) <= 1e-6 * max(1.0, abs(float(fd))), (grad, fd)
        assert abs(float(grad)) > 1e-2


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": 0.0}, "sigma must be > 0"), ({"sigma": 1.0, "kernel_size": 4}, "kernel_size"),
    ({"sigma": 1.0, "padding": "wrap"}, "padding"), ({"sigma": np.ones(2)}, "sigma must have shape"),
])
def test_gaussian_blur_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"^gaussian_blur: {match}"):
        O.gaussian_blur(IMAGES[0], **kwargs)
    with pytest.raises(ValueError, match="^gaussian_blur: kernel_size=None needs a concrete sigma"):
        jax.eval_shape(lambda s: O.gaussian_blur(IMAGES[0], s), 1.0)


# random_erasing, timm modes
ERASE_SIDE = 64


@functools.cache
def _erasures():
    """N draws on a 64x64 black image: const (one box of 1s, probability 0.5), 1-3 boxes of
    'rand' colours; 'pixel' noise on 64 of them."""
    zeros = jnp.zeros((ERASE_SIDE, ERASE_SIDE, 3))
    keys = jax.random.split(jax.random.key(3), N)

    def one(key):
        const = O.random_erasing(key, zeros, scale=(0.05, 0.25), ratio=(0.5, 2.0), mode="const",
                                 mean=1.0, probability=0.5)
        return const[..., 0], O.random_erasing(key, zeros, mode="rand", mean=0.5, std=0.1,
                                               max_count=3)

    def pixel(key):
        return O.random_erasing(key, zeros, mode="pixel", mean=0.5, std=0.1)
    return jax.jit(lambda k: (*jax.vmap(one)(k), jax.vmap(pixel)(k[:64])))(keys)


def test_random_erasing_timm_const_area_aspect_and_probability():
    """Erased with probability 0.5; scale (0.05, 0.25) and ratio (0.5, 2) always fit (sides <=
    sqrt(0.5) of the image), so the area fraction is U(0.05, 0.25) (mean 0.15, sd 0.0577) and
    log(h / w) is U(-log 2, log 2) (mean 0, sd 0.40), up to rounding of sides >= 10 pixels."""
    const = np.asarray(_erasures()[0])
    erased = const.any((1, 2))
    n = int(erased.sum())
    assert abs(n / N - 0.5) < 4 * 0.5 / math.sqrt(N)
    const = const[erased]
    rows, cols = const.any(2).sum(1), const.any(1).sum(1)  # box height and width
    area = const.sum((1, 2)) / ERASE_SIDE**2
    np.testing.assert_array_equal(area * ERASE_SIDE**2, rows * cols)  # one filled rectangle each
    assert set(np.unique(const)) <= {0.0, 1.0}
    print(f"{n} erased; mean area {area.mean():.4f}, mean log aspect {np.log(rows / cols).mean():.4f}")
    assert abs(area.mean() - 0.15) < 4 * 0.0577 / math.sqrt(n) + 0.002
    assert abs(np.log(rows / cols).mean()) < 4 * 0.40 / math.sqrt(n) + 0.01
    assert area.min() < 0.06 and area.max() > 0.24


def test_random_erasing_timm_rand_count_and_pixel_noise():
    _, rand, pixel = (np.asarray(a) for a in _erasures())
    # rand: each box one colour ~ N(0.5, 0.1) per channel; 1-3 boxes, uniform count (a box can
    # hide another, so 3 colours show a bit less often than 1/3).
    colours = [len(np.unique(r.reshape(-1, 3)[r.reshape(-1, 3).any(1)], axis=0)) for r in rand]
    freq = np.bincount(colours, minlength=4)[1:] / N
    print(f"colours per image 1/2/3: {freq}")
    assert 0.3 < freq[0] < 0.4 and 0.28 < freq[1] < 0.4 and 0.25 < freq[2] < 0.37
    # pixel: independent N(0.5, 0.1) per pixel and channel.
    values = pixel[pixel != 0]
    print(f"pixel noise: {values.size} values, mean {values.mean():.4f}, std {values.std():.4f}")
    assert abs(values.mean() - 0.5) < 0.005 and abs(values.std() - 0.1) < 0.005
    assert len(np.unique(values)) > 0.99 * values.size


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "noise"}, "mode"), ({"mode": "const", "fill": 0.5}, "fill"),
    ({"max_count": 2}, "mode='fill' erases one"), ({"mode": "rand", "min_count": 3, "max_count": 2}, "min_count"),
    ({"probability": 1.5}, "probability"), ({"mode": "pixel", "mean": (0.5, 0.5)}, "mean"),
])
def test_random_erasing_rejects_bad_modes(kwargs, match):
    with pytest.raises(ValueError, match=f"^random_erasing: {match}"):
        O.random_erasing(KEYS[0], IMAGES[0], **kwargs)
