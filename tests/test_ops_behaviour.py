"""Gradients, fusion, closed forms and argument validation of jaxaug.ops (jit/vmap and bad images
of every op: tests/test_ops_api.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxaug.ops as O

def _gradient_checks():
    """Float64 gradient checks (in process: x64 is a context, as in test_ops_extra.py). Each
    compares the autodiff derivative along a direction with a central finite difference (eps 1e-6)
    of loss = sum(w * op(...)), at generic (non-kink) points. Returns {name: (auto, fd, rel)}."""
    rng = np.random.default_rng(0)
    img = jnp.asarray(rng.random((12, 14, 3)))
    w = jnp.asarray(rng.standard_normal((12, 14, 3)))
    eps = 1e-6
    out = {}

    def derivatives(f):
        """Jitted (x, d) -> (autodiff, central difference) derivatives of sum(w * f(x)) along d:
        one compile per f, reused for every point of the same shape."""
        loss = lambda x: jnp.sum(w * f(x))
        return jax.jit(lambda x, d: (jnp.vdot(jax.grad(loss)(x), d),
                                     (loss(x + eps * d) - loss(x - eps * d)) / (2 * eps)))

    def check(name, f, x):
        auto, fd = (float(v) for v in f(x, jnp.asarray(rng.standard_normal(np.shape(x)))))
        out[name] = (auto, fd, abs(auto - fd) / max(abs(fd), 1e-3))

    m = O.compose(O.rotate_matrix(17.0, 12, 14), O.translate_x_matrix(0.37),
                  O.shear_y_matrix(0.11))
    check("affine/matrix", derivatives(lambda m: O.affine(img, m)), m[:2])
    check("affine/img", derivatives(lambda x: O.affine(x, m)), img)
    flow = jnp.asarray(rng.standard_normal((12, 14, 2)) * 1.5)
    check("deform/flow", derivatives(lambda f: O.deform(img, f)), flow)
    check("deform/img", derivatives(lambda x: O.deform(x, flow)), img)
    for op in ("brightness", "color", "contrast", "sharpness"):
        factor_derivatives = derivatives(lambda f, op=op: getattr(O, op)(img, f))
        for factor in (0.3, 1.4):
            check(f"{op}/factor@{factor}", factor_derivatives, jnp.float64(factor))
    # (color/contrast/sharpness round their degenerate image to 8-bit levels with a
    # straight-through gradient, so only their factor gradient is a true derivative of the
    # forward value.)
    check("brightness/img", derivatives(lambda x: O.brightness(x, 1.4)), img)
    return out


@pytest.fixture(scope="module")
def grad_results():
    with jax.enable_x64(True):
        return _gradient_checks()


def test_gradients_match_finite_differences(grad_results):
    expected = {"affine/matrix", "affine/img", "deform/flow", "deform/img", "brightness/img"} | {
        f"{op}/factor@{f}" for op in ("brightness", "color", "contrast", "sharpness")
        for f in (0.3, 1.4)}
    assert set(grad_results) == expected
    for name, (auto, fd, rel) in grad_results.items():
        assert abs(fd) > 1e-3, (name, fd)  # the check is not vacuous
        assert rel < 1e-5, (name, auto, fd)


def _image(seed=0, shape=(16, 20, 3)):
    return jnp.asarray(np.random.default_rng(seed).random(shape), jnp.float32)


def _count(jaxpr, name):
    """Number of `name` primitives in a jaxpr, including nested sub-jaxprs (pjit, etc.)."""
    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name == name
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                if hasattr(sub, "jaxpr"):
                    total += _count(getattr(sub.jaxpr, "jaxpr", sub.jaxpr), name)
                elif hasattr(sub, "eqns"):
                    total += _count(sub, name)
    return total


def test_compose_fuses_into_one_resampling():
    img = _image(1, (32, 32, 3))
    s, d = 0.2, 15.0
    fused = O.affine(img, O.compose(O.shear_x_matrix(s), O.rotate_matrix(d, 32, 32)),
                     interpolation="nearest", fill=128 / 255)
    seq = O.rotate(O.shear_x(img, s), d)
    wrong_order = O.affine(img, O.compose(O.rotate_matrix(d, 32, 32), O.shear_x_matrix(s)),
                           interpolation="nearest", fill=128 / 255)
    err = float(jnp.mean(jnp.abs(fused - seq)))
    # Two nearest resamplings vs one: differences only where the intermediate rounding moved a
    # sample by one pixel (measured ~0.08 on uniform noise); the wrong order is far off (~0.3).
    assert err < 0.12, err
    assert float(jnp.mean(jnp.abs(wrong_order - seq))) > 2 * err
    # One resampling is one gather per sampled neighbour: 1 (nearest) or 4 (bilinear).
    for interp, gathers in (("nearest", 1), ("bilinear", 4)):
        fused_fn = lambda x, interp=interp: O.affine(x, O.compose(O.shear_x_matrix(s), O.rotate_matrix(d, 32, 32)),
                                      interpolation=interp)
        assert _count(jax.make_jaxpr(fused_fn)(img).jaxpr, "gather") == gathers
        chain_fn = lambda x, interp=interp: O.warp_chain(
            x, jnp.stack([O.shear_x_matrix(s), O.rotate_matrix(d, 32, 32)]), interpolation=interp)[0]
        assert _count(jax.make_jaxpr(chain_fn)(img).jaxpr, "gather") == gathers
    seq_fn = lambda x: O.rotate(O.shear_x(x, s), d)
    assert _count(jax.make_jaxpr(seq_fn)(img).jaxpr, "gather") == 2


def test_compose_of_smooth_image_matches_sequence_bilinear():
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    img = jnp.asarray(np.stack([np.sin(3 * xx), np.cos(2 * yy), xx * yy], -1) * 0.4 + 0.5, jnp.float32)
    fused = O.affine(img, O.compose(O.translate_y_matrix(2.5), O.rotate_matrix(-20.0, 32, 32)))
    seq = O.affine(O.affine(img, O.translate_y_matrix(2.5)), O.rotate_matrix(-20.0, 32, 32))
    inner = (slice(6, 26), slice(6, 26))
    assert float(jnp.max(jnp.abs(fused - seq)[inner])) < 0.01


def test_affine_matrix_forms_and_identity():
    img = _image()
    eye = jnp.eye(3)
    affine = jax.jit(O.affine, static_argnames="interpolation")
    np.testing.assert_allclose(affine(img, eye), img, atol=1e-6)
    np.testing.assert_allclose(affine(img, eye[:2], interpolation="nearest"), img)
    np.testing.assert_allclose(affine(img, eye[:2].reshape(6)), img, atol=1e-6)
    # Integer translation by matrix: out[:, j] = img[:, j + 3], fill on the right.
    out = jax.jit(O.translate_x)(img, 3.0, fill=0.25)
    np.testing.assert_allclose(out[:, :-3], img[:, 3:])
    np.testing.assert_allclose(out[:, -3:], 0.25)


def test_rotate_direction_counter_clockwise():
    img = jnp.zeros((9, 9, 3)).at[4, 8].set(1.0)  # a dot right of the centre
    out = jax.jit(O.rotate)(img, 90.0, fill=0.0)
    assert np.unravel_index(int(jnp.argmax(out[..., 0])), (9, 9)) == (0, 4)  # moved to the top


def test_deform_integer_flow_is_shift_and_zero_flow_is_identity():
    img = _image(2)
    np.testing.assert_allclose(jax.jit(O.deform)(img, jnp.zeros((16, 20, 2))), img, atol=1e-6)
    flow = jnp.zeros((16, 20, 2)).at[..., 0].set(2.0).at[..., 1].set(-1.0)
    out = jax.jit(O.deform)(img, flow, fill=0.0)
    np.testing.assert_allclose(out[1:, :-2], img[:-1, 2:], atol=1e-6)
    np.testing.assert_allclose(out[0], 0.0)
    assert _count(jax.make_jaxpr(O.deform)(img, flow).jaxpr, "gather") == 4  # one bilinear resampling


def test_misc_ops():
    img = _image(3)
    np.testing.assert_array_equal(O.identity(img), img)
    np.testing.assert_array_equal(O.hflip(img), img[:, ::-1])
    np.testing.assert_array_equal(O.vflip(img), img[::-1])
    cut = jax.jit(O.cutout)(img, jnp.array([5, 1]), 6, fill=0.0)
    mask = np.zeros((16, 20), bool)
    mask[2:8, 0:4] = True
    np.testing.assert_array_equal(np.asarray(cut)[mask], 0.0)
    np.testing.assert_array_equal(np.asarray(cut)[~mask], np.asarray(img)[~mask])
    other = _image(4)
    np.testing.assert_allclose(O.sample_pairing(img, other, 0.25), 0.75 * img + 0.25 * other, atol=1e-6)
    noise = jax.jit(O.gaussian_noise)
    noisy = noise(jax.random.key(0), jnp.full((64, 64, 3), 0.5), 0.1)
    assert abs(float(jnp.std(noisy)) - 0.1) < 0.01 and float(noisy.min()) >= 0.0
    big = _image(4, (64, 64, 3))  # the shape above: no second compile
    np.testing.assert_array_equal(noise(jax.random.key(0), big, 0.0), big)


def test_point_ops_straight_through_gradient():
    img = 0.2 + 0.4 * _image(5)  # not full-range, so auto_contrast and equalize change it
    for op, args in ((O.invert, ()), (O.solarize, (0.5,)), (O.posterize, (3,)),
                     (O.auto_contrast, ()), (O.equalize, ())):
        def run(x, op=op, args=args):
            st = lambda x: jnp.sum(op(x, *args, straight_through=True) * 2.0)
            plain = lambda x: jnp.sum(op(x, *args))
            return (op(x, *args), op(x, *args, straight_through=True), jax.grad(st)(x),
                    jax.grad(plain)(x))
        plain, st, g, g0 = jax.jit(run)(img)
        np.testing.assert_allclose(st, plain, atol=1e-6)
        assert float(jnp.abs(plain - img).max()) > 0.05  # the op changed the image
        np.testing.assert_allclose(g, 2.0)
        np.testing.assert_array_equal(g0, 0.0)


def test_bad_arguments_raise_named_errors():
    img = _image()
    with pytest.raises(ValueError, match="^affine: matrix"):
        O.affine(img, jnp.eye(4))
    with pytest.raises(ValueError, match="^affine: interpolation"):
        O.affine(img, jnp.eye(3), interpolation="cubic")
    with pytest.raises(ValueError, match="^deform: flow"):
        O.deform(img, jnp.zeros((16, 20, 3)))
    with pytest.raises(ValueError, match="^color: img must have 3 channels"):
        O.color(img[..., :1], 0.5)
    with pytest.raises(ValueError, match="^cutout: center"):
        O.cutout(img, jnp.array([1, 2, 3]), 4)
    with pytest.raises(ValueError, match="^sample_pairing: other"):
        O.sample_pairing(img, img[:8], 0.5)
