"""scale / pad_crop / hue_shift / random_erasing / warp_chain: parity with PIL, numpy and colorsys,
gradients and argument validation (jit/vmap and bad images of every op: tests/test_ops_api.py)."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxaug.ops as O

RNG = np.random.default_rng(0)
IMG = jnp.asarray(RNG.random((12, 14, 3)), jnp.float32)
# Eager dispatch compiles every primitive separately; jitted entry points keep the module fast.
HUE_SHIFT = jax.jit(O.hue_shift)
SCALE = jax.jit(jax.vmap(O.scale))  # factor traced: one compile for the sweep


# scale
def _pil_scale(image, factor):
    """PIL's zoom about the centre, coefficients written out in numpy."""
    w, h = image.size
    a = 1.0 / factor
    data = (a, 0.0, w / 2 * (1 - a), 0.0, a, h / 2 * (1 - a))
    return np.asarray(image.transform(image.size, Image.AFFINE, data=data,
                                      resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128)))


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.3, 2.0, 3.7])
def test_scale_matches_pil(factor):
    from jaxaug.data.synthetic import generate

    images = generate(6, seed=3)[0]
    got = np.asarray(O.to_uint8(SCALE(O.to_float(images), jnp.full((len(images),), factor))))
    ref = np.stack([_pil_scale(Image.fromarray(im), factor) for im in images])
    d = np.abs(got.astype(int) - ref.astype(int))
    # PIL truncates the bilinear value where to_uint8 rounds: within 1 level.
    assert d.max() <= 1 and d.mean() <= 0.6, (d.max(), d.mean())


def test_scale_identity_and_matrices():
    np.testing.assert_allclose(jax.jit(O.scale)(IMG, 1.0), IMG, atol=1e-6)
    np.testing.assert_allclose(O.scale_matrix(2.0, 12, 14) @ O.scale_matrix(0.5, 12, 14),
                               np.eye(3), atol=1e-6)
    m = np.asarray(O.scale_matrix(4.0, 12, 14))
    # The centre is fixed and an output point (x, y) reads (x - 7) / 4 + 7, (y - 6) / 4 + 6.
    np.testing.assert_allclose(m @ [7.0, 6.0, 1.0], [7.0, 6.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(m @ [11.0, 2.0, 1.0], [8.0, 5.0, 1.0], atol=1e-6)


# pad_crop
def _np_pad_crop(img, offset, padding, fill):
    h, w, _ = img.shape
    p = np.pad(np.asarray(img), ((padding, padding), (padding, padding), (0, 0)),
               constant_values=fill)
    return p[offset[0]:offset[0] + h, offset[1]:offset[1] + w]


def test_pad_crop_matches_numpy():
    fn = jax.jit(O.pad_crop, static_argnums=2)
    for offset in [(0, 0), (0, 6), (6, 0), (2, 5), (6, 6), (3, 1)]:
        got = fn(IMG, jnp.asarray(offset), 3, 0.25)
        np.testing.assert_array_equal(got, _np_pad_crop(IMG, offset, 3, 0.25), err_msg=str(offset))


def test_pad_crop_identity():
    np.testing.assert_array_equal(O.pad_crop(IMG, (4, 4), 4), IMG)
    assert O.pad_crop(IMG, (0, 0), 0) is IMG


def test_pad_crop_gradient_is_the_crop_mask():
    w = jnp.asarray(RNG.standard_normal(IMG.shape), jnp.float32)
    offset, p = (1, 4), 3
    grad = jax.grad(lambda x: jnp.sum(w * O.pad_crop(x, jnp.asarray(offset), p)))(IMG)
    # Each input pixel inside the window receives the weight of the output pixel it lands on.
    window = np.zeros((12 + 2 * p, 14 + 2 * p, 3), np.float32)
    window[offset[0]:offset[0] + 12, offset[1]:offset[1] + 14] = w
    np.testing.assert_array_equal(grad, window[p:p + 12, p:p + 14])


@pytest.mark.parametrize("padding", [-1, 1.5, True, "2"])
def test_pad_crop_rejects_bad_padding(padding):
    with pytest.raises(ValueError, match="pad_crop.*padding"):
        O.pad_crop(IMG, (0, 0), padding)


def test_pad_crop_rejects_bad_offset():
    with pytest.raises(ValueError, match="pad_crop.*offset"):
        O.pad_crop(IMG, (0, 0, 0), 2)


# hue_shift
def _special_pixels():
    """Grey, black, white and tied-maximum pixels, which take colorsys's edge branches."""
    return np.asarray([[[0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.7, 0.7, 0.2]],
                       [[0.3, 0.8, 0.8], [0.9, 0.1, 0.9], [0.2, 0.6, 0.6], [0.0, 1.0, 0.0]]],
                      np.float32)


def _colorsys_hue_shift(img, shift):
    out = np.empty_like(img, dtype=np.float64)
    for idx in np.ndindex(img.shape[:2]):
        h, s, v = colorsys.rgb_to_hsv(*map(float, img[idx]))
        out[idx] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
    return out


@pytest.mark.parametrize("shift", [-0.5, -0.23, 0.1, 1 / 3, 0.5])
def test_hue_shift_matches_colorsys(shift):
    for img in (np.asarray(IMG), _special_pixels()):
        np.testing.assert_allclose(HUE_SHIFT(img, shift), _colorsys_hue_shift(img, shift), atol=1e-5)


def test_hue_shift_identity_and_grey():
    for shift in (0.0, 1.0, -1.0):
        np.testing.assert_allclose(HUE_SHIFT(IMG, shift), IMG, atol=1e-6)
    grey = jnp.broadcast_to(jnp.linspace(0.0, 1.0, 12)[:, None, None], (12, 5, 3))
    np.testing.assert_array_equal(HUE_SHIFT(grey, 0.3), grey)


def test_hue_shift_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        img = jnp.asarray(rng.random((6, 7, 3)))
        w = jnp.asarray(rng.standard_normal((6, 7, 3)))
        eps = 1e-6

        @jax.jit
        def loss(x, s):
            return jnp.sum(w * O.hue_shift(x, s))

        s = jnp.float64(0.13)
        g_img, g_shift = jax.jit(jax.grad(loss, argnums=(0, 1)))(img, s)
        fd_shift = (loss(img, s + eps) - loss(img, s - eps)) / (2 * eps)
        np.testing.assert_allclose(g_shift, fd_shift, rtol=1e-5)
        direction = jnp.asarray(rng.standard_normal(img.shape))
        fd_img = (loss(img + eps * direction, s) - loss(img - eps * direction, s)) / (2 * eps)
        np.testing.assert_allclose(jnp.vdot(g_img, direction), fd_img, rtol=1e-5)


def test_hue_shift_gradient_is_finite_at_grey_pixels():
    img = jnp.asarray(_special_pixels())
    grad = jax.jit(jax.grad(lambda x, s: jnp.sum(O.hue_shift(x, s) ** 2), argnums=(0, 1)))
    g_img, g_shift = grad(img, 0.2)
    assert np.isfinite(g_img).all() and np.isfinite(g_shift)


# random_erasing
def _rectangle(mask):
    """(top, left, height, width) of `mask`, asserting it is exactly one filled rectangle."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, left, height, width = rows[0], cols[0], rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    expected = np.zeros_like(mask)
    expected[top:top + height, left:left + width] = True
    np.testing.assert_array_equal(mask, expected)
    return top, left, height, width


def test_random_erasing_rectangle_area_and_vmap():
    h, w, n, scale, ratio = 32, 40, 256, (0.05, 0.3), (1.0, 2.0)
    img = jnp.asarray(RNG.random((h, w, 3)), jnp.float32)
    fill = np.asarray([2.0, 3.0, 4.0], np.float32)  # outside [0, 1]: changed pixels are visible
    keys = jax.random.split(jax.random.key(0), n)
    outs = np.asarray(jax.jit(jax.vmap(
        lambda k: O.random_erasing(k, img, scale=scale, ratio=ratio, fill=fill)))(keys))
    rects, fractions = set(), []
    for out in outs:
        mask = (out != np.asarray(img)).any(-1)
        np.testing.assert_array_equal(out[mask], np.broadcast_to(fill, out[mask].shape))
        np.testing.assert_array_equal(out[~mask], np.asarray(img)[~mask])
        top, left, eh, ew = _rectangle(mask)
        assert top + eh <= h and left + ew <= w
        # eh and ew are sqrt(area * r) and sqrt(area / r) rounded (no clipping at these bounds).
        assert (eh - 0.5) * (ew - 0.5) <= scale[1] * h * w
        assert (eh + 0.5) * (ew + 0.5) >= scale[0] * h * w
        assert (eh - 0.5) / (ew + 0.5) <= ratio[1] and (eh + 0.5) / (ew - 0.5) >= ratio[0]
        rects.add((top, left, eh, ew))
        fractions.append(eh * ew / (h * w))
    assert len(rects) > 0.9 * n
    assert abs(np.mean(fractions) - np.mean(scale)) < 0.02  # area fraction ~ U(scale)


def test_random_erasing_defaults_clip_to_the_image():
    img = jnp.asarray(RNG.random((10, 10, 3)), jnp.float32)
    keys = jax.random.split(jax.random.key(1), 64)
    outs = np.asarray(jax.jit(jax.vmap(lambda k: O.random_erasing(k, img, fill=-1.0)))(keys))
    for out in outs:
        _rectangle((out == -1.0).all(-1))


def test_random_erasing_noise_fill():
    img = jnp.asarray(RNG.random((16, 16, 3)), jnp.float32)
    # The rectangle depends on the key only, so a constant fill reveals where the noise goes.
    erase = jax.jit(lambda k, x: (O.random_erasing(k, x, scale=(0.2, 0.3), fill=2.0),
                                  O.random_erasing(k, x, scale=(0.2, 0.3))))  # one compile
    constant, out = (np.asarray(a) for a in erase(jax.random.key(2), img))
    mask = (constant == 2.0).all(-1)
    noise = out[mask]
    assert noise.size >= 3 * 0.15 * 256
    assert (noise >= 0).all() and (noise < 1).all()
    assert len(np.unique(noise)) == noise.size  # independent per pixel and channel
    np.testing.assert_array_equal(out[~mask], np.asarray(img)[~mask])


@pytest.mark.parametrize("name, bounds", [
    ("scale", (0.5, 0.2)), ("scale", (0.0, 0.3)), ("scale", (0.1, 1.5)), ("scale", 0.3),
    ("ratio", (0.0, 1.0)), ("ratio", (2.0, 1.0)), ("ratio", (1.0, 2.0, 3.0)),
])
def test_random_erasing_rejects_bad_bounds(name, bounds):
    with pytest.raises(ValueError, match=f"random_erasing.*{name}"):
        O.random_erasing(jax.random.key(0), IMG, **{name: bounds})


def test_hue_shift_needs_rgb():
    with pytest.raises(ValueError, match="hue_shift.*3 channels"):
        O.hue_shift(jnp.zeros((8, 8, 1)), 0.1)


# warp_chain: several warps, one resampling.
def _chain_inputs():
    img = O.to_float(np.random.default_rng(5).integers(0, 256, (24, 20, 3), dtype=np.uint8))
    mats = jnp.stack([O.rotate_matrix(17.0, 24, 20), O.shear_x_matrix(0.2),
                      O.translate_y_matrix(-3.0)])
    return img, mats


def test_warp_chain_nearest_equals_successive_nearest_warps():
    img, mats = _chain_inputs()
    out, fill_step = jax.jit(lambda x, m: O.warp_chain(x, m, interpolation="nearest", fill=0.25))(
        img, mats)
    ref = img
    affine = jax.jit(lambda x, m: O.affine(x, m, interpolation="nearest", fill=0.25))
    for m in mats:
        ref = affine(ref, m)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    filled = np.asarray(fill_step) >= 0
    assert 0 < filled.mean() < 0.5
    np.testing.assert_array_equal(np.asarray(out)[filled], 0.25)


def test_warp_chain_bilinear_is_one_warp_by_the_composed_matrix():
    img, mats = _chain_inputs()

    @jax.jit  # one compile (eagerly, every primitive compiles)
    def chain_and_once(x, mats):
        return *O.warp_chain(x, mats, fill=0.25), O.affine(x, O.compose(*mats), fill=0.25)

    out, fill_step, once = chain_and_once(img, mats)
    kept = np.asarray(fill_step) < 0
    np.testing.assert_allclose(np.asarray(out)[kept], np.asarray(once)[kept], atol=1e-5)


def test_warp_chain_loses_content_that_leaves_the_frame():
    img, _ = _chain_inputs()
    there_and_back = jnp.stack([O.translate_x_matrix(5.0), O.translate_x_matrix(-5.0)])
    out, fill_step = O.warp_chain(img, there_and_back, interpolation="nearest", fill=0.0)
    # The first warp moves columns 0-4 out on the left; the second brings the frame back.
    np.testing.assert_array_equal(np.asarray(fill_step)[:, :5], 1)
    np.testing.assert_array_equal(np.asarray(fill_step)[:, 5:15], -1)
    np.testing.assert_array_equal(np.asarray(out)[:, :5], 0.0)
    np.testing.assert_array_equal(np.asarray(out)[:, 5:15], np.asarray(img)[:, 5:15])
    with pytest.raises(ValueError, match="warp_chain: matrices"):
        O.warp_chain(img, O.translate_x_matrix(1.0))


def test_materialize_is_the_identity_under_jit_vmap_and_grad():
    from jaxaug.ops.fusion import materialize

    x = jnp.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(materialize))(x)), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(jax.vmap(jax.vmap(materialize))(x)), np.asarray(x))
    grad = jax.grad(lambda v: jnp.sum(materialize(v) ** 2))(x)
    np.testing.assert_array_equal(np.asarray(grad), 2 * np.asarray(x))
    # unbatched input inside a vmapped function stays unbatched
    out = jax.vmap(lambda v: v + materialize(jnp.ones(4)))(x[0])
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x[0]) + 1)


# padding="fill": grid_sample's zeros padding (with any fill), continuous in the warp.
def test_fill_padding_blends_each_neighbour_with_the_fill():
    # A constant image c with fill f: padding="fill" gives f + (c - f) * coverage, the bilinear
    # share of the sample on the image, clip(min(x + 1/2, W + 1/2 - x), 0, 1) per axis; "pil"
    # jumps from c to f where x leaves [0, W). Shifts by t in (0, 2) px reach the border zone.
    h, w, c, f = 6, 9, 0.8, 0.1
    img = jnp.full((h, w, 1), c, jnp.float32)
    cover = lambda u, n: np.clip(np.minimum(u + 0.5, n + 0.5 - u), 0.0, 1.0)
    both = jax.jit(lambda x, m: (O.affine(x, m, fill=f, padding="fill"), O.affine(x, m, fill=f)))
    for t in (0.3, 0.5, 1.25, 1.9):
        m = np.array([[1.0, 0.0, t], [0.0, 1.0, -t], [0.0, 0.0, 1.0]], np.float32)
        out = both(img, m)
        xs, ys = np.arange(w) + 0.5 + t, np.arange(h) + 0.5 - t
        want = f + (c - f) * cover(ys, h)[:, None] * cover(xs, w)[None, :]
        np.testing.assert_allclose(np.asarray(out[0])[..., 0], want, atol=1e-6)
        inside = ((xs >= 0) & (xs < w))[None, :] & ((ys >= 0) & (ys < h))[:, None]
        np.testing.assert_allclose(np.asarray(out[1])[..., 0], np.where(inside, c, f), atol=1e-6)
    with pytest.raises(ValueError, match="affine: padding"):
        O.affine(img, m, padding="zeros")
    with pytest.raises(ValueError, match="warp_chain: padding"):
        O.warp_chain(img, m[None], padding="border")


def _border_cosines():
    """Float64 autodiff gradients against central differences (eps 1e-6) at parameters where
    sample points sit within eps of the frame's edge, so the differences cross it:
    {(op, padding): cosine} for deform (w.r.t. the flow) and warp_chain (w.r.t. the matrices)."""
    rng = np.random.default_rng(0)
    h, w, eps = 12, 14, 1e-6
    img = jnp.asarray(rng.random((h, w, 3)))
    wgt = jnp.asarray(rng.standard_normal((h, w, 3)))
    # deform: half the points random, half at an edge (x = 0 or W, or y = 0 or H) +- eps/2.
    flow = rng.standard_normal((h, w, 2)) * 1.5
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    edge = rng.random((h, w)) < 0.5
    axis = rng.integers(0, 2, (h, w))
    side = rng.integers(0, 2, (h, w)) * np.where(axis == 0, w, h)
    target = side + rng.uniform(-eps / 2, eps / 2, (h, w))
    flow[..., 0] = np.where(edge & (axis == 0), target - xs, flow[..., 0])
    flow[..., 1] = np.where(edge & (axis == 1), target - ys, flow[..., 1])
    flow = jnp.asarray(flow)
    # warp_chain: a shift, a rotation and a shift; the last (the first applied to output
    # points) puts column 0's points at x = 0.3 eps, so its differences cross the left edge.
    mats = jnp.stack([O.translate_x_matrix(4.3), O.rotate_matrix(23.0, h, w),
                      O.compose(O.translate_x_matrix(-0.5 + 0.3 * eps), O.translate_y_matrix(1.7))])
    basis = jnp.eye(18).reshape(18, 3, 2, 3)
    basis = jnp.concatenate([basis, jnp.zeros((18, 3, 1, 3))], axis=2)

    @jax.jit
    def cosines():
        out = {}
        for padding in ("fill", "pil"):
            per_pixel = lambda f: jnp.sum(wgt * O.deform(img, f, padding=padding), axis=-1)
            auto = jax.grad(lambda f: jnp.sum(per_pixel(f)))(flow)
            # Output pixel (i, j) depends on flow[i, j] only: one shift of all of one channel
            # gives every pixel's central difference at once.
            fd = jnp.stack([(per_pixel(flow + eps * e) - per_pixel(flow - eps * e)) / (2 * eps)
                            for e in jnp.eye(2)], axis=-1)
            out["deform", padding] = jnp.vdot(auto, fd) / jnp.linalg.norm(auto) / jnp.linalg.norm(fd)
            loss = lambda m: jnp.sum(wgt * O.warp_chain(img, m, padding=padding)[0])
            auto = jax.grad(loss)(mats)[:, :2].ravel()
            fd = jax.vmap(lambda d: (loss(mats + eps * d) - loss(mats - eps * d)) / (2 * eps))(basis)
            out["warp_chain", padding] = jnp.vdot(auto, fd) / jnp.linalg.norm(auto) / jnp.linalg.norm(fd)
        return out

    return {k: float(v) for k, v in cosines().items()}


@pytest.fixture(scope="module")
def border_cosines():
    with jax.enable_x64(True):
        return _border_cosines()


def test_fill_padding_gradients_match_finite_differences_across_the_border(border_cosines):
    print(border_cosines)
    for op in ("deform", "warp_chain"):
        assert border_cosines[op, "fill"] > 0.99, (op, border_cosines)
        # The check has teeth: PIL's hard in/out test jumps inside the same differences.
        assert border_cosines[op, "pil"] < 0.9, (op, border_cosines)
