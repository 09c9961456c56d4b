"""The paper-named quantization settings mean the thesis's (Tang thesis, sec. 5.3.5, tables
5.8-5.10): WAGE's feature range 1, alpha-free BW / TW, BatchNorm gamma ~ U(0, 1) in the CU-Net;
alpha is invisible through a BatchNorm; quantized master weights are clamped to [-1, 1]."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import traverse_util

from jaxaug import quant
from jaxaug.models import CUNet


def test_paper_names_are_the_thesis_settings_and_r4_keeps_our_variant():
    bits = {"818": (8, "binary", 8), "616": (6, "binary", 6), "828": (8, "ternary", 8),
            "626": (6, "ternary", 6), "bw": (None, "binary", None),
            "bw_alpha": (None, "binary_alpha", None), "tw": (None, "ternary", None),
            "818_alpha": (8, "binary_alpha", 8)}
    for name, (f, w, g) in bits.items():
        spec = quant.SETTINGS[name]
        assert (spec.feature_bits, spec.weights, spec.gradient_bits) == (f, w, g), name
        assert spec.feature_range == 1.0 and spec.bn_scale_init == "uniform", name
        assert spec.stochastic_rounding and not spec.quantize_error, name
    for name in ("818", "616", "828", "626"):
        spec, r4 = quant.SETTINGS[name], quant.SETTINGS[f"{name}_r4"]
        assert r4.feature_range == 4.0 and r4.bn_scale_init == "ones"
        assert r4.weights == spec.weights + "_alpha"
        assert (r4.feature_bits, r4.gradient_bits) == (spec.feature_bits, spec.gradient_bits)


def test_spec_rejects_bad_gradient_options():
    with pytest.raises(ValueError, match="quantize_error needs gradient_bits"):
        quant.QuantSpec(quantize_error=True)
    with pytest.raises(ValueError, match="bn_scale_init='normal' is unknown"):
        quant.QuantSpec(bn_scale_init="normal")
    with pytest.raises(ValueError, match="rounding must be one of"):
        quant.quantize_grad(jnp.ones(2), 8, rounding="up")


def _batchnorm_scale_inits(model, images):
    """Every BatchNorm's scale initializer, recorded while tracing ``model.init`` (no compile),
    and the number of BatchNorm scales in the parameter tree."""
    inits = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
            inits.append(context.module.scale_init)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False),
                                   images)
    scales = [p for p in traverse_util.flatten_dict(variables["params"]) if p[-1] == "scale"]
    return inits, len(scales)


@pytest.mark.parametrize("setting,uniform", [("818", True), ("818_r4", False), (None, False)])
def test_cunet_batchnorm_scales_start_uniform_under_the_paper_settings(setting, uniform):
    model = CUNet(num_joints=3, num_unets=2, depth=1, features=8, growth=4, stem_stride=2,
                  quant=setting)
    inits, num_scales = _batchnorm_scale_inits(model, jax.ShapeDtypeStruct((1, 8, 8, 3),
                                                                           jnp.float32))
    # Every BatchNorm of the model: stem, dense blocks, adapters and heads.
    assert len(inits) == num_scales > 10
    for init in inits:
        values = np.asarray(init(jax.random.key(0), (256,), jnp.float32))
        if uniform:
            assert values.min() >= 0 and values.max() < 1 and values.std() > 0.2
        else:
            assert np.all(values == 1)


class _ConvBN(nn.Module):
    weights: str
    norm: bool = True

    @nn.compact
    def __call__(self, x):
        y = quant.QuantConv(features=8, kernel_size=3, spec=quant.QuantSpec(weights=self.weights),
                            use_bias=False, name="conv")(x)
        return nn.BatchNorm(use_running_average=False, epsilon=1e-5, name="bn")(y) if self.norm else y


@jax.jit
def _outputs_and_gradients(variables, x, g):
    def loss(params, x, weights):
        y, _ = _ConvBN(weights).apply({**variables, "params": params}, x, mutable=["batch_stats"])
        return jnp.sum(y * g), y

    results = {}
    for weights in ("binary", "binary_alpha"):
        (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
            variables["params"], x, weights)
        results[weights] = (y, grads[0]["conv"]["kernel"], grads[1])
    without_bn = [_ConvBN(w, norm=False).apply(variables, x) for w in ("binary", "binary_alpha")]
    return results, without_bn


def test_alpha_has_no_effect_through_a_batchnorm():
    """conv -> BN with sign(W) and with sign(W) * mean|W| per output channel: the same output and
    the same gradients (kernel and input) up to float error, as BN divides the per-channel scale
    out; without the BN the outputs differ by alpha."""
    # numpy draws and the variables of _ConvBN written out: eager jax sampling and init would
    # cost more than the test.
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(2, 6, 6, 4)), rng.normal(size=(2, 6, 6, 8))
    variables = {"params": {"conv": {"kernel": 0.2 * rng.normal(size=(3, 3, 4, 8))},
                            "bn": {"scale": jnp.ones(8), "bias": jnp.zeros(8)}},
                 "batch_stats": {"bn": {"mean": jnp.zeros(8), "var": jnp.ones(8)}}}
    results, without_bn = _outputs_and_gradients(variables, x, g)
    for a, b in zip(results["binary"], results["binary_alpha"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * float(jnp.max(jnp.abs(a))))
    assert not np.allclose(*without_bn, rtol=0.1)


class _Mixed(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        del train
        x = quant.QuantConv(features=4, name="first")(x)
        x = quant.QuantConv(features=4, spec=quant.get_spec("bw"), name="binary")(x)
        x = quant.QuantConv(features=4, spec=quant.get_spec("tw"), name="ternary")(x)
        x = quant.QuantConv(features=4, spec=quant.QuantSpec(feature_bits=8), name="features")(x)
        return quant.QuantDense(features=2, name="last")(jnp.mean(x, axis=(1, 2)))


def test_clamp_keeps_binary_and_ternary_master_weights_in_range():
    images = jax.ShapeDtypeStruct((1, 4, 4, 3), jnp.float32)
    mask = quant.quantized_kernel_mask(_Mixed(), images, train=False)
    flat = traverse_util.flatten_dict(mask)
    assert {p for p, m in flat.items() if m} == {("binary", "kernel"), ("ternary", "kernel")}
    w = jnp.asarray([0.95, -0.9, 0.3, 0.999999, -0.5])
    u = jnp.asarray([0.2, -0.4, 0.1, 1e-6, -0.7])
    params = {"binary": {"kernel": w}, "first": {"kernel": w}}
    opt = optax.chain(optax.sgd(1.0), quant.clamp_weights(
        {"binary": {"kernel": True}, "first": {"kernel": False}}))
    grads = jax.tree.map(lambda _: -u, params)
    updates, _ = opt.update(grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(new["binary"]["kernel"], np.clip(np.asarray(w + u), -1, 1))
    assert float(jnp.max(jnp.abs(new["binary"]["kernel"]))) <= 1.0
    np.testing.assert_array_equal(new["first"]["kernel"], w + u)
    with pytest.raises(ValueError, match="needs params"):
        opt.update(grads, opt.init(params))
