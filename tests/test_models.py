"""Target networks: architecture (parameter counts, shapes), bn_set routing, shake-shake, bf16, create()."""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyMultiBNNet, numpy_variables

from jaxaug import models
from jaxaug.models.resnet import BasicBlock, Bottleneck
from jaxaug.models.shake_shake import ShakeBranch, ShakeShakeBlock, ShakeShortcut
from jaxaug.models.wide_resnet import WideBasicBlock


@functools.cache
def _init(name):
    """A 2-BN-set model and its real initial variables, compiled once per name (compiling dominates
    these tests on CPU); no variable depends on the image size."""
    model = models.create(name, num_bn_sets=2)
    init = jax.jit(functools.partial(model.init, train=False))
    return model, init(jax.random.key(0), jnp.zeros((2, 8, 8, 3)))


@functools.cache
def _abstract_variables(model, image_size):
    """Variable shapes from init without materializing anything (tracing a large model takes
    a while, so shared by the tests that ask for the same model and size)."""
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), images)


@functools.cache
def _random_variables(name):
    """A 2-BN-set model and random variables from numpy: sane values without compiling an init."""
    model = models.create(name, num_bn_sets=2)
    return model, numpy_variables(_abstract_variables(model, 8))


def _bn_affine_params(params):
    """Number of MultiBatchNorm scale/bias scalars (the only 2-D 'scale'/'bias' leaves)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(
        leaf.size for path, leaf in leaves if path[-1].key in ("scale", "bias") and leaf.ndim == 2
    )


# Reference counts: WRN from the PyTorch reference (36.5M for WRN-28-10), ResNets from torchvision,
# Shake-Shake computed from the architecture (Gastaldi 2017 / AutoAugment report 2.9M).
PARAM_COUNTS = [
    ("wrn-28-10", 10, 32, 36_479_194),
    ("wrn-28-2", 10, 32, 1_467_610),
    ("wrn-40-2", 10, 32, 2_243_546),
    ("shake-shake-26-2x32d", 10, 32, 2_923_162),
    ("shake-shake-26-2x96d", 10, 32, 26_192_922),
    ("resnet-18", 1000, 224, 11_689_512),
    ("resnet-34", 1000, 224, 21_797_672),
    ("resnet-50", 1000, 224, 25_557_032),
]


@pytest.mark.parametrize("name, num_classes, image_size, expected", PARAM_COUNTS)
def test_parameter_count_matches_reference(name, num_classes, image_size, expected):
    variables = _abstract_variables(models.create(name, num_classes=num_classes), image_size)
    assert models.count_params(variables["params"]) == expected


@pytest.mark.parametrize("name, num_classes, image_size, _", PARAM_COUNTS[::3])
def test_extra_bn_set_adds_exactly_the_bn_affine_params(name, num_classes, image_size, _):
    one = _abstract_variables(models.create(name, num_classes=num_classes), image_size)["params"]
    two = _abstract_variables(models.create(name, num_classes=num_classes, num_bn_sets=2), image_size)
    bn_affine = _bn_affine_params(one)
    assert bn_affine > 0
    assert models.count_params(two["params"]) == models.count_params(one) + bn_affine
    assert models.count_params(two["batch_stats"]) == 2 * bn_affine  # mean and var per set


def test_wrn_28_10_bn_affine_count_by_hand():
    # 2·C per BN: group g has 4 blocks of (bn1, bn2), the first block's bn1 seeing the input width.
    per_group = [(16, 160), (160, 320), (320, 640)]
    expected = sum(2 * (c_in + c) + 3 * 2 * (c + c) for c_in, c in per_group) + 2 * 640
    assert expected == 17_952
    variables = _abstract_variables(models.create("wrn-28-10", num_bn_sets=2), 32)
    assert models.count_params(variables["params"]) == 36_479_194 + 17_952


@pytest.mark.parametrize(
    "name, image_size, last_block, shape",
    [
        ("wrn-28-10", 32, "group3_block4", (1, 8, 8, 640)),
        ("shake-shake-26-2x32d", 32, "stage3_block4", (1, 8, 8, 128)),
        ("resnet-18", 224, "stage4_block2", (1, 7, 7, 512)),
        ("resnet-50", 224, "stage4_block3", (1, 7, 7, 2048)),
    ],
)
def test_last_feature_map_has_reference_resolution(name, image_size, last_block, shape):
    model = models.create(name)
    variables = _abstract_variables(model, image_size)
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    apply = functools.partial(
        model.apply, train=False, capture_intermediates=True, mutable=["intermediates"]
    )
    _, state = jax.eval_shape(apply, variables, images)
    assert state["intermediates"][last_block]["__call__"][0].shape == shape


# ---------------------------------------------------------------------------------------------
# Blocks against a direct transcription of the reference layer order (eval mode, BN set 1 of 2)


def _conv(x, kernel, stride=1):
    pad = (kernel.shape[0] - 1) // 2  # PyTorch's symmetric padding
    return jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), [(pad, pad)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest",
    )


def _reference_block(kind, v, x):
    p, s = v["params"], v["batch_stats"]
    relu = jax.nn.relu

    def conv(y, name, stride=1):
        return _conv(y, p[name]["kernel"], stride)

    def bn(y, name):
        mean, var = s[name]["mean"][1], s[name]["var"][1]
        return (y - mean) / jnp.sqrt(var + 1e-5) * p[name]["scale"][1] + p[name]["bias"][1]

    if kind == "wide":  # the shortcut sees the pre-activated input
        a = relu(bn(x, "bn1"))
        y = conv(relu(bn(conv(a, "conv1", 2), "bn2")), "conv2")
        return conv(a, "shortcut", 2) + y
    if kind == "basic":
        y = bn(conv(relu(bn(conv(x, "conv1", 2), "bn1")), "conv2"), "bn2")
        return relu(bn(conv(x, "downsample_conv", 2), "downsample_bn") + y)
    if kind == "bottleneck":  # v1.5: the stride is on the 3x3 conv
        y = relu(bn(conv(x, "conv1"), "bn1"))
        y = relu(bn(conv(y, "conv2", 2), "bn2"))
        y = bn(conv(y, "conv3"), "bn3")
        return relu(bn(conv(x, "downsample_conv", 2), "downsample_bn") + y)
    if kind == "shake_branch":
        return bn(conv(relu(bn(conv(relu(x), "conv1", 2), "bn1")), "conv2"), "bn2")
    if kind == "shake_shortcut":  # path 2 sees the input shifted up-left by one pixel, zero-filled
        a = relu(x)
        shifted = jnp.zeros_like(a).at[:, :-1, :-1].set(a[:, 1:, 1:])
        both = [conv(a[:, ::2, ::2], "path1_conv"), conv(shifted[:, ::2, ::2], "path2_conv")]
        return bn(jnp.concatenate(both, axis=-1), "bn")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, block",
    [
        pytest.param(kind, block, id=kind)
        for kind, block in [
            ("wide", WideBasicBlock(8, 2, 0.0, 2, jnp.float32)),
            ("basic", BasicBlock(8, 2, 2, jnp.float32)),
            ("bottleneck", Bottleneck(4, 2, 2, jnp.float32)),
            ("shake_branch", ShakeBranch(8, 2, 2, jnp.float32)),
            ("shake_shortcut", ShakeShortcut(8, 2, 2, jnp.float32)),
        ]
    ],
)
def test_block_matches_reference_layer_order(kind, block):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 4)).astype(np.float32)
    shapes = jax.eval_shape(functools.partial(block.init, train=False, bn_set=0), jax.random.key(0), x)
    # Random values everywhere (positive variances), so that no layer can hide behind an identity.
    def fill(path, leaf):
        if path[-1].key == "var":
            return rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
        return rng.normal(size=leaf.shape).astype(np.float32)

    variables = jax.tree_util.tree_map_with_path(fill, shapes)
    # Block and reference in one compile (eagerly, every primitive of the reference compiles).
    out, reference = jax.jit(lambda v, x: (block.apply(v, x, train=False, bn_set=1),
                                           _reference_block(kind, v, x)))(variables, x)
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# bn_set routing through a whole network


def _perturbed_wrn():
    """A tiny 2-set WRN whose two BN sets have different affine params and running stats."""
    model, variables = _init("wrn-10-1")
    rng = np.random.default_rng(0)

    def perturb(path, leaf):
        if leaf.ndim == 2 and path[-1].key in ("scale", "bias", "mean"):
            return leaf + 0.3 * rng.normal(size=leaf.shape).astype(np.float32)
        if path[-1].key == "var":
            return leaf * rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
        return leaf

    return model, jax.tree_util.tree_map_with_path(perturb, variables)


def _close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5), a, b)


def test_tuple_bn_set_equals_separate_calls_in_training():
    model, variables = _perturbed_wrn()
    a, b = jnp.split(jax.random.normal(jax.random.key(2), (8, 8, 8, 3)), 2)

    @functools.partial(jax.jit, static_argnames="bn_set")
    def train_apply(variables, x, bn_set):
        logits, updates = model.apply(variables, x, train=True, bn_set=bn_set, mutable=["batch_stats"])
        return logits, {**variables, **updates}

    logits_ab, after_ab = train_apply(variables, jnp.concatenate([a, b]), (0, 1))
    logits_a, after_a = train_apply(variables, a, 0)
    logits_b, after_b = train_apply(after_a, b, 1)
    _close(logits_ab, jnp.concatenate([logits_a, logits_b]))
    _close(after_ab["batch_stats"], after_b["batch_stats"])
    # The sets really differ, so routing b through set 0 would have been caught.
    logits_b0, _ = train_apply(variables, b, 0)
    assert np.abs(np.asarray(logits_b0 - logits_b)).max() > 1e-2


def test_tuple_bn_set_equals_separate_calls_in_eval():
    model, variables = _perturbed_wrn()
    a, b = jnp.split(jax.random.normal(jax.random.key(3), (8, 8, 8, 3)), 2)
    evaluate = jax.jit(model.apply, static_argnames=("train", "bn_set"))
    logits_ab = evaluate(variables, jnp.concatenate([a, b]), train=False, bn_set=(0, 1))
    logits_a = evaluate(variables, a, train=False, bn_set=0)
    logits_b = evaluate(variables, b, train=False, bn_set=1)
    _close(logits_ab, jnp.concatenate([logits_a, logits_b]))
    assert np.abs(np.asarray(evaluate(variables, b, train=False, bn_set=0) - logits_b)).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# Shake-Shake


def test_shake_shake_combine_forward_uses_alpha_and_gradient_uses_beta():
    keys = jax.random.split(jax.random.key(0), 4)
    b1, b2 = (jax.random.normal(k, (3, 2, 2, 4)) for k in keys[:2])
    alpha, beta = (jax.random.uniform(k, (3, 1, 1, 1)) for k in keys[2:])

    @jax.jit
    def value_and_grads(b1, b2):
        out, vjp = jax.vjp(lambda u, v: models.shake_shake_combine(u, v, alpha, beta), b1, b2)
        return out, vjp(jnp.ones_like(out))

    out, (d_b1, d_b2) = value_and_grads(b1, b2)
    np.testing.assert_allclose(out, alpha * b1 + (1 - alpha) * b2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d_b1, jnp.broadcast_to(beta, b1.shape), rtol=1e-6)
    np.testing.assert_allclose(d_b2, jnp.broadcast_to(1 - beta, b2.shape), rtol=1e-6)


SHAKE_BLOCK = ShakeShakeBlock(features=8, stride=2, num_bn_sets=1, dtype=jnp.float32)


@functools.cache
def _shake_block_variables_and_input():
    """A stride-2, width-changing block's variables (so it has the two-path shortcut) and an input."""
    x = jax.random.normal(jax.random.key(4), (4, 8, 8, 4))
    init = jax.jit(functools.partial(SHAKE_BLOCK.init, train=False, bn_set=0))
    return init(jax.random.key(5), x), x


@functools.partial(jax.jit, static_argnames="train")
def _block_output_and_parts(variables, x, rng, train):
    """The block's output, and its shortcut and branches applied on their own to the same input."""

    def run(module, variables, **kwargs):
        return module.apply(variables, x, train=train, bn_set=0, mutable=["batch_stats"], **kwargs)[0]

    def part(module, name):
        return run(module, {col: tree[name] for col, tree in variables.items()})

    shortcut = part(ShakeShortcut(8, 2, 1, jnp.float32), "shortcut")
    b1, b2 = (part(ShakeBranch(8, 2, 1, jnp.float32), f"branch_{i}") for i in range(2))
    return run(SHAKE_BLOCK, variables, rngs={"shake": rng}), shortcut, b1, b2


def test_shake_shake_eval_is_the_rng_free_average_of_branches():
    variables, x = _shake_block_variables_and_input()
    out, shortcut, b1, b2 = _block_output_and_parts(variables, x, jax.random.key(6), train=False)
    np.testing.assert_allclose(out, shortcut + 0.5 * b1 + 0.5 * b2, rtol=1e-5, atol=1e-5)
    other_rng, *_ = _block_output_and_parts(variables, x, jax.random.key(7), train=False)
    np.testing.assert_array_equal(out, other_rng)


def test_shake_shake_training_mixes_branches_with_one_alpha_per_image():
    variables, x = _shake_block_variables_and_input()
    out, shortcut, b1, b2 = _block_output_and_parts(variables, x, jax.random.key(6), train=True)
    # out = shortcut + α·b1 + (1-α)·b2  =>  out - shortcut - b2 = α·(b1 - b2) with α per image.
    diff = np.asarray(b1 - b2).reshape(4, -1)
    residual = np.asarray(out - shortcut - b2).reshape(4, -1)
    alpha = np.sum(residual * diff, axis=1) / np.sum(diff * diff, axis=1)  # least squares per image
    np.testing.assert_allclose(residual, alpha[:, None] * diff, rtol=1e-3, atol=1e-4)
    assert np.all((alpha > 0) & (alpha < 1)) and np.ptp(alpha) > 0.05
    other_rng, *_ = _block_output_and_parts(variables, x, jax.random.key(8), train=True)
    assert np.abs(np.asarray(other_rng - out)).max() > 1e-3


def test_shake_shake_model_needs_shake_rng_only_in_training():
    model, variables = _random_variables("shake-shake-8-2x16d")
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    with pytest.raises(flax.errors.InvalidRngError, match="shake"):
        jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))(variables, x)
    logits = jax.jit(functools.partial(model.apply, train=False))(variables, x)
    assert logits.shape == (2, 10) and np.all(np.isfinite(logits))


# ---------------------------------------------------------------------------------------------
# bfloat16 compute


@pytest.mark.parametrize("name", ["wrn-10-1", "shake-shake-8-2x16d", "resnet-18", "resnet-50"])
def test_bfloat16_model_convolves_in_bf16_with_float32_params_stats_and_logits(name):
    model = models.create(name, dtype=jnp.bfloat16)
    variables = _abstract_variables(model, 32)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {np.dtype("float32")}
    apply = functools.partial(
        model.apply, train=True, rngs={"shake": jax.random.key(0)},
        capture_intermediates=True, mutable=["batch_stats", "intermediates"],
    )
    logits, state = jax.eval_shape(apply, variables, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
    assert logits.dtype == jnp.float32
    captured = [
        (path[-3].key, leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(state["intermediates"])
        if len(path) >= 3
    ]
    # Convolutions and BatchNorm outputs (hence every activation in between) are bf16.
    for layer in ("conv", "bn"):
        outputs = [leaf for module, leaf in captured if layer in module]
        assert len(outputs) >= 7 and {o.dtype for o in outputs} == {np.dtype("bfloat16")}, layer
    assert {leaf.dtype for leaf in jax.tree.leaves(state["batch_stats"])} == {np.dtype("float32")}


@pytest.mark.parametrize("name", ["wrn-10-1", "shake-shake-8-2x16d"])
def test_bfloat16_logits_are_close_to_float32(name):
    f32_model, variables = _random_variables(name)
    bf16_model = models.create(name, num_bn_sets=2, dtype="bfloat16")
    x = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))

    def logits(model):
        apply = functools.partial(
            model.apply, train=True, rngs={"shake": jax.random.key(2)}, mutable=["batch_stats"]
        )
        return jax.jit(apply)(variables, x)[0]

    reference, low = logits(f32_model), logits(bf16_model)
    relative_error = float(jnp.linalg.norm(low - reference) / jnp.linalg.norm(reference))
    assert 0 < relative_error < 0.05


# ---------------------------------------------------------------------------------------------
# Wiring: gradients flow and training reduces the loss


def test_initialization_follows_the_pytorch_references():
    _, variables = _init("wrn-10-1")
    for path, leaf in jax.tree_util.tree_leaves_with_path(jax.device_get(variables["params"])):
        names = [k.key for k in path]
        if names[-1] == "kernel" and leaf.ndim == 4:  # conv: kaiming normal, fan_out
            std = np.sqrt(2.0 / (np.prod(leaf.shape[:2]) * leaf.shape[-1]))
            assert abs(leaf.std() / std - 1) < (0.1 if leaf.size > 1000 else 0.3), names
        elif names[-1] == "kernel":  # dense: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1 / np.sqrt(leaf.shape[0])
            assert 0.8 * bound < np.abs(leaf).max() <= bound
        else:  # BN scale 1, BN and Dense bias 0
            np.testing.assert_array_equal(leaf, 1.0 if names[-1] == "scale" else 0.0, err_msg=str(names))
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables["batch_stats"]):
        np.testing.assert_array_equal(leaf, 0.0 if path[-1].key == "mean" else 1.0)


def test_sgd_steps_reduce_loss_of_tiny_wrn_through_both_bn_sets():
    model, variables = _init("wrn-10-1")
    images = jax.random.normal(jax.random.key(0), (32, 16, 16, 3))
    labels = jax.random.randint(jax.random.key(1), (32,), 0, 10)
    optimizer = optax.sgd(0.1, momentum=0.9)

    def loss_fn(params, batch_stats):
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats},
            images, train=True, bn_set=(0, 1), mutable=["batch_stats"],
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, updates["batch_stats"]

    @jax.jit
    def step(params, batch_stats, opt_state):
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    params, batch_stats = variables["params"], variables["batch_stats"]
    opt_state = optimizer.init(params)
    losses = []
    for _ in range(15):
        params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
        losses.append(float(loss))
    assert losses[0] > 2.0  # ≈ ln 10 at init: nothing is learned yet
    assert losses[-1] < 0.5 * losses[0], losses


# ---------------------------------------------------------------------------------------------
# create()


@pytest.mark.parametrize(
    "name, cls, fields",
    [
        ("wrn-28-10", models.WideResNet, {"depth": 28, "widen_factor": 10}),
        ("shake-shake-26-2x96d", models.ShakeShake, {"depth": 26, "width": 96}),
        ("resnet-34", models.ResNet, {"depth": 34}),
    ],
)
def test_create_parses_names(name, cls, fields):
    model = models.create(name, num_classes=100, num_bn_sets=3, dtype="bfloat16")
    assert type(model) is cls
    assert {k: getattr(model, k) for k in fields} == fields
    assert (model.num_classes, model.num_bn_sets, model.dtype) == (100, 3, jnp.bfloat16)


def test_create_forwards_model_kwargs():
    assert models.create("wrn-16-4", dropout_rate=0.3).dropout_rate == 0.3


@pytest.mark.parametrize(
    "name",
    ["wrn-27-10", "wrn-4-1", "wrn-28", "WRN-28-10", "shake-shake-24-2x32d", "shake-shake-26-2x33d",
     "shake-shake-26-32d", "resnet-101", "resnet", "vit-b16", ""],
)
def test_create_rejects_bad_names(name):
    with pytest.raises(ValueError, match=f"{name!r}.*accepted: wrn-<depth>-<width>.*resnet-50"):
        models.create(name)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 0}, "num_classes must be an int >= 1, got 0"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"num_bn_sets": 0}, "num_bn_sets must be an int >= 1, got 0"),
        ({"num_bn_sets": True}, "num_bn_sets"),
        ({"dtype": jnp.float16}, "dtype must be float32 or bfloat16"),
        ({"dtype": "int8"}, "dtype must be float32 or bfloat16"),
    ],
)
def test_create_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.create("wrn-10-1", **kwargs)


def test_normalized_is_the_network_on_normalized_images_with_the_same_variables():
    """`Normalized` adds no variables (its scope is the network's), so a bare network's
    checkpoint fits it, and its output is the network's on (x - mean) / std, BatchNorm set and
    mutable statistics passed through."""
    norm = models.Normalization((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    net = TinyMultiBNNet(num_bn_sets=2)
    wrapped = models.Normalized(net, norm)
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    shapes = jax.eval_shape(lambda k: net.init(k, x, train=False), jax.random.key(0))
    wrapped_shapes = jax.eval_shape(lambda k: wrapped.init(k, x, train=False), jax.random.key(0))
    assert wrapped_shapes == shapes
    variables = numpy_variables(shapes)
    z = (x - jnp.asarray(norm.mean)) / jnp.asarray(norm.std)

    @jax.jit  # one program for both
    def both(variables, x, z):
        return (net.apply(variables, z, train=True, bn_set=1, mutable=["batch_stats"]),
                wrapped.apply(variables, x, train=True, bn_set=1, mutable=["batch_stats"]))

    (want, want_stats), (got, got_stats) = both(variables, x, z)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, got_stats, want_stats)
    np.testing.assert_allclose(norm.invert(norm(x)), x, atol=1e-6)


@pytest.mark.parametrize("mean, std, match", [
    ((0.5, 0.5), (0.2, 0.2, 0.2), "one length"), ((0.5,), (0.0,), "std positive"),
    ((float("nan"),), (0.2,), "mean must be finite")])
def test_normalization_rejects_bad_statistics(mean, std, match):
    with pytest.raises(ValueError, match=match):
        models.Normalization(mean, std)


def test_normalization_rejects_integer_images():
    with pytest.raises(ValueError, match="uint8"):
        models.Normalization((0.5,), (0.25,))(jnp.zeros((1, 2, 2, 1), jnp.uint8))
