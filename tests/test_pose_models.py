"""Pose models (CU-Net, stacked hourglass): parameter counts against closed forms, order-K coupling
widths, remat equality of values and gradients, quantized-layer placement, occlusion, factory."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxaug import models
from jaxaug.models import CUNet, StackedHourglass, count_params, create_pose_model
from jaxaug.models.cunet import RefineBlock, UNet
from jaxaug.models.hourglass import Hourglass

pytestmark = pytest.mark.usefixtures("unoptimized_xla")

M, N, J = 8, 4, 3  # tiny CU-Net block width m, growth n, joints
# Depth 1 keeps the compiled models small; the parameter-count tests, which compile nothing, use
# larger ones.
TINY_CUNET = {"num_joints": J, "num_unets": 2, "order": 1, "depth": 1, "features": M,
              "growth": N, "stem_stride": 2, "refine_growth": N}
TINY_HOURGLASS = {"num_joints": J, "num_stacks": 2, "depth": 1, "features": 16, "stem_stride": 2}
IMAGES = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
# Compiling dominates on CPU, so the tests share two initializations: "cunet" (with one refinement
# iteration) and "hourglass". The other CU-Nets have the same parameter tree, or that tree minus the
# refinement block and the second iteration's BatchNorms for the "single" (no refinement) ones.
MODELS = {
    "cunet": CUNet(**TINY_CUNET, refine_iterations=1),
    "cunet_single": CUNet(**TINY_CUNET),
    "cunet_single_remat": CUNet(**TINY_CUNET, memory_efficient=True),
    "cunet_single_bw": CUNet(**TINY_CUNET, quant="bw"),
    "cunet_single_bf16": CUNet(**TINY_CUNET, dtype="bfloat16"),
    "hourglass": StackedHourglass(**TINY_HOURGLASS),
    "hourglass_bw": StackedHourglass(**TINY_HOURGLASS, quant="bw"),
}


def _random_heads(params, key):
    """The heads start at zero (see cunet.HEAD_INIT); give them random kernels so that the
    heatmaps depend on the features in these tests."""
    def fill(path, leaf):
        is_head = any(getattr(p, "key", "").startswith("head") for p in path)
        return 0.1 * jax.random.normal(jax.random.fold_in(key, leaf.size), leaf.shape) if (
            is_head and path[-1].key == "kernel") else leaf
    return jax.tree_util.tree_map_with_path(fill, params)


def test_heads_start_at_zero():
    # Every output, the refinement iteration's too (its input adapter sees zero heatmaps).
    heatmaps, _, _ = _apply("cunet")(_init("cunet"), IMAGES)
    assert heatmaps.shape[0] == 4 and float(jnp.max(jnp.abs(heatmaps))) == 0.0


@functools.cache
def _init(name):
    return jax.jit(functools.partial(MODELS[name].init, train=False))(jax.random.key(0), IMAGES)


@functools.cache
def _variables(name):
    if name in ("cunet", "hourglass"):
        variables = _init(name)
        return {**variables, "params": _random_heads(variables["params"], jax.random.key(1))}
    if name.startswith("cunet_single"):
        return {k: traverse_util.unflatten_dict({
                    path: v for path, v in traverse_util.flatten_dict(tree).items()
                    if path[0] != "refine" and not any(p.startswith("bn_iter") for p in path)})
                for k, tree in _variables("cunet").items()}
    return _variables(name.split("_")[0])


@functools.cache
def _apply_all(name):
    """Evaluation-mode apply returning (heatmaps, first-stack features, [every stack's features],
    intermediates), the stacks' features captured from the outputs of the U-Net / hourglass
    modules; the intermediates also hold the outputs of the refinement block, the stem's BN and
    the adapter inter1."""
    stack = UNet if name.startswith("cunet") else Hourglass

    def capture(module, _):
        return isinstance(module, (stack, RefineBlock)) or module.name in ("stem_bn", "inter1")

    def apply(variables, images, occlusion=None):
        (maps, features), state = MODELS[name].apply(
            variables, images, train=False, occlusion=occlusion, return_features=True,
            capture_intermediates=capture, mutable=["intermediates"])
        calls = [outputs for key, module in state["intermediates"].items()
                 if key.startswith(("unet", "hourglass")) for outputs in module["__call__"]]
        return maps, features, [outputs[-1] for outputs in calls], state["intermediates"]

    return jax.jit(apply)


def _apply(name):
    """`_apply_all` without the intermediates (the same compiled program)."""
    return lambda *args, **kwargs: _apply_all(name)(*args, **kwargs)[:3]


def _abstract_params(model, size=32):
    images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    init = functools.partial(model.init, train=False)
    return jax.eval_shape(init, jax.random.key(0), images)["params"]


@functools.cache
def _cunet_shapes(order, refine):
    """Parameter shapes of a depth-2 CU-Net with three U-Nets (traced, nothing compiled)."""
    return _abstract_params(CUNet(**{**TINY_CUNET, "depth": 2, "num_unets": 3, "order": order,
                                     "refine_iterations": refine}))


# Closed forms. BN has a scale and a bias per channel; the CU-Net's convs are bias-free, the
# hourglass's have biases. bn_only counts the BatchNorms alone.
def _bn_relu_conv(c_in, c_out, k, bias=False, bn_only=False):
    return 2 * c_in + (0 if bn_only else k * k * c_in * c_out + (c_out if bias else 0))


def _dense_block(c_in, m, n, outputs, bn_only=False):
    return (_bn_relu_conv(c_in, 4 * n, 1, bn_only=bn_only)
            + _bn_relu_conv(4 * n, n, 3, bn_only=bn_only)
            + outputs * _bn_relu_conv(c_in + n, m, 1, bn_only=bn_only))


def _chain(num_unets, order, depth, m, n, joints, bn_only=False):
    """The U-Nets, their input adapters and heads: what each refinement iteration runs."""
    total = 0
    for u in range(num_unets):
        coupled = min(u, order) * n
        total += depth * _dense_block(m + coupled, m, n, 2, bn_only)  # down: output and skip
        total += _dense_block(m + coupled, m, n, 1, bn_only)  # neck
        total += depth * _dense_block(2 * m + coupled, m, n, 1, bn_only)  # up blocks
        total += _bn_relu_conv(m, joints, 1, bn_only=bn_only)  # head
        if u:  # input adapter over [previous output, previous min(u, K) inputs]
            total += _bn_relu_conv(m * (1 + min(u, order)), m, 1, bn_only=bn_only)
    return total


def _refine_block(m, g, bn_only=False):
    """Tang thesis, sec. 5.3.4: 4 dense Conv3x3 layers of g channels over the 2m channels of the
    first and last U-Nets' inputs, then Conv1x1 of the 2m + 4g channels to m."""
    return (sum(_bn_relu_conv(2 * m + i * g, g, 3, bn_only=bn_only) for i in range(4))
            + _bn_relu_conv(2 * m + 4 * g, m, 1, bn_only=bn_only))


def _cunet_params(num_unets, order, depth, m, n, joints, refine, g=N, bn_only=False):
    """Kernels are shared by the refinement iterations, every BatchNorm but the stem's is not."""
    stem = 2 * m + (0 if bn_only else 7 * 7 * 3 * m)
    chain = _chain(num_unets, order, depth, m, n, joints, bn_only)
    total = stem + chain + refine * _chain(num_unets, order, depth, m, n, joints, bn_only=True)
    if refine:
        total += _refine_block(m, g, bn_only) + (refine - 1) * _refine_block(m, g, bn_only=True)
    return total


def _cunet_kernels(*args, **kwargs):
    return _cunet_params(*args, **kwargs) - _cunet_params(*args, **kwargs, bn_only=True)


def _residual(c_in, c):
    shortcut = c_in * c + c if c_in != c else 0
    return (_bn_relu_conv(c_in, c // 2, 1, True) + _bn_relu_conv(c // 2, c // 2, 3, True)
            + _bn_relu_conv(c // 2, c, 1, True) + shortcut)


def _hourglass_params(num_stacks, depth, c, joints):
    total = 7 * 7 * 3 * (c // 4) + c // 4 + 2 * (c // 4)  # stem conv (with bias), stem BN
    total += _residual(c // 4, c // 2) + _residual(c // 2, c // 2) + _residual(c // 2, c)
    for s in range(num_stacks):
        total += (3 * depth + 1) * _residual(c, c) + _residual(c, c)
        total += c * c + c + 2 * c + c * joints + joints  # linear conv, its BN, head
        if s + 1 < num_stacks:
            total += c * c + c + joints * c + c  # feature and heatmap remaps
    return total


@pytest.mark.parametrize("order, refine", [(0, 0), (1, 0), (2, 0), (2, 2)])
def test_cunet_param_count_closed_form(order, refine):
    expected = _cunet_params(3, order, 2, M, N, J, refine)
    assert count_params(_cunet_shapes(order, refine)) == expected


def test_refinement_adds_the_thesis_0_2m_parameters():
    """Tang thesis, tables 5.6 / 5.7 (300-W, 68 landmarks): order-1 CU-Net-4 has 3.9 M parameters,
    with iterative refinement 4.1 M. The closed form checked against the model above gives, at
    m = 128, n = 32, depth 4, the conv kernels (the thesis's count: with BN, CU-Net-4 would be
    3.98 M, "4.0 M") 3.928 M -> 4.131 M: the refinement block's kernels add 0.202 M with
    g = 16 new channels per dense layer. g = 32, the U-Nets' growth, would add 0.40 M (4.3 M)."""
    cunet4 = functools.partial(_cunet_kernels, 4, 1, 4, 128, 32, 68)
    base, refined = cunet4(0), cunet4(1, g=16)
    bn = functools.partial(_cunet_params, 4, 1, 4, 128, 32, 68, g=16, bn_only=True)
    print(f"CU-Net-4 kernels {base / 1e6:.3f} M, refined {refined / 1e6:.3f} M, "
          f"+{(refined - base) / 1e6:.3f} M; BatchNorm +{(bn(1) - bn(0)) / 1e6:.3f} M")
    assert refined - base == 9 * 16 * (256 + 272 + 288 + 304) + 320 * 128 == 202_240
    assert (round(base / 1e6, 1), round(refined / 1e6, 1)) == (3.9, 4.1)
    assert round(cunet4(1, g=32) / 1e6, 1) == 4.3
    assert CUNet().refine_growth == 16


@pytest.mark.slow
def test_refined_cunet_4_matches_the_closed_form():
    """The thesis-sized model itself (traced, not compiled): slow for its tracing; the fast
    counterpart is the closed form checked on small models above."""
    params = _abstract_params(CUNet(num_joints=68, num_unets=4, refine_iterations=1), 64)
    assert count_params(params) == _cunet_params(4, 1, 4, 128, 32, 68, 1, g=16)


def test_cunet_one_block_and_coupled_widths():
    params = _cunet_shapes(2, 0)
    # U-Net 2, order 2: its down block 1 takes m channels plus the n new features of U-Nets 0, 1.
    block = params["unet2"]["down1"]
    assert count_params(block) == _dense_block(M + 2 * N, M, N, 2)
    assert block["bottleneck"]["conv"]["kernel"].shape == (1, 1, M + 2 * N, 4 * N)
    assert block["neck0"]["conv"]["kernel"].shape == (1, 1, M + 3 * N, M)
    for u, coupled in enumerate((0, 1, 2)):  # U-Net u couples to min(u, K) predecessors
        assert params[f"unet{u}"]["up0"]["bottleneck"]["conv"]["kernel"].shape[2] == 2 * M + coupled * N
        assert params[f"unet{u}"]["neck"]["bottleneck"]["conv"]["kernel"].shape[2] == M + coupled * N
    assert params["inter1"]["conv"]["kernel"].shape[2] == 2 * M
    assert params["inter2"]["conv"]["kernel"].shape[2] == 3 * M


def test_order_2_adds_the_expected_parameters():
    k1, k2 = count_params(_cunet_shapes(1, 0)), count_params(_cunet_shapes(2, 0))
    # Only U-Net 2 gains n more input channels in its 2d + 1 blocks and m more in its adapter.
    blocks_extra = sum(
        _dense_block(c + 2 * N, M, N, outputs) - _dense_block(c + N, M, N, outputs)
        for c, outputs in [(M, 2)] * 2 + [(M, 1)] + [(2 * M, 1)] * 2)
    adapter_extra = _bn_relu_conv(3 * M, M, 1) - _bn_relu_conv(2 * M, M, 1)
    assert k2 - k1 == blocks_extra + adapter_extra


def test_cunet_outputs_and_refinement_shares_parameters():
    variables = _variables("cunet")
    heatmaps, _, _, inter = _apply_all("cunet")(variables, IMAGES)
    assert heatmaps.shape == (4, 2, 16, 16, J) and heatmaps.dtype == jnp.float32
    # The first iteration is the plain CU-Net with the same parameters (the refinement adds its
    # block and the second iteration's BatchNorms), and the second one does refine.
    first, _, _ = _apply("cunet_single")(_variables("cunet_single"), IMAGES)
    np.testing.assert_allclose(heatmaps[:2], first, rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(heatmaps[2:] - heatmaps[:2]))) > 1e-3
    # The refinement block reads the inputs of the first U-Net (the stem's BN-ReLU output) and of
    # the last one (adapter inter1's output in the first iteration), in that order.
    first_input = jax.nn.relu(inter["stem_bn"]["__call__"][0])
    last_input = inter["inter1"]["__call__"][0]
    block = RefineBlock(M, N, train=False, spec=None, memory_efficient=False, dtype=jnp.float32)
    expected = jax.jit(block.apply)({k: v["refine"] for k, v in variables.items()},
                                    [first_input, last_input])
    np.testing.assert_allclose(inter["refine"]["__call__"][0], expected, rtol=1e-5, atol=1e-6)
    # Each iteration has its own BatchNorm: moving the second's bias leaves the first unchanged.
    params = traverse_util.flatten_dict(variables["params"])
    bias = ("unet0", "down0", "bottleneck", "bn_iter1", "bias")
    params[bias] = params[bias] + 1.0
    moved, _, _ = _apply("cunet")({**variables, "params": traverse_util.unflatten_dict(params)},
                                  IMAGES)
    np.testing.assert_array_equal(moved[:2], heatmaps[:2])
    assert float(jnp.max(jnp.abs(moved[2:] - heatmaps[2:]))) > 1e-3


def _assert_trees_close(actual, desired):
    """allclose at rtol 1e-5 and atol 1e-5 times the largest magnitude in ``desired``: the plain
    and remat programs fuse differently, so sums run in different orders, and a value that cancels
    to near zero keeps rounding errors of the size of the terms it sums (e.g. the stem BN scale's
    gradient is exactly 0, as every consumer of the stem is a BN in training mode)."""
    scale = max(float(np.max(np.abs(leaf))) for leaf in jax.tree.leaves(desired))
    jax.tree.map(lambda a, d: np.testing.assert_allclose(a, d, rtol=1e-5, atol=1e-5 * scale),
                 actual, desired)


def test_memory_efficient_matches_plain_values_and_gradients():
    variables = _variables("cunet_single")
    targets = jax.random.uniform(jax.random.key(2), (2, 2, 16, 16, J))

    def loss(name, params):
        heatmaps, state = MODELS[name].apply(
            {"params": params, "batch_stats": variables["batch_stats"]}, IMAGES, train=True,
            mutable=["batch_stats"])
        return jnp.mean((heatmaps - targets) ** 2), (heatmaps, state)

    # The remat model initializes the same parameter tree (and the plain model's parameters then
    # serve both).
    remat_params = jax.eval_shape(functools.partial(MODELS["cunet_single_remat"].init, train=False),
                                  jax.random.key(0), IMAGES)["params"]
    assert (jax.tree.map(jnp.shape, remat_params)
            == jax.tree.map(jnp.shape, variables["params"]))
    results = []
    for name, barriers in (("cunet_single", False), ("cunet_single_remat", True)):
        grad_fn = jax.value_and_grad(functools.partial(loss, name), has_aux=True)
        lowered = jax.jit(grad_fn).lower(variables["params"])
        # jax.checkpoint keeps its recomputation apart with optimization barriers.
        assert ("optimization_barrier" in lowered.as_text()) == barriers
        results.append(lowered.compile()(variables["params"]))
    (loss_p, (maps_p, state_p)), grads_p = results[0]
    (loss_r, (maps_r, state_r)), grads_r = results[1]
    for actual, desired in [(loss_r, loss_p), (maps_r, maps_p), (state_r, state_p),
                            (grads_r, grads_p)]:
        _assert_trees_close(actual, desired)
    assert float(jnp.max(jnp.abs(grads_p["unet1"]["down0"]["bottleneck"]["conv"]["kernel"]))) > 0


def _sown_and_conv_layers(name):
    variables = _variables(name)
    apply = functools.partial(MODELS[name].apply, train=False, mutable=["quantized"])
    _, state = jax.jit(apply)(variables, IMAGES)
    sown = traverse_util.flatten_dict(state["quantized"])
    for path, (codes,) in sown.items():
        assert set(np.unique(codes)) <= {-1, 1}, path
    convs = {path[:-1] for path, leaf in traverse_util.flatten_dict(variables["params"]).items()
             if path[-1] == "kernel"}
    return {path[:-1] for path in sown}, convs


@pytest.mark.parametrize("name, full_precision", [
    ("cunet_single_bw", {("stem_conv",), ("head0", "conv"), ("head1", "conv")}),
    ("hourglass_bw", {("stem_conv",), ("head0",), ("head1",)}),
])
def test_quantized_variant_keeps_first_and_last_layers_full_precision(name, full_precision):
    sown_layers, convs = _sown_and_conv_layers(name)
    assert full_precision <= convs
    assert sown_layers == convs - full_precision


@pytest.mark.parametrize("name", ["cunet_single", "hourglass"])
def test_occlusion(name):
    apply, variables = _apply(name), _variables(name)
    ones = jnp.ones((2, 4, 4))
    maps, features, stacks = apply(variables, IMAGES)
    maps_ones, _, _ = apply(variables, IMAGES, occlusion=ones)
    np.testing.assert_allclose(maps_ones, maps, rtol=1e-6, atol=1e-6)
    # Features of the first stack, highest resolution first: skips at 16, ..., then the bridge.
    assert [f.shape[1] for f in features] == [16 >> level for level in range(MODELS[name].depth + 1)]
    assert len(stacks) == 2 and all(jnp.array_equal(a, b) for a, b in zip(features, stacks[0]))
    mask = ones.at[0, 1, 2].set(0.0).at[1, 3, 0].set(0.0)
    maps_masked, features_masked, stacks_masked = apply(variables, IMAGES, occlusion=mask)
    assert float(jnp.max(jnp.abs(maps_masked - maps))) > 1e-3
    assert_cells_zeroed(mask, features, features_masked, stacks, stacks_masked)


def assert_cells_zeroed(mask, features, features_masked, stacks, stacks_masked):
    """The mask zeroing cells (0, 1, 2) and (1, 3, 0) of a 4x4 grid acts on every resolution of
    the first stack's features exactly, and zeroes those cells in the second stack too."""
    for plain, masked in zip(features, features_masked):
        r = plain.shape[1] // 4
        upsampled = np.kron(np.asarray(mask), np.ones((r, r)))[..., None]
        # The first stack computes its skips before any mask acts, so masking only zeroes cells.
        np.testing.assert_allclose(masked, plain * upsampled, rtol=1e-6, atol=1e-6)
        assert float(jnp.max(jnp.abs(masked))) > 0
    for plain, masked in zip(stacks[1], stacks_masked[1]):  # the second stack is masked too
        r = masked.shape[1] // 4
        cells = (np.s_[0, r:2 * r, 2 * r:3 * r], np.s_[1, 3 * r:, :r])
        assert all(np.all(np.asarray(masked)[cell] == 0) for cell in cells)
        assert all(np.any(np.asarray(plain)[cell] != 0) for cell in cells)


def test_hourglass_param_count_and_outputs():
    assert (count_params(_abstract_params(MODELS["hourglass"]))
            == _hourglass_params(2, TINY_HOURGLASS["depth"], 16, J))
    assert (count_params(_abstract_params(StackedHourglass(num_stacks=3, features=32), 64))
            == _hourglass_params(3, 4, 32, 16))
    heatmaps, _, _ = _apply("hourglass")(_variables("hourglass"), IMAGES)
    assert heatmaps.shape == (2, 2, 16, 16, J) and heatmaps.dtype == jnp.float32


def test_bfloat16_cunet_close_to_float32():
    variables = _variables("cunet_single")
    maps16, features16, _ = _apply("cunet_single_bf16")(variables, IMAGES)
    maps32, _, _ = _apply("cunet_single")(variables, IMAGES)
    assert maps16.dtype == jnp.float32 and features16[0].dtype == jnp.bfloat16
    assert float(jnp.max(jnp.abs(maps16 - maps32))) <= 0.05 * float(jnp.max(jnp.abs(maps32)))


def test_factory():
    assert models.create_pose_model is create_pose_model
    cunet = create_pose_model("cunet", 5, num_unets=2)
    assert isinstance(cunet, CUNet) and (cunet.num_joints, cunet.num_unets) == (5, 2)
    assert isinstance(create_pose_model("hourglass", 5), StackedHourglass)
    with pytest.raises(ValueError, match="'unet'.*cunet, hourglass"):
        create_pose_model("unet", 5)
    with pytest.raises(ValueError, match="num_stacks"):
        create_pose_model("cunet", 5, num_stacks=2)


@pytest.mark.parametrize("kwargs, match", [
    ({"order": 2}, "order"),
    ({"stem_stride": 3}, "stem_stride"),
    ({"quant": "x"}, "quant"),
    ({"depth": 0}, "depth"),
    ({"growth": 0}, "growth"),
    ({"refine_iterations": -1}, "refine_iterations"),
    ({"num_joints": 1.5}, "num_joints"),
    ({"dtype": jnp.float16}, "dtype"),
    ({"dtype": "nonsense"}, "dtype"),
])
def test_cunet_rejects_bad_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CUNet(**{**TINY_CUNET, **kwargs})


def test_hourglass_rejects_bad_fields():
    with pytest.raises(ValueError, match="features"):
        StackedHourglass(features=18)
    with pytest.raises(ValueError, match="num_stacks"):
        StackedHourglass(num_stacks=0)


@pytest.mark.parametrize("images, occlusion, match", [
    (jnp.zeros((32, 32, 3)), None, "images"),
    (jnp.zeros((1, 34, 32, 3)), None, "images"),
    (jnp.zeros((2, 32, 32, 3)), jnp.ones((1, 4, 4)), "occlusion"),
    (jnp.zeros((2, 32, 32, 3)), jnp.ones((2, 4, 4, 1)), "occlusion"),
    (jnp.zeros((2, 32, 32, 3)), jnp.ones((2, 3, 3)), "occlusion"),
])
@pytest.mark.parametrize("model", [CUNet(**TINY_CUNET), StackedHourglass(**TINY_HOURGLASS)])
def test_rejects_bad_inputs(model, images, occlusion, match):
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(functools.partial(model.init, train=False, occlusion=occlusion),
                       jax.random.key(0), images)


def test_reference_init_is_the_official_codes():
    """initialization="reference": every conv kernel (stem and heads too) uniform on
    +-1/sqrt(fan_in), every BatchNorm gamma uniform on [0, 1), in full precision (init jitted once:
    eval_shape would not draw the values)."""
    model = CUNet(**TINY_CUNET, refine_iterations=1, initialization="reference")
    variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), IMAGES)
    flat = traverse_util.flatten_dict(variables["params"])
    kernels = {k: np.asarray(v) for k, v in flat.items() if k[-1] == "kernel"}
    scales = [np.asarray(v) for k, v in flat.items() if k[-1] == "scale"]
    assert any(k[0].startswith("head") for k in kernels) and ("stem_conv", "kernel") in kernels
    pooled = []
    for path, kernel in kernels.items():
        bound = 1 / np.sqrt(np.prod(kernel.shape[:-1]))
        assert np.abs(kernel).max() <= bound, path
        pooled.append(kernel.ravel() / bound)
    pooled = np.concatenate(pooled)  # U(-1, 1): std 1/sqrt(3)
    np.testing.assert_allclose(pooled.std(), 1 / np.sqrt(3), rtol=0.05)
    assert all(0 <= s.min() and s.max() < 1 for s in scales) and np.concatenate(scales).std() > 0.2
    with pytest.raises(ValueError, match="initialization must be one of"):
        CUNet(**TINY_CUNET, initialization="torch")
