"""int8 residuals: the custom-VJP quantized conv has the float-residual layer's values and weight
gradient, its input gradient differs only where a code cannot tell a saturated input apart, and
what the forward pass keeps for the backward pass is int8 where it should be."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug import quant
from jaxaug.models import CUNet, create_pose_model

# 6-bit features on [-1, 1] (steps of 1/32, codes -31..31), binary-alpha weights, 6-bit E and G.
SPEC = quant.QuantSpec(6, "binary_alpha", 6)
SPEC_INT8 = dataclasses.replace(SPEC, int8_residuals=True)


@jax.jit
def _conv_grads(params, x):
    """(loss, (kernel gradient, input gradient)) of the float- and the int8-residual layer."""
    def loss(params, x, spec):
        layer = quant.QuantConv(features=4, kernel_size=3, spec=spec, use_bias=False)
        return jnp.sum(jnp.sin(3.0 * layer.apply({"params": params}, x)))

    return [jax.value_and_grad(loss, argnums=(0, 1))(params, x, spec)
            for spec in (SPEC, SPEC_INT8)]


def test_int8_residual_conv_equals_the_float_residual_layer():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    # Inputs at the clip limit 1 - 1/32 = 31/32 and in the half step below it pass WAGE's STE, but
    # round to the saturated code 31, which the int8 layer treats as saturated.
    x[0, 0, 0] = [31 / 32, 30.6 / 32, -30.7 / 32]
    params = {"kernel": 0.3 * rng.normal(size=(3, 3, 3, 4)).astype(np.float32)}
    (value, (gp, gx)), (value8, (gp8, gx8)) = jax.device_get(_conv_grads(params, x))
    assert value8 == value
    np.testing.assert_array_equal(gp8["kernel"], gp["kernel"])
    in_band = (np.abs(x) * 32 >= 30.5) & (np.abs(x) <= 31 / 32)
    assert in_band.sum() >= 3
    np.testing.assert_array_equal(np.where(in_band, 0.0, gx8), np.where(in_band, 0.0, gx))
    assert np.all(gx8[0, 0, 0] == 0) and np.all(gx[0, 0, 0] != 0)
    # The int8 layer passes gradient exactly where the code is not saturated (|x| < 30.5 / 32).
    inside = np.abs(x) * 32 < 30.5
    assert np.all((gx8 != 0) <= inside) and np.mean(gx8[inside] != 0) > 0.9


def test_int8_residual_setting_names():
    assert quant.get_spec("818+int8") == dataclasses.replace(quant.SETTINGS["818"],
                                                             int8_residuals=True)
    with pytest.raises(ValueError, match="'bw\\+int8'.*int8_residuals needs feature_bits"):
        quant.get_spec("bw+int8")
    with pytest.raises(ValueError, match="unknown quantization setting '717\\+int8'"):
        quant.get_spec("717+int8")
    with pytest.raises(ValueError, match="QuantSpec.int8_residuals.*got 12"):
        quant.QuantSpec(12, int8_residuals=True)


def _residuals(fn, *args):
    """The arrays the forward pass of ``fn`` keeps for its backward pass (shapes only)."""
    return jax.tree.leaves(jax.eval_shape(lambda *a: jax.vjp(fn, *a)[1], *args))


def test_conv_keeps_int8_codes_instead_of_its_float_input():
    x = jnp.zeros((2, 8, 8, 5))

    def kept(spec):
        layer = quant.QuantConv(features=4, kernel_size=3, spec=spec, use_bias=False)
        params = jax.eval_shape(layer.init, jax.random.key(0), x)["params"]
        return {(r.dtype.name, r.shape) for r in _residuals(
            lambda p: layer.apply({"params": p}, x), params)}

    assert ("float32", x.shape) in kept(SPEC) and ("int8", x.shape) not in kept(SPEC)
    assert ("int8", x.shape) in kept(SPEC_INT8) and ("float32", x.shape) not in kept(SPEC_INT8)


TINY_CUNET = {"num_joints": 3, "num_unets": 2, "depth": 1, "features": 8, "growth": 4,
              "stem_stride": 2}
IMAGES = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)


@functools.cache
def _tiny_variables():
    """Shapes of the tiny CU-Net's variables, which every quant and memory_efficient mode shares."""
    return jax.eval_shape(functools.partial(CUNet(**TINY_CUNET).init, train=False),
                          jax.random.key(0), IMAGES)


def _cunet_residuals(memory_efficient, quant_setting):
    model = CUNet(**TINY_CUNET, quant=quant_setting, memory_efficient=memory_efficient)
    variables = _tiny_variables()

    def heatmaps(params, batch_stats):
        return model.apply({"params": params, "batch_stats": batch_stats},
                           jnp.zeros(IMAGES.shape), train=True, mutable=["batch_stats"])[0]

    kernels = [k for path, k in jax.tree_util.tree_leaves_with_path(variables["params"])
               if path[-1].key == "kernel"]
    return _residuals(heatmaps, variables["params"], variables["batch_stats"]), kernels


def test_codes_policy_keeps_one_int8_code_tensor_per_quantized_conv():
    spec = "818+int8"
    codes, kernels = _cunet_residuals("int8_codes", spec)
    remat, _ = _cunet_residuals(True, spec)
    # Every conv but the stem's and the two heads' is quantized and keeps its input as int8 codes,
    # and nothing else of the U-Nets is kept in int8.
    int8 = [r for r in codes if r.dtype == jnp.int8]
    assert len(int8) == len(kernels) - 3
    # The per-unit remat keeps float unit inputs that the U-Net regions recompute from codes.
    nbytes = [sum(r.size * r.dtype.itemsize for r in kept) for kept in (codes, remat)]
    assert nbytes[0] < 0.6 * nbytes[1]
    with pytest.raises(ValueError, match="memory_efficient='int8_codes' needs a quant setting"):
        create_pose_model("cunet", 3, quant="818", memory_efficient="int8_codes")
    with pytest.raises(ValueError, match="memory_efficient must be one of"):
        CUNet(memory_efficient="codes")
