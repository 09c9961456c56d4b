"""SelfNorm and CrossNorm: identity attention is the identity, 2-instance CrossNorm exactly swaps
the statistics, CrossNorm is off at evaluation, and crops respect the minimum area."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import numpy_variables

from jaxaug.models.norm import (
    CrossNorm,
    SelfNorm,
    cross_norm,
    instance_stats,
    random_box,
    self_norm,
)


def _features(seed=0, shape=(4, 6, 5, 3)):
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 3.0, (shape[0], 1, 1, shape[3]))
    shift = rng.normal(0, 2, (shape[0], 1, 1, shape[3]))
    return jnp.asarray(rng.normal(size=shape) * scale + shift, jnp.float32)


def test_instance_stats_match_numpy_with_and_without_a_mask():
    x = _features()
    mu, sigma = instance_stats(x, eps=0.0)
    np.testing.assert_allclose(mu[:, 0, 0], np.mean(x, axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(sigma[:, 0, 0], np.std(x, axis=(1, 2), ddof=1), rtol=1e-5)
    mask = np.zeros(x.shape[:3], np.float32)
    mask[:, 1:4, 2:5] = 1
    mu, sigma = instance_stats(x, jnp.asarray(mask), eps=0.0)
    inside = np.asarray(x)[:, 1:4, 2:5]
    np.testing.assert_allclose(mu[:, 0, 0], inside.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(sigma[:, 0, 0], inside.std(axis=(1, 2), ddof=1), rtol=1e-5)


def test_self_norm_with_identity_attention_is_the_identity():
    x = _features()
    np.testing.assert_allclose(self_norm(x, 1.0, 1.0), x, atol=1e-6)
    # Otherwise the output statistics are (f mu, g sigma).
    f, g = jnp.asarray([0.5, 1.0, 2.0]), jnp.asarray([0.25, 0.8, 1.5])
    mu, sigma = instance_stats(x, eps=0.0)
    out_mu, out_sigma = instance_stats(self_norm(x, f, g), eps=0.0)
    np.testing.assert_allclose(out_mu, f * mu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out_sigma, g * sigma, rtol=1e-4)


def test_self_norm_layer_with_saturated_attention_is_the_identity_in_train_and_eval():
    x = _features()
    layer = SelfNorm()
    variables = layer.init(jax.random.key(0), x, train=False)
    assert {k: v.shape for k, v in variables["params"].items() if k.endswith("_fc")} == {
        "f_fc": (3, 2), "g_fc": (3, 2)}
    params = jax.tree.map(jnp.zeros_like, variables["params"])
    for unit in ("f_bn", "g_bn"):  # BN(0) = bias = 30, sigmoid(30) == 1 in float32
        params[unit]["bias"] = jnp.full((3,), 30.0)
    variables = {**variables, "params": params}
    np.testing.assert_allclose(layer.apply(variables, x, train=False), x, atol=1e-6)
    out, _ = layer.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(out, x, atol=1e-6)


@pytest.mark.parametrize("mode,axis", [("2-instance", 0), ("1-instance", -1)])
def test_cross_norm_exactly_exchanges_the_statistics(mode, axis):
    x = _features()
    key = jax.random.key(7)
    out = cross_norm(key, x, mode=mode, eps=1e-12)
    # The permutation cross_norm draws (its first subkey), recomputed here.
    order = jax.random.permutation(jax.random.split(key, 3)[0], x.shape[axis])
    assert not np.array_equal(order, np.arange(x.shape[axis]))
    mu, sigma = instance_stats(x, eps=0.0)
    out_mu, out_sigma = instance_stats(out, eps=0.0)
    np.testing.assert_allclose(out_mu, jnp.take(mu, order, axis=axis), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_sigma, jnp.take(sigma, order, axis=axis), rtol=1e-5)
    # The content is kept: the normalized maps are unchanged.
    np.testing.assert_allclose((out - out_mu) / out_sigma, (x - mu) / sigma, atol=1e-4)


def test_content_crop_changes_only_its_box_and_boxes_respect_the_minimum_area():
    for i in range(100):
        box = np.asarray(random_box(jax.random.key(i), 8, 12, 0.1))
        rows, cols = np.nonzero(box)
        assert box.sum() >= 0.1 * 96
        assert box.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one solid rectangle
    x = _features(shape=(4, 8, 12, 3))
    key = jax.random.key(3)
    out = np.asarray(cross_norm(key, x, crop="content"))
    box = np.asarray(random_box(jax.random.split(key, 3)[2], 8, 12, 0.1)) > 0
    np.testing.assert_array_equal(out[:, ~box], np.asarray(x)[:, ~box])
    assert not np.allclose(out[:, box], np.asarray(x)[:, box])


def test_cross_norm_layer_is_inactive_at_evaluation_and_follows_its_probability():
    x = _features()
    rngs = {"crossnorm": jax.random.key(0)}
    assert np.array_equal(CrossNorm(prob=1.0).apply({}, x, train=False, rngs=rngs), x)
    assert np.array_equal(CrossNorm(prob=0.0).apply({}, x, train=True, rngs=rngs), x)
    assert not np.allclose(CrossNorm(prob=1.0).apply({}, x, train=True, rngs=rngs), x)
    applied = [not np.array_equal(CrossNorm(prob=0.3).apply(
        {}, x, train=True, rngs={"crossnorm": jax.random.key(i)}), x) for i in range(200)]
    assert 0.2 < np.mean(applied) < 0.4


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="mode must be one of"):
        cross_norm(jax.random.key(0), _features(), mode="3-instance")
    with pytest.raises(ValueError, match="crop must be one of"):
        CrossNorm(crop="middle")
    with pytest.raises(ValueError, match="prob must be in"):
        CrossNorm(prob=1.5)
    with pytest.raises(ValueError, match="min_area"):
        cross_norm(jax.random.key(0), _features(), min_area=0.0)


@pytest.mark.parametrize("position,channels", [("post", (16, 32, 64)), ("residual", (16, 32, 64)),
                                                ("pre", (16, 16, 32))])
def test_wide_resnet_places_selfnorm_in_every_block(position, channels):
    """WRN-10-1 (one block per group): SelfNorm adds 8 C parameters per block (two channel-wise
    FCs of 2 C weights, two BatchNorms of 2 C), C the channels where it sits."""
    from jaxaug.models import WideResNet, count_params
    from jaxaug.models.norm import CNSNPlacement
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    plain = WideResNet(depth=10, widen_factor=1)
    placed = WideResNet(depth=10, widen_factor=1, cnsn=CNSNPlacement(selfnorm=True,
                                                                     position=position))

    def params(model):  # shapes only: counting needs no values (nor an XLA compile)
        return jax.eval_shape(lambda v: model.init(jax.random.key(0), v, train=False), x)["params"]

    base, params = params(plain), params(placed)
    assert count_params(params) - count_params(base) == 8 * sum(channels)
    assert all("cnsn" in params[f"group{g}_block1"] for g in (1, 2, 3))


def _wrn_variables(model, shape):
    """Random variables for `model` on inputs of `shape`, from numpy (an init costs seconds of
    compiling)."""
    return numpy_variables(jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False),
                                          jax.ShapeDtypeStruct(shape, jnp.float32)))


def test_selfnorm_pre_leaves_the_shortcut_alone():
    """SelfNorm "pre" sits on the residual path only (CNSN reference blocks): with that path's
    last layer zeroed, a WRN block returns x exactly when the shape is kept, and the plain
    block's shortcut conv of ReLU(BN(x)) when it changes; a ResNet basic block returns ReLU(x).
    With the path restored, SelfNorm does change the output."""
    from jaxaug.models.norm import CNSNPlacement
    from jaxaug.models.resnet import BasicBlock
    from jaxaug.models.wide_resnet import WideBasicBlock
    pre = CNSNPlacement(selfnorm=True, position="pre")
    x = _features(shape=(2, 8, 8, 4))
    cases = [(WideBasicBlock, {"features": 4, "stride": 1, "dropout_rate": 0.0}, "conv2"),
             (WideBasicBlock, {"features": 8, "stride": 2, "dropout_rate": 0.0}, "conv2"),
             (BasicBlock, {"features": 4, "stride": 1}, "bn2")]
    for block, fields, path_end in cases:
        plain = block(**fields, num_bn_sets=1, dtype=jnp.float32)
        placed = block(**fields, num_bn_sets=1, dtype=jnp.float32, cnsn=pre)
        variables = numpy_variables(jax.eval_shape(
            lambda v, m=placed: m.init(jax.random.key(0), v, False, 0), x))
        # One compile per module rather than an eager op-by-op pass.
        placed_apply = jax.jit(lambda v, m=placed: m.apply(v, x, False, 0))
        plain_apply = jax.jit(lambda v, m=plain: m.apply(v, x, False, 0))
        without_cnsn = {k: {n: p for n, p in v.items() if n != "cnsn"}
                        for k, v in variables.items()}
        assert not np.allclose(placed_apply(variables), plain_apply(without_cnsn), atol=1e-3)
        params = {**variables["params"],
                  path_end: jax.tree.map(jnp.zeros_like, variables["params"][path_end])}
        out = placed_apply({**variables, "params": params})
        if block is BasicBlock:
            expected = jax.nn.relu(x)
        elif fields["stride"] == 1:
            expected = x
        else:
            expected = plain_apply({**without_cnsn, "params": {
                n: p for n, p in params.items() if n != "cnsn"}})
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_wide_resnet_crossnorm_acts_only_in_training():
    from jaxaug.models import WideResNet
    from jaxaug.models.norm import CNSNPlacement
    x = _features(shape=(4, 32, 32, 3))
    plain = WideResNet(depth=10, widen_factor=1)
    placed = WideResNet(depth=10, widen_factor=1,
                        cnsn=CNSNPlacement(crossnorm=True, cn_prob=1.0))
    variables = _wrn_variables(plain, x.shape)  # CrossNorm has no parameters
    assert np.array_equal(placed.apply(variables, x, train=False),
                          plain.apply(variables, x, train=False))
    rngs = {"crossnorm": jax.random.key(1)}
    trained, _ = placed.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
    reference, _ = plain.apply(variables, x, train=True, mutable=["batch_stats"])
    assert not np.allclose(trained, reference)
    with pytest.raises(ValueError, match="position must be one of"):
        CNSNPlacement(selfnorm=True, position="middle")


def test_resnet_places_selfnorm_in_every_block():
    """ResNet-18 with SelfNorm after every block ("post"): 8 C parameters per block, C the
    stage width (2 blocks each of 64, 128, 256, 512 channels)."""
    from jaxaug.models import ResNet, count_params
    from jaxaug.models.norm import CNSNPlacement
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)

    def count(model):
        shapes = jax.eval_shape(lambda v: model.init(jax.random.key(0), v, train=False), x)
        return count_params(shapes["params"])

    placed = ResNet(depth=18, num_classes=10, cnsn=CNSNPlacement(selfnorm=True))
    assert count(placed) - count(ResNet(depth=18, num_classes=10)) == 8 * 2 * (64 + 128 + 256 + 512)


def test_crossnorm_gates_follow_the_configured_scheme():
    from jaxaug.models.norm import crossnorm_gates
    keys = jax.random.split(jax.random.key(0), 4000)

    @jax.jit  # one compile for the three samples (eagerly, every random primitive compiles)
    def sample(keys):
        return (jax.vmap(lambda k: crossnorm_gates(k, 6, 0.3, 2))(keys),
                jax.vmap(lambda k: crossnorm_gates(k, 6, 0.3, 0))(keys),
                jax.vmap(lambda k: crossnorm_gates(k, 6, 0.3, 2, "on"))(keys[:50]))

    gates, independent, on = (np.asarray(a) for a in sample(keys))
    # Reference scheme: one coin per pass, then exactly `active` of the units.
    counts = gates.sum(1)
    assert set(np.unique(counts)) == {0, 2}
    assert abs((counts > 0).mean() - 0.3) < 0.025  # binomial sd 0.007
    np.testing.assert_allclose(gates.mean(0), 0.3 * 2 / 6, atol=0.02)  # every unit alike
    # active=0: each unit on independently.
    np.testing.assert_allclose(independent.mean(0), 0.3, atol=0.025)
    assert np.mean(independent.sum(1) == 6) < 0.01  # not one coin for all
    assert np.all(on.sum(1) == 2)
    assert not np.any(crossnorm_gates(keys[0], 6, 1.0, 0, "off"))
    with pytest.raises(ValueError, match="active must be in"):
        crossnorm_gates(keys[0], 6, 0.5, 7)


def test_wide_resnet_crossnorm_switch():
    """With CrossNorm only (no parameters), a training pass with crossnorm="off" is the plain
    network's pass; "on" with one active block changes the output in exactly that many blocks."""
    from jaxaug.models import WideResNet
    from jaxaug.models.norm import CNSNPlacement
    x = _features(shape=(4, 32, 32, 3))
    plain = WideResNet(depth=10, widen_factor=1)
    placed = WideResNet(depth=10, widen_factor=1,
                        cnsn=CNSNPlacement(crossnorm=True, cn_prob=0.0, cn_active=1))
    variables = _wrn_variables(plain, x.shape)
    rngs = {"crossnorm": jax.random.key(1)}

    def train_pass(model, **kwargs):
        return model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"],
                           **kwargs)[0]

    reference = train_pass(plain)
    np.testing.assert_array_equal(train_pass(placed, crossnorm="off"), reference)
    np.testing.assert_array_equal(train_pass(placed), reference)  # cn_prob 0: the coin is tails
    assert not np.allclose(train_pass(placed, crossnorm="on"), reference)
    with pytest.raises(ValueError, match="crossnorm must be one of"):
        train_pass(placed, crossnorm="always")


def test_selfnorm_without_mean_recalibration_scales_by_g():
    """recalibrate_mean=False (the reference code's CIFAR SelfNorm): A -> g A, one attention unit,
    4 C parameters (FC 2 C, BatchNorm 2 C) instead of 8 C."""
    from jaxaug.models import count_params
    x = _features(shape=(4, 6, 5, 3))
    layer = SelfNorm(recalibrate_mean=False)
    variables = layer.init(jax.random.key(0), x, train=False)
    assert count_params(variables["params"]) == 4 * 3
    mu, sigma = instance_stats(x, eps=1e-12)
    stats = jnp.stack([mu[:, 0, 0], sigma[:, 0, 0]], -1)
    p, bs = variables["params"], variables["batch_stats"]["g_bn"]
    z = jnp.sum(stats * p["g_fc"], -1)
    z = (z - bs["mean"]) / jnp.sqrt(bs["var"] + 1e-5) * p["g_bn"]["scale"] + p["g_bn"]["bias"]
    g = jax.nn.sigmoid(z)[:, None, None, :]
    np.testing.assert_allclose(layer.apply(variables, x, train=False), g * x, rtol=1e-5,
                               atol=1e-6)


def test_selfnorm_units_start_as_torch_grouped_conv1d():
    """The reference's channel-wise FC is Conv1d(C, C, kernel_size=2, groups=C, bias=False), whose
    PyTorch default init is U(+-1/sqrt(fan_in)) with fan_in = 2, whatever C. (lecun_normal on the
    [C, 2] kernel took C as the fan-in: std 1/sqrt(C), 0.0625 at C = 256 instead of 0.408.)"""
    channels = 256
    params = SelfNorm().init(jax.random.key(0), jnp.ones((2, 2, 2, channels)), train=False)["params"]
    bound = 1 / np.sqrt(2)
    for name in ("f_fc", "g_fc"):
        w = np.asarray(params[name])
        assert np.all(np.abs(w) <= bound)
        np.testing.assert_allclose(np.std(w), bound / np.sqrt(3), rtol=0.06)
        assert np.max(np.abs(w)) > 0.95 * bound
