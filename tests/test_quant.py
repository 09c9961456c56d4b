"""Quantizers: forward values at the edges, backward passes equal their straight-through
definitions, per-channel scales; bit packing round trips exactly with the promised sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug import quant


def test_binarize_values_and_clipped_straight_through_gradient():
    w = jnp.asarray([-2.0, -1.0, -0.3, 0.0, 0.4, 1.0, 1.5])
    np.testing.assert_array_equal(quant.binarize(w), [-1, -1, -1, 1, 1, 1, 1])
    grad = jax.grad(lambda v: jnp.sum(quant.binarize(v) * jnp.arange(7.0)))(w)
    np.testing.assert_array_equal(grad, np.arange(7.0) * (np.abs(np.asarray(w)) <= 1))


def test_scaled_binary_is_mean_abs_per_output_channel_with_xnor_gradient():
    w = jnp.asarray([[0.5, -2.0], [-0.1, 0.4], [0.3, -0.6]])  # [in 3, out 2]
    alpha = np.abs(np.asarray(w)).mean(0)
    np.testing.assert_allclose(quant.binarize(w, scaled=True), np.sign(np.asarray(w)) * alpha,
                               rtol=1e-6)
    # d/dw sum(g * alpha sign(w)) = g alpha 1{|w|<=1} + sign(w)/n sum_i(g_i sign(w_i)).
    g = jnp.asarray([[1.0, 2.0], [-1.0, 0.5], [3.0, 1.0]])
    got = jax.grad(lambda v: jnp.sum(g * quant.binarize(v, scaled=True)))(w)
    s, gn, wn = np.sign(np.asarray(w)), np.asarray(g), np.asarray(w)
    want = gn * alpha * (np.abs(wn) <= 1) + s / 3 * (gn * s).sum(0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_ternarize_threshold_and_scale():
    w = jnp.asarray([[0.9], [-0.05], [0.2], [-0.7]])
    t = 0.7 * np.abs(np.asarray(w)).mean()  # 0.32375
    np.testing.assert_allclose(quant.ternary_threshold(w), [t], rtol=1e-6)
    np.testing.assert_array_equal(quant.ternarize(w, scaled=False)[:, 0], [1, 0, 0, -1])
    np.testing.assert_allclose(quant.ternarize(w)[:, 0], np.asarray([1, 0, 0, -1]) * 0.8,
                               rtol=1e-6)
    grad = jax.grad(lambda v: jnp.sum(quant.ternarize(v, scaled=False)))(w)
    np.testing.assert_array_equal(grad, np.ones((4, 1)))


@pytest.mark.parametrize("bits", [2, 8])
def test_kbit_quantizer_edges_and_gradient(bits):
    s = 2.0 ** (1 - bits)
    x = jnp.asarray([-1.0, -1 + s, -0.3, 0.0, 0.26, 1 - s, 1.0, 2.0])
    want = np.clip(s * np.round(np.asarray(x) / s), -1 + s, 1 - s)
    np.testing.assert_allclose(quant.quantize(x, bits), want, atol=1e-7)
    assert float(quant.quantize(jnp.asarray(0.0), bits)) == 0.0
    assert float(quant.quantize(jnp.asarray(1.0), bits)) == 1 - s
    assert float(quant.quantize(jnp.asarray(-1.0), bits)) == -1 + s
    grad = jax.grad(lambda v: jnp.sum(quant.quantize(v, bits)))(x)
    inside = (np.asarray(x) >= -1 + s) & (np.asarray(x) <= 1 - s)
    np.testing.assert_array_equal(grad, inside.astype(np.float32))
    if bits == 2:  # sigma = 0.5: the levels are -0.5, 0, 0.5
        assert set(np.unique(np.asarray(quant.quantize(x, 2)))) <= {-0.5, 0.0, 0.5}


def test_quantizers_work_under_jit_and_vmap():
    w = jax.random.normal(jax.random.key(0), (4, 3, 5))
    np.testing.assert_array_equal(jax.jit(quant.binarize)(w), quant.binarize(w))
    np.testing.assert_allclose(jax.vmap(lambda v: quant.quantize(v, 4))(w), quant.quantize(w, 4))
    with pytest.raises(ValueError, match="bits must be an integer >= 2, got 1"):
        quant.quantize(w, 1)


@pytest.mark.parametrize("shape", [(3, 3, 16, 32), (7,), (5, 3)])
def test_bit_packing_round_trips_exactly_with_the_promised_size(shape):
    rng = np.random.default_rng(0)
    signs = rng.choice([-1, 1], size=shape)
    packed = quant.pack_binary(signs)
    assert packed.dtype == np.uint8 and packed.nbytes == -(-signs.size // 8)
    np.testing.assert_array_equal(quant.unpack_binary(packed, shape), signs)
    values = rng.choice([-1, 0, 1], size=shape)
    packed = quant.pack_ternary(values)
    assert packed.nbytes == -(-values.size // 4)
    np.testing.assert_array_equal(quant.unpack_ternary(packed, shape), values)
    with pytest.raises(ValueError, match="-1, 0 or \\+1"):
        quant.pack_ternary(values * 2)


def test_unpacking_refuses_bytes_that_do_not_fit_the_shape_or_hold_no_ternary_code():
    signs = np.asarray([1, -1, 1, 1, -1, -1, 1, -1, 1])  # 9 values: 2 bytes
    packed = quant.pack_binary(signs)
    with pytest.raises(ValueError, match=r"unpack_binary: shape \(17,\) needs 3 packed bytes, got 2"):
        quant.unpack_binary(packed, (17,))  # would have read 8 made-up -1s
    with pytest.raises(ValueError, match="unpack_binary: packed must be uint8"):
        quant.unpack_binary(packed.astype(np.int32), signs.shape)
    values = np.asarray([1, 0, -1, 0, 1])  # 2 bytes
    packed = quant.pack_ternary(values)
    with pytest.raises(ValueError, match=r"unpack_ternary: shape \(3,\) needs 1 packed bytes, got 2"):
        quant.unpack_ternary(packed, (3,))
    damaged = packed.copy()
    damaged[0] |= 0b11 << 2  # value 1 becomes the code 11, which pack_ternary never writes
    with pytest.raises(ValueError, match=r"1 code\(s\) 11"):
        quant.unpack_ternary(damaged, values.shape)
