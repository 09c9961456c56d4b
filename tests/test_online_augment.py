"""The OnlineAugment method: one jitted iteration, its gradients' roles, inner_num, NaN skipping,
the BatchNorm-set routing of Comb. The meta variant runs in tests/test_online_augment_devices.py
(one compile of it is enough).

The target is a one-layer CNN whose BatchNorm honours `bn_set` (tests/tiny_models.py): the method
only needs the models' interface, and WRN-10-1 added seconds to tens of seconds to each compile."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyMultiBNNet, jit_init

from jaxaug import objectives
from jaxaug.methods import online_augment as oa

pytestmark = pytest.mark.usefixtures("unoptimized_xla")

MODEL = TinyMultiBNNet(num_classes=3, num_bn_sets=2)
OPTIMIZER = optax.sgd(0.05, momentum=0.9)


def _batch(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.normal(size=(n, size, size, 3)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 3, n), jnp.int32)}


def _method(generator=None, **kwargs):
    return oa.online_augment(MODEL, OPTIMIZER, generator or oa.astn(beta=0.1), **kwargs)


def _init(method, batch):
    return jit_init(method.init, jax.random.key(0), batch)


@functools.cache
def _astn_state():
    """The initial state of the one-A-STN methods (their init does not depend on inner_num)."""
    return _init(_method(), _batch())


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _update_keys(step_key):
    """The generator and target keys of the step's only update (inner_num 1)."""
    update_key = jax.random.split(step_key, 1)[0]
    gen_key, target_key, _ = jax.random.split(update_key, 3)
    return gen_key, target_key


def _generate(gens, params, stats, batch, gen_key):
    """A second, plain writing of the method's generation: each generator on the batch with its
    own key; returns the generated images, their labels and the summed regularizer."""
    augs, labels, reg = [], [], 0.0
    for gen, p, s, key in zip(gens, params, stats, jax.random.split(gen_key, len(gens))):
        noise, dropout = jax.random.split(key)
        out, _ = gen.module.apply({"params": p, "batch_stats": s}, batch["image"], train=True,
                                  rngs={"noise": noise, "dropout": dropout},
                                  mutable=["batch_stats"])
        aug, aug_y, r = gen.augment(out, batch["image"], batch["label"])
        augs.append(aug)
        labels.append(aug_y)
        reg += r
    return augs, jnp.concatenate(labels), reg


def _target_ce(target, images, labels, bn_set, key, model=MODEL):
    ce, _ = objectives.cross_entropy(
        target.params, {"image": jnp.concatenate(images), "label": labels}, model=model,
        batch_stats=target.batch_stats, key=key, bn_set=bn_set)
    return ce


@pytest.fixture(scope="module")
def astn_run():
    """One iteration from an A-STN moved off the identity: at exactly the identity the gradients of
    T(x) and T^-1(x) cancel (d T^-1 / d theta = -d T / d theta there), so the generator's
    adversarial gradient is zero."""
    method = _method()
    batch = _batch()
    state = _astn_state()
    params = state.generator.params[0]
    output = {**params["output"], "bias": params["output"]["bias"] + jnp.asarray(
        [0.05, 0.1, -0.05, -0.1, 0.02, 0.08]), "kernel": params["output"]["kernel"] + 0.05}
    state = state.replace(generator=state.generator.replace(params=({**params, "output": output},)))
    new, metrics = jax.jit(method.step)(state, batch, jax.random.key(1))
    return method, batch, state, new, metrics


def test_one_iteration_updates_both_networks(astn_run):
    _, _, state, new, metrics = astn_run
    assert int(new.step) == 1 and int(new.target.step) == 1 and int(new.skipped) == 0
    assert all(np.isfinite(float(v)) for v in metrics.values())
    for old, moved in [(state.target.params, new.target.params),
                       (state.generator.params, new.generator.params)]:
        assert any(not np.array_equal(a, b) for a, b in zip(_leaves(old), _leaves(moved)))
    assert float(metrics["regularizer"]) > 0  # cycle consistency of a non-identity transform


def test_generator_gradient_is_the_reversed_adversarial_one(astn_run):
    """The joint backward pass gives phi g = -beta * dCE/dphi + dR/dphi. The first AdamW step
    moves each parameter by -lr * (g / (|g| + eps) + wd * p), so its sign reveals g's."""
    _, batch, state, new, _ = astn_run
    gen_key, target_key = _update_keys(jax.random.key(1))

    def generated(gen_params):
        augs, aug_y, reg = _generate([oa.astn()], (gen_params,), state.generator.batch_stats,
                                     batch, gen_key)
        ce = _target_ce(state.target, [batch["image"], *augs],
                        jnp.concatenate([batch["label"], aug_y]), (0, 1, 1), target_key)
        return ce, reg

    d_ce, d_reg = jax.jit(jax.jacrev(generated))(state.generator.params[0])
    expected = np.concatenate([np.ravel(-0.1 * c + r) for c, r in
                               zip(_leaves(d_ce), _leaves(d_reg))])
    old = np.concatenate([np.ravel(x) for x in _leaves(state.generator.params)])
    moved = np.concatenate([np.ravel(x) for x in _leaves(new.generator.params)])
    normalized = (old - moved) / 1e-3 - 1e-4 * old  # g / (|g| + eps)
    big = np.abs(expected) > 1e-6
    assert big.sum() > 10
    np.testing.assert_array_equal(np.sign(normalized[big]), np.sign(expected[big]))
    np.testing.assert_allclose(np.abs(normalized[big]), 1.0, atol=1e-2)


@pytest.fixture(scope="module")
def inner_two():
    """inner_num 2, one compiled step for both its tests: the NaN test poisons the generator
    through its state (a non-finite A-STN output layer) instead of compiling a poisoned one."""
    return _batch(), _astn_state(), jax.jit(_method(inner_num=2).step)


def test_inner_num_counts_target_updates(inner_two):
    batch, state, step = inner_two
    new, metrics = step(state, batch, jax.random.key(1))
    assert int(new.target.step) == 2 and int(new.step) == 1
    assert float(metrics["skipped"]) == 0


def test_non_finite_generator_output_is_skipped_and_counted(inner_two):
    batch, state, step = inner_two
    params = state.generator.params[0]
    output = {**params["output"], "bias": params["output"]["bias"] * jnp.nan}  # theta is NaN
    state = state.replace(generator=state.generator.replace(params=({**params, "output": output},)))
    new, metrics = step(state, batch, jax.random.key(1))
    assert int(new.skipped) == 2 and float(metrics["skipped"]) == 2
    for a, b in zip(_leaves(state.target), _leaves(new.target)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_leaves(state.generator), _leaves(new.generator)):
        np.testing.assert_array_equal(a, b)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="inner_num"):
        _method(inner_num=0)
    with pytest.raises(ValueError, match="meta_mode"):
        _method(meta_mode="second")
    with pytest.raises(ValueError, match="at least one generator"):
        oa.online_augment(MODEL, OPTIMIZER, [])
    with pytest.raises(ValueError, match="'stn'"):
        oa.generator_names("astn,stn")
    with pytest.raises(ValueError, match="repeats"):
        oa.generator_names("astn,astn")
    assert oa.generator_names("comb") == ("astn", "deform_vae", "perturb_vae")


def test_comb_trains_all_three_generators_on_their_own_batchnorm_sets():
    """Comb.: the target's loss is its CE on [x, A-STN(x) doubled, D-VAE(x), P-VAE(x)] with
    BatchNorm sets (0, 1, 1, 2, 3), the regularizer the sum of the three, and every generator
    moves. Checked against `_generate`, a second writing of the generation (jitted: run eagerly
    it compiles each of its hundreds of primitives on its own)."""
    model = TinyMultiBNNet(num_classes=3, num_bn_sets=4)
    gens = [oa.astn(), oa.deform_vae(), oa.perturb_vae()]
    method = oa.online_augment(model, OPTIMIZER, gens)
    batch = _batch()
    state = _init(method, batch)
    new, metrics = jax.jit(method.step)(state, batch, jax.random.key(1))

    @jax.jit
    def reference(state):
        gen_key, target_key = _update_keys(jax.random.key(1))
        augs, aug_y, reg = _generate(gens, state.generator.params, state.generator.batch_stats,
                                     batch, gen_key)
        ce = _target_ce(state.target, [batch["image"], *augs],
                        jnp.concatenate([batch["label"], aug_y]), (0, 1, 1, 2, 3), target_key,
                        model)
        return augs, ce, reg

    augs, ce, reg = reference(state)
    assert [a.shape[0] for a in augs] == [16, 8, 8]
    np.testing.assert_allclose(float(metrics["loss"]), float(ce), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["regularizer"]), float(reg), rtol=1e-5)
    for old, moved in zip(state.generator.params, new.generator.params):
        assert any(not np.array_equal(a, b) for a, b in zip(_leaves(old), _leaves(moved)))
    too_few = oa.online_augment(MODEL, OPTIMIZER, gens)  # MODEL has 2 BatchNorm sets
    shapes = jax.eval_shape(too_few.init, jax.random.key(0), batch)
    with pytest.raises(ValueError, match="num_sets=2"):
        jax.eval_shape(too_few.step, shapes, batch, jax.random.key(1))
