"""MultiBatchNorm against a float64 numpy reference of PyTorch's BatchNorm2d semantics."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug.models import MultiBatchNorm

EPS = 1e-5
C = 5


def _variables(num_sets, seed=0):
    """Random affine params and running stats, so that every set is distinguishable."""
    rng = np.random.default_rng(seed)
    shape = (num_sets, C)
    return {
        "params": {
            "scale": jnp.asarray(rng.uniform(0.5, 2.0, shape), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=shape), jnp.float32),
        },
        "batch_stats": {
            "mean": jnp.asarray(rng.normal(size=shape), jnp.float32),
            "var": jnp.asarray(rng.uniform(0.5, 2.0, shape), jnp.float32),
        },
    }


def _input(batch, seed=1, dtype=jnp.float32):
    """NHWC input whose per-image offsets make the chunks' statistics differ from each other."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 2, 2, C)) * rng.uniform(0.5, 3.0, C) + 3.0 * rng.normal(size=(batch, 1, 1, 1))
    return jnp.asarray(x, dtype)


def _reference(x, sets, variables, train):
    """Per chunk of x, normalize with its set's joint (train) or running (eval) statistics."""
    x = np.asarray(x, np.float64)
    p = {k: np.asarray(v, np.float64) for k, v in variables["params"].items()}
    stats = {k: np.asarray(v, np.float64).copy() for k, v in variables["batch_stats"].items()}
    chunks = np.split(x, len(sets))
    y = [None] * len(sets)
    for s in sorted(set(sets)):
        idx = [i for i, c in enumerate(sets) if c == s]
        if train:
            joint = np.concatenate([chunks[i] for i in idx]).reshape(-1, C)
            mean, var = joint.mean(0), joint.var(0)
            stats["mean"][s] = 0.9 * stats["mean"][s] + 0.1 * mean
            stats["var"][s] = 0.9 * stats["var"][s] + 0.1 * joint.var(0, ddof=1)
        else:
            mean, var = stats["mean"][s], stats["var"][s]
        for i in idx:
            y[i] = (chunks[i] - mean) / np.sqrt(var + EPS) * p["scale"][s] + p["bias"][s]
    return np.concatenate(y), stats


def _apply_train(bn, variables, x, bn_set):
    y, updates = bn.apply(variables, x, train=True, bn_set=bn_set, mutable=["batch_stats"])
    return y, updates["batch_stats"]


@pytest.mark.parametrize("bn_set", [1, (1, 1, 0), (2, 0)])
def test_train_output_and_running_stats_match_reference(bn_set):
    bn = MultiBatchNorm(num_sets=3)
    variables = _variables(3)
    x = _input(6)
    y, stats = _apply_train(bn, variables, x, bn_set)
    sets = bn_set if isinstance(bn_set, tuple) else (bn_set,)
    y_ref, stats_ref = _reference(x, sets, variables, train=True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    # Untouched sets keep their rows exactly; the reference also leaves them as they were.
    np.testing.assert_allclose(stats["mean"], stats_ref["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["var"], stats_ref["var"], rtol=1e-5, atol=1e-6)
    for s in set(range(3)) - set(sets):
        for k in ("mean", "var"):
            np.testing.assert_array_equal(stats[k][s], variables["batch_stats"][k][s])


def test_running_var_uses_unbiased_batch_variance():
    # 2 images of 2x2 pixels: N = 8 values per feature, so unbiased = biased * 8/7.
    bn = MultiBatchNorm(num_sets=1)
    variables = _variables(1)
    x = _input(2)
    _, stats = _apply_train(bn, variables, x, 0)
    flat = np.asarray(x, np.float64).reshape(-1, C)
    expected = 0.9 * np.asarray(variables["batch_stats"]["var"][0]) + 0.1 * flat.var(0) * 8 / 7
    np.testing.assert_allclose(stats["var"][0], expected, rtol=1e-5)


def test_repeated_set_normalizes_its_chunks_jointly():
    bn = MultiBatchNorm(num_sets=2)
    variables = _variables(2)
    x = _input(6)
    y, _ = _apply_train(bn, variables, x, (1, 1, 0))
    # The output of the first chunk equals normalizing chunks 0 and 1 together with set 1 ...
    joint, _ = _apply_train(bn, variables, x[:4], 1)
    np.testing.assert_allclose(y[:4], joint, rtol=1e-5, atol=1e-5)
    # ... which is not what normalizing chunk 0 on its own gives.
    alone, _ = _apply_train(bn, variables, x[:2], 1)
    assert np.abs(np.asarray(y[:2]) - np.asarray(alone)).max() > 0.1


@pytest.mark.parametrize("bn_set", [1, (2, 0, 0)])
def test_eval_uses_running_stats_and_changes_nothing(bn_set):
    bn = MultiBatchNorm(num_sets=3)
    variables = _variables(3)
    x = _input(6)
    y, updates = bn.apply(variables, x, train=False, bn_set=bn_set, mutable=["batch_stats"])
    sets = bn_set if isinstance(bn_set, tuple) else (bn_set,)
    y_ref, _ = _reference(x, sets, variables, train=False)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    jax.tree.map(np.testing.assert_array_equal, updates["batch_stats"], variables["batch_stats"])


def test_init_creates_identity_affine_and_unit_stats():
    bn = MultiBatchNorm(num_sets=3)
    variables = bn.init(jax.random.key(0), _input(4), train=True)
    assert jax.tree.map(lambda a: (a.shape, a.dtype), variables) == {
        "params": {"scale": ((3, C), jnp.float32), "bias": ((3, C), jnp.float32)},
        "batch_stats": {"mean": ((3, C), jnp.float32), "var": ((3, C), jnp.float32)},
    }
    np.testing.assert_array_equal(variables["params"]["scale"], 1)
    np.testing.assert_array_equal(variables["params"]["bias"], 0)
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], 0)  # init does not update
    np.testing.assert_array_equal(variables["batch_stats"]["var"], 1)


def test_bfloat16_input_gets_float32_statistics():
    bn = MultiBatchNorm(num_sets=1, dtype=jnp.bfloat16)
    variables = _variables(1)
    x = _input(4, dtype=jnp.bfloat16) + 100.0  # a large offset makes bf16 accumulation visibly wrong
    y, stats = _apply_train(bn, variables, x, 0)
    assert y.dtype == jnp.bfloat16
    assert stats["mean"].dtype == stats["var"].dtype == jnp.float32
    y_ref, stats_ref = _reference(x, (0,), variables, train=True)
    np.testing.assert_allclose(stats["mean"], stats_ref["mean"], rtol=1e-6)
    np.testing.assert_allclose(stats["var"], stats_ref["var"], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(y, np.float32), y_ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "batch, bn_set, match",
    [
        (5, (0, 1), r"batch size 5 .*bn_set=\(0, 1\)"),
        (4, 3, r"bn_set=3 .*num_sets=3"),
        (4, (0, -1), r"bn_set=\(0, -1\) names set -1"),
        (4, (), r"bn_set=\(\) is empty"),
    ],
)
def test_invalid_bn_set_raises_value_error(batch, bn_set, match):
    bn = MultiBatchNorm(num_sets=3)
    with pytest.raises(ValueError, match=match):
        bn.apply(_variables(3), _input(batch), train=True, bn_set=bn_set, mutable=["batch_stats"])


def test_traced_bn_set_is_rejected():
    bn = MultiBatchNorm(num_sets=2)
    with pytest.raises(TypeError, match="static"):
        jax.jit(lambda s: bn.apply(_variables(2), _input(2), train=False, bn_set=s))(1)


def test_training_on_a_single_value_per_feature_raises():
    bn = MultiBatchNorm(num_sets=2)
    x = jnp.ones((2, 1, 1, C))
    with pytest.raises(ValueError, match="more than one value"):
        bn.apply(_variables(2), x, train=True, bn_set=(0, 1), mutable=["batch_stats"])


def test_batch_sharded_across_devices_gives_global_statistics():
    # Needs several devices, which XLA only fakes on CPU before jax starts: hence a subprocess.
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from jaxaug.models import MultiBatchNorm
        assert jax.device_count() == 4
        bn = MultiBatchNorm(num_sets=2)
        x = jax.random.normal(jax.random.key(0), (8, 2, 2, 3)) + jnp.arange(8.0)[:, None, None, None]
        variables = bn.init(jax.random.key(1), x, train=False)
        step = jax.jit(lambda v, x: bn.apply(v, x, train=True, bn_set=(1, 0, 1, 1), mutable=["batch_stats"]))
        mesh = Mesh(np.array(jax.devices()), ("data",))
        sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
        (y, s), (y_ref, s_ref) = step(variables, sharded), step(variables, np.asarray(x))
        assert len(y.sharding.device_set) == 4
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s, s_ref)
        print("ok")
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
