"""DADA's relaxed policy: at a one-hot op choice the relaxed stage is the hard op (and the
identity when not applied); gradients reach the op weights (each op's output against the probe),
the application probability (sign of the change it makes) and the magnitudes (finite
differences of a bilinear warp, the enhance closed form, straight-through for the 8-bit and
cutout ops); the exported table is what `policies.autoaugment` samples and what the training
stage applies; one search step moves the policy within its box."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyNet, jit_init

from jaxaug import policies
from jaxaug.methods import dada
from jaxaug.policies import apply
from jaxaug.train.config import load_config_file, validate

# One of each kind: a bilinear warp, an enhance blend, a straight-through 8-bit op, a
# magnitude-free op, cutout (straight-through in its side).
OPS5 = ("translate_x", "brightness", "solarize", "invert", "cutout")
SIZE = 16


@functools.cache
def _programs():
    def stage(weights, applied, magnitude, img, sign, center):
        return dada.relaxed_stage(img, weights, applied, magnitude, sign, center, op_names=OPS5)

    def probe(weights, applied, magnitude, img, sign, center, w):
        return jnp.sum(w * stage(weights, applied, magnitude, img, sign, center))

    grad = jax.grad(probe, argnums=(0, 1, 2))

    @jax.jit
    def relaxed(weights, applied, magnitude, img, sign, center, w):
        over = (0, None, None, None, None, None)
        return (jax.vmap(stage, in_axes=over)(weights, applied, magnitude, img, sign, center),
                jax.vmap(grad, in_axes=over + (None,))(weights, applied, magnitude, img, sign,
                                                        center, w))

    @jax.jit
    def hard(values, img, center, w):
        def one(o, v):
            out = apply.apply_steps(None, img, o[None], v[None], jnp.ones((1,), bool),
                                    op_names=OPS5, interpolation="bilinear",
                                    cutout_center=center[None])
            return out, jnp.sum(w * out)
        return jax.vmap(one)(jnp.arange(len(OPS5)), values)

    return relaxed, hard


def _inputs():
    rng = np.random.default_rng(0)
    img = jnp.asarray(rng.uniform(size=(SIZE, SIZE, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(SIZE, SIZE, 3)), jnp.float32)
    magnitude = jnp.asarray([0.63, 0.4, 0.5, 0.5, 0.5])
    return img, w, magnitude, jnp.ones(len(OPS5)), jnp.asarray([5, 9])


def test_one_hot_relaxation_is_the_hard_op_and_gradients_reach_weights_and_probability():
    relaxed, hard = _programs()
    img, w, magnitude, sign, center = _inputs()
    values = dada.op_values(magnitude, SIZE, OPS5)
    eye = jnp.eye(len(OPS5))
    outs, (g_weights, g_applied, _) = relaxed(eye, 1.0, magnitude, img, sign, center, w)
    ref, ref_probe = hard(values, img, center, w)
    diff = np.abs(np.asarray(outs) - np.asarray(ref)).max(axis=(1, 2, 3))
    print("one-hot relaxed stage vs hard op, max |diff| per op:",
          dict(zip(OPS5, diff.round(8))))
    assert np.all(diff < 1e-6) and np.all(np.abs(np.asarray(ref) - img).max(axis=(1, 2, 3)) > 0.01)
    # d/dweights_o of <w, sum_o h_o A_o(x)> = <w, A_o(x)> for every op, the chosen or not.
    np.testing.assert_allclose(g_weights, np.tile(ref_probe, (len(OPS5), 1)), rtol=1e-4,
                               atol=1e-4)
    # d/dapplied = <w, A_o(x) - x>: the probability's gradient has the sign of the change.
    np.testing.assert_allclose(g_applied, ref_probe - float(jnp.sum(w * img)), rtol=1e-4,
                               atol=1e-4)
    not_applied, (_, _, g_m) = relaxed(eye, 0.0, magnitude, img, sign, center, w)
    np.testing.assert_allclose(not_applied, np.broadcast_to(img, not_applied.shape), atol=1e-7)
    np.testing.assert_array_equal(g_m, 0.0)


def test_gradients_reach_the_magnitudes():
    relaxed, hard = _programs()
    img, w, magnitude, sign, center = _inputs()
    values = dada.op_values(magnitude, SIZE, OPS5)
    _, (_, _, g_m) = relaxed(jnp.eye(len(OPS5)), 1.0, magnitude, img, sign, center, w)
    g_m = np.asarray(g_m)
    # Only the chosen op's magnitude gets a gradient (the others have weight 0).
    np.testing.assert_array_equal(g_m[~np.eye(len(OPS5), dtype=bool)], 0.0)
    g = np.diag(g_m)
    # translate_x: finite differences of the bilinear warp, dv/dm = 10 px (level 10).
    delta = jnp.asarray([0.01, 0, 0, 0, 0])
    fd = (hard(values + delta, img, center, w)[1][0] - hard(values - delta, img, center, w)[1][0]
          ) / 0.02 * 10
    # brightness: clip(f x), f = 0.1 + 1.8 m, so d/dm = 1.8 <w, x [f x < 1]>.
    factor = 0.1 + 1.8 * magnitude[1]
    closed = 1.8 * float(jnp.sum(w * img * (factor * img < 1)))
    print(f"magnitude gradients: translate_x {g[0]:.4f} (finite differences {float(fd):.4f}), "
          f"brightness {g[1]:.4f} (closed form {closed:.4f}), solarize {g[2]:.4f}, invert "
          f"{g[3]:.4f}, cutout {g[4]:.4f} (straight-through: sum w = {float(jnp.sum(w)):.4f})")
    np.testing.assert_allclose(g[0], fd, rtol=2e-3)
    assert abs(g[0]) > 1.0
    np.testing.assert_allclose(g[1], closed, rtol=1e-4)
    np.testing.assert_allclose(g[[2, 4]], float(jnp.sum(w)), rtol=1e-4)
    assert g[3] == 0.0


def test_export_is_the_table_autoaugment_runs_and_the_training_stage_samples(tmp_path):
    phi = dada.init_policy(2, 2, len(OPS5))
    phi["logits"] = phi["logits"].at[0, 0, 2].set(1.0).at[0, 1, 1].set(1.0).at[1, 0, 4].set(1.0)
    phi["logits"] = phi["logits"].at[1, 1, 3].set(1.0)
    phi["probability"] = phi["probability"].at[0].set(1.0).at[1, 0].set(0.0).at[1, 1].set(1.0)
    phi["magnitude"] = phi["magnitude"].at[0, 0, 2].set(0.73).at[0, 1, 1].set(0.26)
    table = dada.export_table(phi, OPS5)
    assert table == ((("solarize", 1.0, 7), ("brightness", 1.0, 3)),
                     (("cutout", 0.0, 5), ("invert", 1.0, 5)))
    path = str(tmp_path / "policy.json")
    policies.write_table(table, path)
    assert policies.load_table(path) == table  # the reader the docs name, exported
    with pytest.raises(ValueError, match="level 11"):  # checked before anything is written
        policies.write_table(((("rotate", 0.5, 11),),), str(tmp_path / "never.json"))
    assert not (tmp_path / "never.json").exists()
    policy = policies.get(f"table:{path}")  # what --config.augment.policy=table:<path> runs
    assert policy.op_names == ("solarize", "brightness", "cutout", "invert")
    (tmp_path / "bad.json").write_text('[[["rotate", 0.5, 11]]]')
    with pytest.raises(ValueError, match=r"bad\.json.*level 11"):
        policies.get(f"table:{tmp_path / 'bad.json'}")
    keys = jax.random.split(jax.random.key(0), 32)
    theirs, ours = jax.jit(lambda keys: (  # one program: compiling is the cost here
        jax.vmap(lambda k: policy.sample(k, SIZE))(keys),
        jax.vmap(lambda k: dada.hard_steps(phi, k, SIZE, op_names=OPS5))(keys)))(keys)

    def outcomes(names, op_index, value, applied):
        return {tuple((names[int(o)], round(float(v), 5), bool(a)) for o, v, a in zip(*row))
                for row in zip(*jax.device_get((op_index, value, applied)))}

    assert outcomes(policy.op_names, *theirs) == outcomes(OPS5, *ours)
    assert len(outcomes(OPS5, *ours)) == 2


@pytest.mark.slow
def test_search_step_moves_the_policy_within_its_box_and_the_train_stage_uses_it():
    """Slow (the DARTS meta step compiles four network passes through the relaxed policy:
    about 15 s of CPU); the relaxation's gradients are checked fast by
    test_one_hot_relaxation_is_the_hard_op_and_gradients_reach_weights_and_probability and
    test_gradients_reach_the_magnitudes."""
    model, ops = TinyNet(num_classes=4), ("brightness", "solarize")
    rng = np.random.default_rng(1)
    batch = {"image": rng.uniform(size=(8, 8, 8, 3)).astype(np.float32),
             "label": rng.integers(0, 4, 8)}
    method = dada.dada(model, optax.sgd(0.1), lr_schedule=optax.constant_schedule(0.1),
                       num_sub_policies=3, op_names=ops, cutout=2, cutout_fill=0.5,
                       policy_optimizer=optax.adam(0.05, b1=0.5), grad_clip=0.01)
    state = jit_init(method.init, jax.random.key(0), batch)
    new, metrics = jax.jit(method.steps[dada.SEARCH])(state, batch, jax.random.key(1))
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                         new.policy.params, state.policy.params)
    print(f"search step: meta {float(metrics['meta']):.4f}, entropy "
          f"{float(metrics['policy_entropy']):.4f}, policy moved by {moved}")
    assert all(v > 1e-3 for v in moved.values()) and int(new.skipped) == 0
    for name in ("probability", "magnitude"):
        assert 0.0 <= float(new.policy.params[name].min()) <= float(
            new.policy.params[name].max()) <= 1.0
    assert 0.99 < float(metrics["policy_entropy"]) <= 1.0  # near uniform after one step
    # The target's step is clipped at global norm 0.01 (DADA's clip_grad_norm_): SGD(0.1) moves
    # theta by exactly 0.1 * 0.01 when the gradient is longer.
    step = optax.global_norm(jax.tree.map(jnp.subtract, new.target.params, state.target.params))
    print(f"search step: target grad norm {float(metrics['grad_norm']):.4f}, step {float(step):.6f}")
    assert float(metrics["grad_norm"]) > 0.1
    np.testing.assert_allclose(float(step), 0.1 * 0.01, rtol=1e-4)
    after, _ = jax.jit(method.steps[dada.TRAIN])(new, batch, jax.random.key(2))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), after.policy.params,
                                     new.policy.params))
    assert float(jnp.abs(after.target.params["Dense_0"]["kernel"]
                         - new.target.params["Dense_0"]["kernel"]).max()) > 0


def test_config_builds_the_search_then_train_stages():
    from jaxaug.methods import registry
    path = os.path.join(os.path.dirname(__file__), "..", "configs", "policy_learners.py")
    config = load_config_file(path, "dada,cifar10")
    validate(config, device_count=1)
    assert registry.stage_schedule(config) == [("search", 20), ("train", 180)]
    assert dict(config.dada) == {"num_sub_policies": 25, "temperature": 0.5,
                                 "meta_mode": "darts", "grad_clip": 5.0, "policy_lr": 0.005,
                                 "search_epochs": 20}
    config.dada.search_epochs = 201
    with pytest.raises(ValueError, match=r"config\.dada\.search_epochs=201"):
        validate(config, device_count=1)
    config.dada.search_epochs, config.batch_size = 20, 127
    with pytest.raises(ValueError, match=r"config\.batch_size=127"):
        validate(config, device_count=1)
