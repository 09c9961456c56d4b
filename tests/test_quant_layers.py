"""WAGE's gradient quantizer changes only the backward pass and equals its definition; quantized
layers equal float layers on quantized operands; packed model sizes come from real bytes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxaug import quant


def test_gradient_quantizer_is_identity_forward_and_wage_backward():
    x = jnp.linspace(-2.0, 2.0, 7)
    g = jnp.asarray([0.001, -0.002, 0.0031, 0.0, 0.00049, 0.1, -0.05])
    np.testing.assert_array_equal(quant.quantize_grad(x, 4), x)
    got = jax.grad(lambda v: jnp.sum(quant.quantize_grad(v, 4) * g))(x)
    # max|g| = 0.1 -> shift 2^round(log2 0.1) = 1/8; sigma(4) = 1/8; g / (1/64) = 6.4 -> 6, -3.2 -> -3,
    # 0.198 -> 0; back: 6/64, -3/64.
    np.testing.assert_allclose(got, [0, 0, 0, 0, 0, 6 / 64, -3 / 64], atol=0)
    # Saturation at 2 bits (sigma = 1/2): shift(1.45) = 2^round(0.536) = 2, and 1.45 / 2 = 0.725
    # rounds to 1 step, which is the clip limit 1 - sigma; -0.3 / 2 rounds to 0.
    q = quant.quantize_gradient_value(jnp.asarray([1.45, -0.3]), 2)
    np.testing.assert_allclose(q, [2 * 0.5, 0.0], atol=0)


def test_gradient_quantizer_changes_only_the_backward_pass():
    key = jax.random.key(3)
    w = jax.random.normal(key, (5, 4))
    x = jax.random.normal(jax.random.key(4), (6, 5))

    def loss(w, quantized):
        h = x @ (quant.quantize_grad(w, 6) if quantized else w)
        return jnp.sum(jnp.tanh(h) ** 2), h

    (value_q, h_q), grad_q = jax.value_and_grad(loss, has_aux=True)(w, True)
    (value, h), grad = jax.value_and_grad(loss, has_aux=True)(w, False)
    assert float(value_q) == float(value)
    np.testing.assert_array_equal(h_q, h)
    np.testing.assert_allclose(grad_q, quant.quantize_gradient_value(grad, 6), rtol=1e-6)
    assert not np.allclose(grad_q, grad, rtol=1e-4)


def test_stochastic_gradient_rounding_is_unbiased_and_brackets_the_value():
    g = jnp.asarray([0.3, -0.17, 0.05, 0.999])
    grads = jax.vmap(lambda k: jax.grad(lambda v: jnp.sum(quant.quantize_grad(v, 3, k) * g))(
        jnp.zeros(4)))(jax.random.split(jax.random.key(0), 4000))
    # shift = 1, sigma = 1/4: each output is one of the two neighbouring multiples of 1/4 (the
    # largest, 0.999, saturates at 3/4), and the mean is the value itself.
    lo, hi = np.floor(np.asarray(g) * 4) / 4, np.ceil(np.asarray(g) * 4) / 4
    assert np.all((grads == lo) | (grads == np.minimum(hi, 0.75)))
    np.testing.assert_allclose(grads[:, :3].mean(0), g[:3], atol=0.01)
    assert np.all(grads[:, 3] == 0.75)


def _dense(spec, x, kernel, bias):
    layer = quant.QuantDense(features=kernel.shape[1], spec=spec)
    return layer.apply({"params": {"kernel": kernel, "bias": bias}}, x)


def test_quant_dense_equals_a_float_dense_on_quantized_operands():
    k1, k2 = jax.random.split(jax.random.key(1))
    x = jax.random.uniform(k1, (3, 6), minval=-1.2, maxval=1.2)
    kernel = jax.random.normal(k2, (6, 4)) * 0.5
    bias = jnp.arange(4.0) * 0.1
    for name in ("818", "828", "bw", "tw"):
        spec = quant.get_spec(name)
        r = spec.feature_range
        qx = x if spec.feature_bits is None else r * quant.quantize(x / r, spec.feature_bits)
        qk = quant.quantize_weights(kernel, spec.weights)[0]
        np.testing.assert_allclose(_dense(spec, x, kernel, bias), qx @ qk + bias, rtol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(_dense(None, x, kernel, bias), x @ kernel + bias, rtol=1e-6)


def test_quant_dense_gradients_follow_wage():
    """With ``quantize_error`` and rounding to nearest: error E quantized at the output; the
    kernel's gradient quantized again (G); weights and features through their clipped STEs."""
    x = jnp.asarray([[0.2, -0.7, 1.3]])
    kernel = jnp.asarray([[0.4, -0.2], [0.1, 0.9], [-1.5, 0.3]])
    g_out = jnp.asarray([[0.3, -0.01]])
    spec = quant.QuantSpec(feature_bits=4, weights="binary", gradient_bits=4,
                           stochastic_rounding=False, quantize_error=True)

    def f(x, kernel):
        return jnp.sum(_dense(spec, x, kernel, jnp.zeros(2)) * g_out)

    gx, gk = jax.grad(f, argnums=(0, 1))(x, kernel)
    e = quant.quantize_gradient_value(g_out, 4)
    sign_k = np.where(np.asarray(kernel) >= 0, 1.0, -1.0)
    s = 2.0 ** -3
    x_in = (np.abs(np.asarray(x)) <= 1 - s).astype(np.float32)
    np.testing.assert_allclose(gx, (np.asarray(e) @ sign_k.T) * x_in, rtol=1e-6)
    qx = np.asarray(quant.quantize(x, 4))
    k_in = (np.abs(np.asarray(kernel)) <= 1).astype(np.float32)
    want_k = quant.quantize_gradient_value(jnp.asarray((qx.T @ np.asarray(e)) * k_in), 4)
    np.testing.assert_allclose(gk, want_k, rtol=1e-6)


def test_quant_conv_matches_lax_conv_and_runs_under_jit_vmap():
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
    layer = quant.QuantConv(features=5, kernel_size=3, strides=2, spec=quant.get_spec("bw_alpha"),
                            use_bias=False)
    variables = layer.init(jax.random.key(1), x)
    kernel = variables["params"]["kernel"]
    want = jax.lax.conv_general_dilated(
        x, quant.binarize(kernel, scaled=True), (2, 2), ((1, 1), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(jax.jit(layer.apply)(variables, x), want, rtol=1e-5, atol=1e-6)
    batched = jax.vmap(lambda im: layer.apply(variables, im[None])[0])(x)
    np.testing.assert_allclose(batched, want, rtol=1e-5, atol=1e-6)


def test_default_spec_rounds_only_the_kernel_gradient_stochastically_from_the_quant_stream():
    """Defaults: G rounded stochastically (WAGE), no error quantization: the input's gradient is
    the float one, the kernel's is one of the two neighbouring grid points, drawn from the 'quant'
    stream when given, else from a key derived from the gradient, unbiased either way."""
    layer = quant.QuantDense(features=2, spec=quant.QuantSpec(gradient_bits=4))
    x = np.ones((1, 3), np.float32)
    variables = {"params": {"kernel": np.asarray([[0.5, -0.2], [0.3, 0.1], [-0.4, 0.7]],
                                                 np.float32), "bias": np.zeros(2, np.float32)}}

    def grads(g_out, rngs):
        return jax.grad(lambda p, v: jnp.sum(layer.apply({"params": p}, v, rngs=rngs) * g_out),
                        argnums=(0, 1))(variables["params"], x)

    @jax.jit
    def draws(keys, offsets):
        with_stream = jax.vmap(lambda k: grads(jnp.asarray([0.3, 0.1]), {"quant": k})[0])(keys)
        # Without an rng: a different key for every cotangent (here 0.3 varies in its last bits).
        derived = jax.vmap(lambda e: grads(jnp.asarray([0.3 + e, 0.1]), {})[0])(offsets)
        return (with_stream["kernel"][:, 0, 1], derived["kernel"][:, 0, 1],
                grads(jnp.asarray([0.3, 0.1]), {})[1])

    # The kernel gradient's entry 0.1 sits at 3.2 quantization steps of 1/32 (shift 0.25).
    with_stream, derived, x_grad = draws(jax.random.split(jax.random.key(0), 2000),
                                         jnp.arange(2000) * 1e-7)
    for got in (with_stream, derived):
        assert set(np.unique(np.asarray(got))) == {3 / 32, 4 / 32}
        assert float(jnp.mean(got)) == pytest.approx(0.1, abs=0.003)
    np.testing.assert_allclose(x_grad, jnp.asarray([[0.3, 0.1]]) @ variables["params"]["kernel"].T,
                               rtol=1e-6)


def test_feature_range_scales_the_quantization_grid():
    x = jnp.asarray([[0.3, 1.7, -2.2, 5.0]])
    kernel = jnp.eye(4)
    spec = quant.QuantSpec(feature_bits=4, feature_range=4.0)
    # R = 4, sigma = 1/8: steps of 1/2 on [-3.5, 3.5].
    np.testing.assert_allclose(_dense(spec, x, kernel, jnp.zeros(4)), [[0.5, 1.5, -2.0, 3.5]])
    with pytest.raises(ValueError, match="feature_range must be a power of two, got 3.0"):
        quant.QuantSpec(feature_bits=4, feature_range=3.0)


def test_spec_validation_names_the_field():
    with pytest.raises(ValueError, match="QuantSpec.feature_bits"):
        quant.QuantSpec(feature_bits=1)
    with pytest.raises(ValueError, match="QuantSpec.weights='quaternary'"):
        quant.QuantSpec(weights="quaternary")
    with pytest.raises(ValueError, match="unknown quantization setting '717'"):
        quant.get_spec("717")


class _Tiny(nn.Module):
    """Full-precision first and last layers around two quantized ones."""

    spec: quant.QuantSpec | None

    @nn.compact
    def __call__(self, x):
        x = quant.QuantConv(features=16, kernel_size=3, name="first")(x)
        x = quant.QuantConv(features=32, kernel_size=3, spec=self.spec, name="mid1")(nn.relu(x))
        x = quant.QuantConv(features=32, kernel_size=3, spec=self.spec, name="mid2")(nn.relu(x))
        return quant.QuantDense(features=4, name="last")(jnp.mean(x, axis=(1, 2)))


@pytest.mark.parametrize("setting,kind,bits_per_weight", [("bw", "binary", 1),
                                                           ("tw", "ternary", 2), (quant.QuantSpec(weights="ternary_alpha"), "ternary", 2)])
def test_packed_model_size_and_exact_round_trip(setting, kind, bits_per_weight):
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    model = _Tiny(quant.get_spec(setting))
    variables = model.init(jax.random.key(1), x)
    packed = quant.pack_model(model, variables, x)
    assert sorted(packed.kernels) == [("mid1", "kernel"), ("mid2", "kernel")]
    sizes = {"mid1": 3 * 3 * 16 * 32, "mid2": 3 * 3 * 32 * 32}
    for layer, n in sizes.items():
        stored = packed.kernels[(layer, "kernel")]
        assert stored.kind == kind and stored.bits.nbytes == n * bits_per_weight // 8
    scales = 0 if quant.get_spec(setting).weights in ("binary", "ternary") else 2 * 32 * 4
    other = quant.float_nbytes(variables["params"]) - 4 * sum(sizes.values())
    assert packed.nbytes == sum(sizes.values()) * bits_per_weight // 8 + scales + other
    # The restored weights make a float model compute exactly what the quantized one did.
    restored = {"params": packed.params()}
    np.testing.assert_allclose(_Tiny(None).apply(restored, x), model.apply(variables, x),
                               rtol=1e-5, atol=1e-6)


class _Shared(nn.Module):
    """A quantized conv applied twice in one pass (as the CU-Net's under iterative refinement)."""

    spec: quant.QuantSpec | None

    @nn.compact
    def __call__(self, x):
        x = quant.QuantConv(features=4, kernel_size=3, name="first")(x)
        shared = quant.QuantConv(features=4, kernel_size=3, spec=self.spec, name="shared")
        x = shared(nn.relu(shared(nn.relu(x))))
        return quant.QuantDense(features=4, name="last")(jnp.mean(x, axis=(1, 2)))


def test_a_layer_called_twice_is_packed_once():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
    model = _Shared(quant.get_spec("bw_alpha"))
    shapes = {"first": (3, 3, 3, 4), "shared": (3, 3, 4, 4), "last": (4, 4)}  # no init to compile
    variables = {"params": {name: {"kernel": rng.normal(0, 0.5, shape).astype(np.float32),
                                   "bias": np.zeros(4, np.float32)}
                            for name, shape in shapes.items()}}
    packed = quant.pack_model(model, variables, x)
    assert list(packed.kernels) == [("shared", "kernel")]
    assert packed.kernels[("shared", "kernel")].bits.nbytes == 3 * 3 * 4 * 4 // 8
    np.testing.assert_allclose(_Shared(None).apply({"params": packed.params()}, x),
                               model.apply(variables, x), rtol=1e-5, atol=1e-6)
