"""Adversarial AutoAugment: copies augmented by their own policy, Cutout after the policy, sample
pairing with the batch neighbour, the controller's update direction and entropy sign, the
epoch-window bookkeeping, and a short run in which the controller's distribution leaves its
start."""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyNet, jit_init

from jaxaug import models, policies
from jaxaug.data import augment, synthetic
from jaxaug.methods import adv_autoaugment as aaa
from jaxaug.objectives import reinforce
from jaxaug.train import steps
from jaxaug.train.config import base_config
from jaxaug.train.mesh import make_mesh

pytestmark = pytest.mark.usefixtures("unoptimized_xla")

NORM = models.Normalization((0.5, 0.4, 0.3), (0.25, 0.2, 0.3))  # a dataset's
MEAN = np.asarray(NORM.mean, np.float32)


@jax.jit
def _augment(key, actions, images):
    return aaa.augment_copies(key, actions, images)


@jax.jit
def _apply_one(key, img, sub, partner):
    return policies.apply_actions(key, img, sub, op_names=aaa.OPS, partner=partner)


def _images(n=4, size=12, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(size=(n, size, size, 3)), jnp.float32)


def test_each_copy_uses_its_policy_and_sample_pairing_blends_the_neighbour():
    """A second writing of the copy augmentation: image i of copy m is `apply_actions` with the
    sub-policy drawn for (m, i) and the image before it in the batch as partner."""
    unit = _images()
    actions = jax.random.randint(jax.random.key(1), (3, 20), 0, 10)
    key = jax.random.key(2)
    out = _augment(key, actions, unit)
    assert out.shape == (3, 4, 12, 12, 3)
    described = aaa.describe(actions)
    assert len(described) == 3 and len(described[1]) == 5 and len(described[1][4]) == 2
    assert described[1][4][1] == (aaa.OPS[int(actions[1, 18])], int(actions[1, 19]))
    pick_key, apply_key = jax.random.split(key)
    drawn = jax.random.randint(pick_key, (3, 4), 0, 5)
    keys = jax.random.split(apply_key, 12).reshape(3, 4)
    for m in range(3):
        for i in range(4):
            sub = actions[m].reshape(5, 2, 2)[drawn[m, i]]
            want = _apply_one(keys[m, i], unit[i], sub, unit[i - 1])
            np.testing.assert_allclose(out[m, i], want, atol=1e-5)
    # Sample pairing (op 15) at level 5 blends 0.2 of the partner in; the other op, brightness
    # (12) at level 5, is factor 1.0: the identity.
    pairing = jnp.tile(jnp.asarray([[15, 5, 12, 5]]), (1, 5))
    out = _augment(key, pairing.astype(jnp.int32), unit)[0]
    np.testing.assert_allclose(out, 0.8 * unit + 0.2 * jnp.roll(unit, 1, axis=0), atol=1e-5)


def _is_clean_rectangle(zero):
    """Whether the True pixels of ``zero`` [H, W] are exactly a non-empty axis-aligned box."""
    rows, cols = np.nonzero(zero)
    if not len(rows):
        return False
    return bool(zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all())


def test_cutout_comes_after_the_policy():
    """The paper's order (sec. 4.1): policy, then Cutout. With every sub-policy a 30-degree
    rotation (and the identity brightness 1.0), each image's Cutout patch is an exact
    rectangle of the fill (the dataset mean); cut out first and rotated after, it is not."""
    images = _images(4, size=16, seed=3)
    actions = jnp.tile(jnp.asarray([[0, 9, 1, 5]], jnp.int32), (2, 5))  # rotate 9, brightness 5
    copies = jax.jit(aaa.augment_copies, static_argnames=("op_names", "cutout", "cutout_fill"))
    out = np.asarray(copies(jax.random.key(5), actions, images, op_names=("rotate", "brightness"),
                            cutout=6, cutout_fill=NORM.mean))
    for m in range(2):
        for i in range(4):
            assert _is_clean_rectangle(np.all(out[m, i] == MEAN, -1)), (m, i)
    # The old order: Cutout on the batch, then the policy, warps the patch.
    cut = augment.cutout(jax.random.key(6), images, 6, MEAN)
    warped = np.asarray(copies(jax.random.key(5), actions, cut,
                               op_names=("rotate", "brightness"), cutout=0))
    assert not any(_is_clean_rectangle(np.all(np.abs(w - MEAN) < 1e-6, -1)) for w in warped[0])


def test_the_trainer_leaves_cutout_to_the_method():
    """Adversarial AutoAugment sets ``applies_cutout`` (it applies ``config.augment.cutout`` after
    its policy), so the trainer's standard augmentation has no Cutout for it; for a method without
    the flag it does. Seen through `compile_steps`' images as the network gets them."""
    config = base_config()
    config.augment.update(pad=0, flip=False, cutout=8)
    dataset = types.SimpleNamespace(mean=MEAN, num_classes=3, image_shape=(16, 16, 3))
    images = np.random.default_rng(0).integers(1, 256, (4, 16, 16, 3), dtype=np.uint8)
    method = aaa.adv_autoaugment(TinyNet(num_classes=3), optax.sgd(0.1), update_every=10,
                                 cutout=8, cutout_fill=NORM.mean)
    assert method.applies_cutout
    plain = dataclasses.replace(method, applies_cutout=False)
    mesh = make_mesh(jax.devices()[:1])
    for m, has_cutout in ((method, False), (plain, True)):
        out = np.asarray(steps.compile_steps(m, dataset, config, mesh).augmented_images(
            {"image": images}, jax.random.key(0)))
        # Cutout's patch is the mean colour, in uint8 levels.
        patch = np.all(np.abs(out.astype(float) - np.asarray(MEAN) * 255) <= 1, -1)
        assert all(_is_clean_rectangle(z) for z in patch) == has_cutout
        assert patch.any() == has_cutout


def test_sample_pairing_needs_a_partner_of_the_same_shape():
    img = _images(1)[0]
    acts = jnp.asarray([[15, 5]])
    with pytest.raises(ValueError, match="sample_pairing"):
        policies.apply_actions(jax.random.key(0), img, acts, op_names=aaa.OPS)
    with pytest.raises(ValueError, match="partner"):
        policies.apply_actions(jax.random.key(0), img, acts, op_names=aaa.OPS, partner=img[:4])


CONTROLLER = policies.PolicyController(choice_sizes=(16, 10), num_choices=20, hidden=16,
                                       embedding=8)


@jax.jit
def _sample(params, key):
    return CONTROLLER.apply(params, key, 4)


@jax.jit
def _log_probs(params, actions):
    return CONTROLLER.apply(params, jax.random.key(0), actions.shape[0], actions)[1].sum(1)


def test_controller_step_raises_the_log_probability_of_the_harder_policies():
    """One small gradient step on J raises sum_m A_m log pi(a_m) (first order), so the policies
    with the larger normalised loss become likelier; with zero advantages the entropy bonus
    raises the entropy."""
    params = jit_init(CONTROLLER.init, jax.random.key(0), jax.random.key(1), num_policies=4)
    actions, _, _ = _sample(params, jax.random.key(2))
    _, advantages = reinforce.policy_average_update(reinforce.policy_average_init(4),
                                                    jnp.asarray([2.0, 1.0, 0.5, 3.0]))
    objective = jax.jit(jax.grad(lambda p, adv, weight: aaa.controller_objective(
        p, CONTROLLER, actions, adv, weight)[0]))
    grads = objective(params, advantages, 0.0)
    stepped = jax.tree.map(lambda p, g: p - 1e-2 * g, params, grads)
    before, after = _log_probs(params, actions), _log_probs(stepped, actions)
    assert float(jnp.sum(advantages * (after - before))) > 0
    # The hardest policy (loss 3.0) gains log-probability relative to the easiest (0.5).
    assert float((after - before)[3]) > float((after - before)[2])

    @jax.jit
    def entropy(p):
        return aaa.controller_objective(p, CONTROLLER, actions, jnp.zeros(4), 1.0)[1]

    grads = objective(params, jnp.zeros(4), 1.0)
    stepped = jax.tree.map(lambda p, g: p - 1e-2 * g, params, grads)
    assert float(entropy(stepped)) > float(entropy(params))


@pytest.fixture(scope="module")
def short_run():
    """14 steps of a tiny target on 16x16 synthetic shapes, M = 4, a window of 2 steps and a
    controller learning rate of 0.05 (the paper's 3.5e-4 moves it too little in 7 updates)."""
    raw, labels = synthetic.generate(16, seed=0, image_size=16)
    images = jnp.asarray(raw, jnp.float32) / 255
    labels = jnp.asarray(labels, jnp.int32)
    model = models.Normalized(TinyNet(num_classes=len(synthetic.CLASS_NAMES)), NORM)
    method = aaa.adv_autoaugment(model, optax.sgd(0.05, momentum=0.9),
                                 update_every=2, num_policies=4,
                                 controller_optimizer=optax.adam(0.05))
    batch = {"image": images[:8], "label": labels[:8]}
    state = jit_init(method.init, jax.random.key(0), batch)
    step = jax.jit(method.step)
    states, metrics = [state], []
    for i in range(14):
        batch = {"image": images[8 * (i % 2):8 * (i % 2) + 8],
                 "label": labels[8 * (i % 2):8 * (i % 2) + 8]}
        state, m = step(state, batch, jax.random.key(100 + i))
        states.append(state)
        metrics.append(jax.device_get(m))
    return method, states, metrics


def test_policies_are_held_for_a_window_and_the_controller_updates_at_its_end(short_run):
    _, states, metrics = short_run
    ctrl = [s.controller for s in states]
    for i in range(1, len(states)):
        same = np.array_equal(ctrl[i].actions, ctrl[i - 1].actions)
        params_same = all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(ctrl[i].params), jax.tree.leaves(ctrl[i - 1].params)))
        if i % 2 == 1:  # first step of a window: policies and params unchanged
            assert same and params_same, i
            np.testing.assert_array_equal(ctrl[i].rewards["count"], np.ones(4))
        else:  # its last step: one controller update and new policies
            assert not params_same and not same, i
            np.testing.assert_array_equal(ctrl[i].rewards["count"], 2 * np.ones(4))
    assert all(m["skipped"] == 0 for m in metrics)
    assert int(states[-1].step) == 14 and int(states[-1].target.step) == 14


def test_the_controller_distribution_moves_away_from_its_start(short_run):
    """The op-type distribution of the first choice (shared by every policy), computed exactly
    by teacher forcing: near uniform at initialisation (total variation < 0.05), clearly not
    after 7 controller updates."""
    _, states, _ = short_run

    @jax.jit
    def first_choice(params):
        every = jnp.zeros((16, 20), jnp.int32).at[:, 0].set(jnp.arange(16))
        log_probs = policies.PolicyController().apply(params, jax.random.key(0), 16, every)[1]
        return jnp.exp(log_probs[:, 0])

    start = np.asarray(first_choice(states[0].controller.params))
    end = np.asarray(first_choice(states[-1].controller.params))
    uniform = np.full(16, 1 / 16)
    assert 0.5 * np.abs(start - uniform).sum() < 0.05
    assert 0.5 * np.abs(end - uniform).sum() > 0.1


@pytest.mark.parametrize("kwargs,message", [
    ({"num_policies": 1}, "num_policies must be an integer, at least 2"),
    ({"update_every": 0}, "update_every"),
    ({"sub_policies": 2.5}, "sub_policies"),
    ({"num_magnitudes": 12}, "num_magnitudes"),
    ({"num_magnitudes": 5.5}, "num_magnitudes must be an integer"),
    ({"entropy_weight": -1.0}, "entropy_weight"),
    ({"op_names": ("rotate", "swirl")}, "swirl"),
    ({"cutout": -1}, "cutout"),
])
def test_bad_arguments_name_themselves(kwargs, message):
    arguments = {"update_every": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        aaa.adv_autoaugment(TinyNet(num_classes=3), optax.sgd(0.1),
                            **arguments)


def test_the_window_end_update_is_adam_on_the_window_averaged_normalised_losses(short_run):
    """A second writing of the controller's update at the first window's end (step 1), from the
    per-policy loss sums the window recorded: A = the normalised window averages, one Adam step
    (lr 0.05) on J(A) from the state before it. A controller fed the last batch's losses alone,
    or -A, fails."""
    _, states, _ = short_run
    controller = policies.PolicyController(choice_sizes=(16, 10), num_choices=20)
    before, after = states[1].controller, states[2].controller
    np.testing.assert_array_equal(before.rewards["count"], 1.0)
    np.testing.assert_array_equal(after.rewards["count"], 2.0)
    average = np.asarray(after.rewards["sum"]) / 2
    advantages = (average - average.mean()) / (average.std() + 1e-8)
    print(f"window averages {average.round(4)}, advantages {advantages.round(3)}")

    @jax.jit
    def reference(params, opt_state):
        grads = jax.grad(lambda p: aaa.controller_objective(
            p, controller, before.actions, jnp.asarray(advantages, jnp.float32), 1e-5)[0])(params)
        return grads, optax.adam(0.05).update(grads, opt_state, params)[0]

    grads, updates = reference(before.params, before.opt_state)
    for g, u, old, new in zip(*(jax.tree.leaves(t) for t in (grads, updates, before.params,
                                                             after.params)), strict=True):
        big = np.abs(np.asarray(g)) > 1e-6  # Adam's first step is lr g / |g|: signs of tiny g flip
        np.testing.assert_allclose(np.asarray(new - old)[big], np.asarray(u)[big], atol=1e-5)
