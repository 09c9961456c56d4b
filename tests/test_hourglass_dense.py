"""Stacked hourglass with CU-Net's dense blocks (block="dense"): parameter count against a closed
form, outputs and gradients, occlusion of the skip/bridge features, quantization, field checks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from test_pose_models import assert_cells_zeroed

from jaxaug.models import StackedHourglass, count_params
from jaxaug.models.hourglass import Hourglass


pytestmark = pytest.mark.usefixtures("unoptimized_xla")


C, G, J = 16, 4, 3  # width, growth, joints
# Depth 1 and stem stride 4 keep the compiled model small: 32x32 images give features at 8 and 4.
TINY = {"num_joints": J, "num_stacks": 2, "depth": 1, "features": C, "growth": G,
        "stem_stride": 4, "block": "dense"}
MODEL = StackedHourglass(**TINY)
IMAGES = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))


# Closed form. BN has a scale and a bias per channel; the dense blocks' convs are bias-free, the
# stem conv and the 1x1 linear / head / remap convs have biases.
def _bn_relu_conv(c_in, c_out, k):
    return 2 * c_in + k * k * c_in * c_out


def _dense(c_in, m, n):
    """c_in -> BN-ReLU-Conv1x1 (4n) -> BN-ReLU-Conv3x3 (n); [c_in, n] -> BN-ReLU-Conv1x1 (m)."""
    return (_bn_relu_conv(c_in, 4 * n, 1) + _bn_relu_conv(4 * n, n, 3)
            + _bn_relu_conv(c_in + n, m, 1))


def _dense_hourglass_params(num_stacks, depth, c, n, joints):
    total = 7 * 7 * 3 * (c // 4) + c // 4 + 2 * (c // 4)  # stem conv (with bias), stem BN
    total += _dense(c // 4, c // 2, n) + _dense(c // 2, c // 2, n) + _dense(c // 2, c, n)
    for s in range(num_stacks):
        # depth x (skip, down, up) + bridge, then the module after the hourglass
        total += (3 * depth + 1) * _dense(c, c, n) + _dense(c, c, n)
        total += c * c + c + 2 * c + c * joints + joints  # linear conv, its BN, head
        if s + 1 < num_stacks:
            total += c * c + c + joints * c + c  # feature and heatmap remaps
    return total


@functools.cache
def _abstract_variables(model, size=32):
    """The model's variables, traced only (nothing compiled)."""
    images = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), images)


def _abstract_params(model, size=32):
    return _abstract_variables(model, size)["params"]


def test_param_count_closed_form():
    # By hand for C=16, n=4: dense(4, 8) = 760, dense(8, 8) = 872, dense(8, 16) = 968,
    # dense(16, 16) = 1256; stem 592 + 8 + 760 + 872 + 968 = 3200; a depth-2 stack
    # 8 * 1256 + 256 + 16 + 32 + 48 + 3 = 10403; remaps 256 + 16 + 48 + 16 = 336.
    assert _dense_hourglass_params(2, 2, C, G, J) == 3200 + 2 * 10403 + 336
    for model in (MODEL, StackedHourglass(**{**TINY, "depth": 2})):
        assert (count_params(_abstract_params(model))
                == _dense_hourglass_params(2, model.depth, C, G, J))
    model = StackedHourglass(num_joints=5, num_stacks=1, depth=1, features=32, growth=8,
                             stem_stride=2, block="dense")
    assert count_params(_abstract_params(model)) == _dense_hourglass_params(1, 1, 32, 8, 5)
    # Every former Residual is a dense block (no unit/shortcut convs left), under the same names.
    params = _abstract_params(MODEL)
    assert set(params["stem_residual1"]) == {"bottleneck", "conv3x3", "neck0"}
    assert set(params["hourglass0"]) == {"skip0", "down0", "bridge", "up0"}
    assert set(params["hourglass1"]["bridge"]) == {"bottleneck", "conv3x3", "neck0"}
    assert params["residual1"]["neck0"]["conv"]["kernel"].shape == (1, 1, C + G, C)
    assert params["stem_residual1"]["bottleneck"]["conv"]["kernel"].shape == (1, 1, C // 4, 4 * G)


@functools.cache
def _variables():
    """MODEL's variables filled with numpy instead of compiling its init (random initializers
    compile slowly on CPU): Kaiming-normal kernels (the heads too: zero heads, as init gives, would
    stop every gradient below them), BN scales and running variances 1, biases and means 0."""
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        if path[-1] == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.normal(0, np.sqrt(2 / fan_in), leaf.shape), leaf.dtype)
        return jnp.full(leaf.shape, 1 if path[-1] in ("scale", "var") else 0, leaf.dtype)

    flat = traverse_util.flatten_dict(_abstract_variables(MODEL))
    return traverse_util.unflatten_dict({path: fill(path, leaf) for path, leaf in flat.items()})


def test_outputs_and_gradients():
    variables = _variables()
    targets = jax.random.uniform(jax.random.key(2), (2, 2, 8, 8, J))

    def loss(params):
        heatmaps, _ = MODEL.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                  IMAGES, train=True, mutable=["batch_stats"])
        return jnp.mean((heatmaps - targets) ** 2), heatmaps

    (value, heatmaps), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
        variables["params"])
    # [S, N, H/4, W/4, J]
    assert heatmaps.shape == (2, 2, 8, 8, J) and heatmaps.dtype == jnp.float32
    assert np.isfinite(float(value))
    dense_kernels = {path: leaf for path, leaf in traverse_util.flatten_dict(grads).items()
                     if path[-1] == "kernel" and {"bottleneck", "conv3x3", "neck0"} & set(path)}
    # 3 stem modules + per stack (skip, down, bridge, up, post) = 13 blocks of 3 convs.
    assert len(dense_kernels) == 3 * (3 + 2 * 5)
    for path, grad in dense_kernels.items():
        assert np.all(np.isfinite(grad)), path
        assert float(jnp.max(jnp.abs(grad))) > 0, path


@jax.jit
def _apply(variables, occlusion):
    """(heatmaps, first-stack features, [every stack's features]) in evaluation mode."""
    (maps, features), state = MODEL.apply(
        variables, IMAGES, train=False, occlusion=occlusion, return_features=True,
        capture_intermediates=lambda module, _: isinstance(module, Hourglass),
        mutable=["intermediates"])
    calls = [outputs for module in state["intermediates"].values()
             for outputs in module["__call__"]]
    return maps, features, [outputs[-1] for outputs in calls]


def test_occlusion():
    variables = _variables()
    ones = jnp.ones((2, 4, 4))
    # An all-ones mask stands for no occlusion (one compiled program; that it equals
    # occlusion=None is the shared `occlude`, tested with the residual hourglass).
    maps, features, stacks = _apply(variables, ones)
    # Features of the first stack: the skip at 8x8, then the bridge at 4x4.
    assert [f.shape[1:] for f in features] == [(8, 8, C), (4, 4, C)]
    assert len(stacks) == 2 and all(jnp.array_equal(a, b) for a, b in zip(features, stacks[0]))
    mask = ones.at[0, 1, 2].set(0.0).at[1, 3, 0].set(0.0)
    maps_masked, features_masked, stacks_masked = _apply(variables, mask)
    assert float(jnp.max(jnp.abs(maps_masked - maps))) > 1e-3
    assert_cells_zeroed(mask, features, features_masked, stacks, stacks_masked)


def test_quant_and_bfloat16_shapes():
    """Traced only: with quant every dense conv is quantized (the stem's 7x7 conv and the heads are
    not); bfloat16 keeps float32 heatmaps and bfloat16 features."""
    model = StackedHourglass(**TINY, quant="bw")
    apply = functools.partial(model.apply, train=False, mutable=["quantized"])
    variables = _abstract_variables(model)
    params = variables["params"]
    _, state = jax.eval_shape(apply, variables, IMAGES)
    sown = {path[:-1] for path in traverse_util.flatten_dict(state["quantized"])}
    convs = {path[:-1] for path, _ in traverse_util.flatten_dict(params).items()
             if path[-1] == "kernel"}
    assert sown == convs - {("stem_conv",), ("head0",), ("head1",)}
    model = StackedHourglass(**TINY, dtype="bfloat16")
    maps, features = jax.eval_shape(
        functools.partial(model.apply, train=False, return_features=True),
        _abstract_variables(model), IMAGES)
    assert maps.dtype == jnp.float32 and all(f.dtype == jnp.bfloat16 for f in features)


@pytest.mark.parametrize("kwargs", [{"block": "densenet"}, {"block": None}, {"block": ["dense"]}])
def test_rejects_bad_block(kwargs):
    with pytest.raises(ValueError, match=r"block must be one of \('residual', 'dense'\)"):
        StackedHourglass(**{**TINY, **kwargs})


def test_rejects_bad_growth():
    with pytest.raises(ValueError, match="growth"):
        StackedHourglass(**{**TINY, "growth": 0})
