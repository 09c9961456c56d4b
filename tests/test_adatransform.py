"""AdaTransform: the action table against the ops, one resampling per geometric chain, box moves,
telescoping rewards and returns, reward and discriminator signs, argument checks, and a short
jitted run on the synthetic demo data in which the policy leaves the uniform distribution.

The target is a one-layer CNN with BatchNorm (the method only needs the models' interface), so
that the test compiles the full step in seconds."""

import functools

import jax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyNet, TinyTransformer

from jaxaug import models, ops
from jaxaug.data import synthetic
from jaxaug.methods import adatransform as at
from jaxaug.methods.base import predict_target
from jaxaug.models import TransformerNet
from jaxaug.objectives import adatransform as at_objectives
from jaxaug.objectives import discriminator_loss, log_realness
from jaxaug.policies import episodes

NORM = models.Normalization((0.5, 0.45, 0.4), (0.25, 0.25, 0.3))  # a dataset's
FILL = jnp.asarray(NORM.mean)
# The networks as the config path builds them: the normalization first, on images in [0, 1].
TARGET, TRANSFORMER = models.Normalized(TinyNet(), NORM), models.Normalized(TinyTransformer(33), NORM)


def _images01(n=4, size=16, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((n, size, size, 3)), jnp.float32)


TARGET_OPTIMIZER = optax.sgd(0.05, momentum=0.9)


def _method(**kwargs):
    return at.adatransform(TARGET, TARGET_OPTIMIZER, fill=FILL, transformer=TRANSFORMER,
                           discriminator=models.Normalized(models.Discriminator(), NORM), **kwargs)


# The action table and its rendering.

def test_action_table_is_the_papers():
    expected = (
        [("rotate", d) for d in (2.5, -2.5, 5.0, -5.0)]
        + [("zoom", z) for z in (0.9, 1.1, 0.75, 1.25)]
        + [("shear", s) for s in (0.1, -0.1, 0.25, -0.25)]
        + [("hue", h) for h in (0.1, -0.1, 0.25, -0.25)]
        + [(op, f) for op in ("brightness", "color", "sharpness", "contrast")
           for f in (0.75, 1.25, 0.5, 1.5)]
        + [("hflip", 0.0)]
    )
    assert len(episodes.TRANSFORM_ACTIONS) == 33 == episodes.num_actions("transform")
    assert sorted(episodes.TRANSFORM_ACTIONS) == sorted(expected)
    assert [name for name, _ in episodes.BOX_ACTIONS] == ["up", "right", "down", "left", "stay"]


def _direct(img, op, value):
    """Each meta-transformation written with the ops directly."""
    h = img.shape[0]
    if op == "rotate":
        return ops.rotate(img, value, fill=FILL, interpolation="bilinear")
    if op == "zoom":
        return ops.scale(img, value, fill=FILL, interpolation="bilinear")
    if op == "shear":  # x_in = x + shear * (y - h / 2)
        m = jnp.asarray([[1.0, value, -value * h / 2], [0.0, 1.0, 0.0]])
        return ops.affine(img, m, fill=FILL)
    if op == "hflip":
        return ops.hflip(img)
    return {"hue": ops.hue_shift, "brightness": ops.brightness, "color": ops.color,
            "sharpness": ops.sharpness, "contrast": ops.contrast}[op](img, value)


def test_every_action_matches_its_op():
    img = _images01(1)[0]
    # Each action followed by padding, and a sequence of padding only, in one compiled render.
    sequences = jnp.full((34, 3), episodes.NO_ACTION).at[:33, 0].set(jnp.arange(33))
    rendered = np.asarray(jax.jit(jax.vmap(lambda a: episodes.render_transform(img, a, FILL)))(
        sequences))
    direct = np.asarray(jax.jit(lambda x: jnp.stack(
        [_direct(x, op, value) for op, value in episodes.TRANSFORM_ACTIONS]))(img))
    for index, (op, value) in enumerate(episodes.TRANSFORM_ACTIONS):
        np.testing.assert_allclose(rendered[index], direct[index], atol=2e-5,
                                   err_msg=f"action {index} {op} {value}")
    # The actions differ from each other and from the identity.
    flat = rendered[:33].reshape(33, -1)
    assert np.min(np.abs(flat - np.asarray(img).reshape(1, -1)).max(axis=1)) > 0.01
    np.testing.assert_allclose(rendered[33], img, atol=1e-6)


def _index(op, value):
    return episodes.TRANSFORM_ACTIONS.index((op, value))


# Chains of three actions (padded with NO_ACTION), so that one compile serves every test.
_render = jax.jit(episodes.render_transform)


def test_geometric_chain_is_one_resampling():
    img = _images01(1, seed=1)[0]
    h, w, _ = img.shape
    chain = jnp.asarray([_index("rotate", 5.0), _index("zoom", 1.1), _index("shear", 0.1)])
    shear = jnp.asarray([[1.0, 0.1, -0.1 * h / 2], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    matrix = ops.compose(ops.rotate_matrix(5.0, h, w), ops.scale_matrix(1.1, h, w), shear)
    np.testing.assert_allclose(_render(img, chain, FILL), ops.affine(img, matrix, fill=FILL),
                               atol=1e-5)
    # Rotating by +5 then -5 degrees gives the image back; two resamplings would blur it.
    back = _render(img, jnp.asarray([_index("rotate", 5.0), _index("rotate", -5.0),
                                     episodes.NO_ACTION]), FILL)
    twice = ops.rotate(ops.rotate(img, 5.0, FILL, interpolation="bilinear"), -5.0, FILL,
                       interpolation="bilinear")
    inner = (slice(3, -3), slice(3, -3))
    assert np.abs(np.asarray(back - img)[inner]).max() < 1e-4
    assert np.abs(np.asarray(twice - img)[inner]).max() > 0.05


def test_colour_follows_the_warp_in_drawn_order():
    img = _images01(1, seed=2)[0]
    actions = jnp.asarray([_index("brightness", 1.5), _index("rotate", -2.5),
                           _index("contrast", 0.5)])
    expected = ops.contrast(ops.brightness(ops.rotate(img, -2.5, FILL, interpolation="bilinear"),
                                           1.5), 0.5)
    np.testing.assert_allclose(_render(img, actions, FILL), expected, atol=2e-5)


# AdaCutout / AdaErasing boxes.

def test_box_moves_by_two_pixels_and_clips():
    n = len(episodes.BOX_ACTIONS)
    box = episodes.Box(corner=jnp.full((n, 2), 5, jnp.int32), size=jnp.full((n, 2), 4, jnp.int32),
                 lo=jnp.zeros((n, 2), jnp.int32), hi=jnp.full((n, 2), 12, jnp.int32),
                 fill=jnp.zeros((n, 16, 16, 3)))
    moved = episodes.move_box(box, jnp.arange(n), move_pixels=2)
    expected = [(-2, 0), (0, 2), (2, 0), (0, -2), (0, 0)]  # up, right, down, left, stay
    np.testing.assert_array_equal(moved.corner - box.corner, expected)
    at_border = box._replace(corner=jnp.asarray([[0, 5], [5, 12], [12, 5], [5, 0], [0, 0]]))
    np.testing.assert_array_equal(episodes.move_box(at_border, jnp.arange(n), 2).corner,
                                  at_border.corner)  # every move pushes against its border


def test_cutout_box_renders_as_ops_cutout_and_stays_centred_inside():
    x01 = _images01(6)
    keys = jax.random.split(jax.random.key(3), 6)
    box = jax.jit(episodes.start_cutout, static_argnums=2)(keys, x01, 8, FILL)
    cutout = jax.jit(jax.vmap(functools.partial(ops.cutout, size=8, fill=FILL)))
    for step in range(20):  # walk up-left into the corner: the centre stops at (0, 0)
        centre = box.corner + 4
        np.testing.assert_array_equal(episodes.render_box(x01, box), cutout(x01, centre))
        assert np.all((np.asarray(centre) >= 0) & (np.asarray(centre) <= 15))
        box = episodes.move_box(box, jnp.full((6,), step % 2 * 3, jnp.int32), 2)  # up, left, ...
    np.testing.assert_array_equal(box.corner + 4, 0)


def test_erasing_box_stays_inside_and_keeps_its_noise():
    x01 = _images01(6)
    box = jax.jit(episodes.start_erasing)(jax.random.split(jax.random.key(4), 6), x01)
    for action in (1, 2) * 10:  # right, down: into the far corner
        box = episodes.move_box(box, jnp.full((6,), action, jnp.int32), 2)
        assert np.all(np.asarray(box.corner) >= 0)
        assert np.all(np.asarray(box.corner + box.size) <= 16)
    np.testing.assert_array_equal(box.corner + box.size, 16)
    rendered = np.asarray(episodes.render_box(x01, box))
    changed = np.any(rendered != np.asarray(x01), axis=-1)
    np.testing.assert_array_equal(changed.sum(axis=(1, 2)), np.prod(box.size, axis=1))


def test_cutout_rollout_moves_the_box_by_its_actions():
    x01 = _images01(8)
    net = TinyTransformer(5)
    params = jax.jit(net.init)(jax.random.key(0), x01, jnp.zeros((8, 2)))["params"]
    roll = jax.jit(functools.partial(
        episodes.rollout, lambda x, e, k: net.apply({"params": params}, x, e), mode="cutout",
        num_steps=3, fill=FILL, cutout_size=4))(x01, jax.random.key(5))
    # extra holds the box centre in [-1, 1]; the centre stays on the image, in [0, 15].
    centre = (np.asarray(roll.extra) + 1) / 2 * 16
    delta = np.asarray([d for _, d in episodes.BOX_ACTIONS])[np.asarray(roll.actions[:-1])]
    np.testing.assert_allclose(centre[1:], np.clip(centre[:-1] + 2 * delta, 0, 15), atol=1e-5)
    moved = np.abs(centre[1:] - centre[:-1]).sum(-1).ravel()
    assert set(np.round(moved, 4).tolist()) <= {0.0, 1.0, 2.0} and moved.max() == 2


# Rewards and returns.

@pytest.fixture(scope="module")
def transform_rollout():
    """A rollout of a random (non-uniform) policy on 8 images with a random target and D."""
    x01 = _images01(8)
    labels = jnp.arange(8) % 10
    net = TinyTransformer(33)

    def run(x01):
        params = net.init(jax.random.key(0), x01, jnp.zeros((8, 0)))["params"]
        params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape),
                              params)

        def policy(x, e, key):
            return net.apply({"params": params}, x, e, train=True, rngs={"dropout": key})

        roll = episodes.rollout(policy, x01, jax.random.key(2), mode="transform", num_steps=4,
                                fill=FILL)
        target = TinyNet().init(jax.random.key(3), roll.images[0], train=False)
        logits = jax.vmap(lambda x: TinyNet().apply(target, x, train=False))(roll.images)
        losses = optax.softmax_cross_entropy_with_integer_labels(
            logits, jnp.broadcast_to(labels, logits.shape[:2]))  # [K + 1, N]
        return roll, target, losses

    return x01, labels, *jax.jit(run)(x01)


def test_rewards_telescope(transform_rollout):
    x01, labels, roll, target, losses = transform_rollout
    assert len(set(np.asarray(roll.actions).ravel().tolist())) > 3  # a varied rollout

    @jax.jit
    def check(losses):
        # l(x_K), with x_K rendered again from the original and the drawn actions.
        x_k = jax.vmap(lambda x, a: episodes.render_transform(x, a, FILL))(x01, roll.actions.T)
        logits = TinyNet().apply(target, x_k, train=False)
        loss_k = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        log_d = jnp.log(jnp.linspace(0.1, 0.9, 40)).reshape(5, 8)
        rewards = at_objectives.step_rewards(at_objectives.episode_values(losses))
        with_d = at_objectives.step_rewards(at_objectives.episode_values(losses, log_d, disc_weight=0.3))
        return loss_k, log_d, rewards, with_d

    loss_k, log_d, rewards, with_d = check(losses)
    assert rewards.shape == (8, 4)
    np.testing.assert_allclose(rewards.sum(axis=1), loss_k - losses[0], atol=1e-5)
    np.testing.assert_allclose(with_d.sum(axis=1),
                               loss_k - losses[0] + 0.3 * (log_d[-1] - log_d[0]), atol=1e-5)


def test_returns_and_reinforce_surrogate_by_hand():
    rewards = jnp.asarray([[1.0, 2.0, 4.0], [-1.0, 0.0, 2.0]])
    log_p = jnp.asarray([[-1.0, -2.0, -0.5], [-0.3, -1.2, -2.0]])
    # gamma = 0.5: R_1 = r_1 + r_2 / 2 + r_3 / 4, R_2 = r_2 + r_3 / 2, R_3 = r_3.
    returns = np.asarray([[1 + 1 + 1, 2 + 2, 4], [-1 + 0 + 0.5, 0 + 1, 2]])
    baseline = returns.mean(axis=0)  # per step, over the h x s episodes
    expected = -np.mean((returns - baseline) * np.asarray(log_p))
    np.testing.assert_allclose(at_objectives.reinforce_terms(log_p, rewards, 0.5), expected, rtol=1e-6)


def test_cooperative_reward_is_minus_the_competitive(transform_rollout):
    losses = transform_rollout[-1]
    competitive = at_objectives.step_rewards(at_objectives.episode_values(losses))
    cooperative = at_objectives.step_rewards(at_objectives.episode_values(losses, cooperative=True))
    np.testing.assert_allclose(cooperative, -competitive, atol=1e-7)
    assert np.abs(np.asarray(competitive)).max() > 1e-4


def test_discriminator_and_realness_gradient_signs():
    real, fake = jnp.asarray([0.3, -1.0, 2.0]), jnp.asarray([-0.5, 0.4, 1.5])
    g_real, g_fake = jax.grad(lambda r, f: discriminator_loss(r, f)[0], argnums=(0, 1))(real,
                                                                                       fake)
    assert np.all(np.asarray(g_real) < 0)  # descending L_D raises the real logits
    assert np.all(np.asarray(g_fake) > 0)  # and lowers the fake ones
    # The competitive reward grows with D's realness logit of x_t (lambda > 0), and only there.
    losses = jnp.zeros((3, 1))

    def total_reward(logits):
        values = at_objectives.episode_values(losses, log_realness(logits)[:, None], disc_weight=0.5)
        return at_objectives.step_rewards(values).sum()

    grad = jax.grad(total_reward)(jnp.asarray([0.2, -0.4, 0.7]))
    assert grad[-1] > 0 and grad[0] < 0 and abs(grad[1]) < 1e-7  # telescoped: v(x_K) - v(x_0)


# T and N's batch.

def test_transformer_is_resnet18_with_dropout():
    """At w = 64: ResNet-18's 17 3x3 convolutions (stem, then 4 stages x 2 blocks x 2) of 64,
    64 x 4, 128 x 4, 256 x 4, 512 x 4 channels and 3 strided 1x1 shortcuts; dropout after each 3x3
    convolution and before the linear layer (18 dropouts). Shapes only, nothing compiled."""
    net = TransformerNet(33, width=64, dropout=0.5)
    images, extra = jnp.zeros((2, 32, 32, 3)), jnp.zeros((2, 0))
    params = jax.eval_shape(net.init, jax.random.key(0), images, extra)["params"]
    kernels = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(params)
               if path[-1].key == "kernel"]
    # (Leaves come in name order, Conv_10 before Conv_2: compare sorted.)
    assert sorted(k[-1] for k in kernels if k[:2] == (3, 3)) == [64] * 5 + [128] * 4 + [
        256] * 4 + [512] * 4
    assert sorted(k for k in kernels if k[:2] == (1, 1)) == [(1, 1, 64, 128), (1, 1, 128, 256),
                                                              (1, 1, 256, 512)]
    assert [k for k in kernels if len(k) == 2] == [(512, 33)]
    _, state = jax.eval_shape(
        lambda p: net.apply({"params": p}, images, extra, train=True,
                            rngs={"dropout": jax.random.key(1)},
                            capture_intermediates=lambda m, _: isinstance(m, nn.Dropout),
                            mutable=["intermediates"]), params)
    assert len(jax.tree.leaves(state["intermediates"])) == 18
    print(f"T at w=64: {sum(np.prod(p.shape) for p in jax.tree.leaves(params)):,} parameters")


def test_rescored_actions_see_the_rollouts_dropout():
    """T's action log-probabilities are recomputed after the rollout: they must use the dropout
    masks the actions were drawn under. A policy that is all dropout (logits 1e3 on the kept
    actions, 0 on the dropped) draws a kept action; re-scored under the same masks it keeps
    log-probability -log(#kept) > -log(33), under other masks about -1e3."""
    def policy(x, e, key):
        del e
        return 1e3 * jax.random.bernoulli(key, 0.5, (x.shape[0], 33)).astype(jnp.float32)

    @jax.jit
    def run(x01):
        roll = episodes.rollout(policy, x01, jax.random.key(7), mode="transform", num_steps=3,
                                fill=FILL)
        other = roll._replace(dropout_keys=jax.random.split(jax.random.key(8), 3))
        return episodes.action_log_probs(policy, roll)[0], episodes.action_log_probs(policy, other)[0]

    same, other = run(_images01(8))
    assert same.shape == (8, 3)
    assert np.all(np.asarray(same) > -np.log(33) - 1e-3), same
    assert np.mean(np.asarray(other) < -100) > 0.25  # a kept action is dropped half the time


def test_mix_batch_transforms_the_bernoulli_drawn_images():
    """AdaCutout's N batch (thesis: probability 0.3): image i is transformed exactly where the
    drawn mask is set, and the mask's rate is 0.3 within 4 binomial sigmas over 4096 images; an
    inactive step (after the stop) keeps every image clean."""
    n = 4096
    clean = jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[:, None, None, None], (n, 2, 2, 1))
    prob = at.THESIS_DEFAULTS["cutout"]["apply_prob"]
    assert prob == 0.3 == at.THESIS_DEFAULTS["erasing"]["apply_prob"]
    mix = jax.jit(at.mix_batch)
    mixed, mask = mix(jax.random.key(0), -clean, clean, prob, jnp.asarray(True))
    mask = np.asarray(mask)
    np.testing.assert_array_equal(np.asarray(mixed), np.where(mask[:, None, None, None],
                                                              -np.asarray(clean), clean))
    sigma = np.sqrt(prob * (1 - prob) / n)
    print(f"AdaCutout: {mask.mean():.4f} of {n} images transformed (0.3 +- {4 * sigma:.4f})")
    assert abs(mask.mean() - prob) < 4 * sigma
    mixed, mask = mix(jax.random.key(0), -clean, clean, prob, jnp.asarray(False))
    assert not np.any(np.asarray(mask))
    np.testing.assert_array_equal(mixed, clean)


# Arguments.

@pytest.mark.parametrize("kwargs, name", [
    ({"mode": "rotate"}, "mode"),
    ({"num_steps": 0}, "num_steps"),
    ({"samples": 0}, "samples"),
    ({"gamma": 1.5}, "gamma"),
    ({"gamma": -0.1}, "gamma"),
    ({"disc_weight": -1.0}, "disc_weight"),
    ({"entropy_weight": -1.0}, "entropy_weight"),
    ({"cutout_size": 1}, "cutout_size"),
    ({"move_pixels": 0}, "move_pixels"),
    ({"mode": "cutout", "cooperative_test": True}, "cooperative_test"),
    ({"apply_prob": 1.5}, "apply_prob"),
    ({"clean_weight": -1.0}, "clean_weight"),
    ({"update_every": 0}, "update_every"),
    ({"stop_step": -1}, "stop_step"),
    ({"transformer_width": 0}, "transformer_width"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        at.adatransform(TinyNet(), optax.sgd(0.1), **kwargs)


# A short run on the demo data.

def _kl_from_uniform(p):
    p = np.asarray(p, np.float64)
    return float(np.sum(p * np.log(np.maximum(p, 1e-300) * p.shape[-1])))


_action_probs = jax.jit(functools.partial(at.action_probs, transformer=TRANSFORMER),
                        static_argnames="policy")
RUN_STEPS, UPDATE_EVERY = 20, 2  # T and D move on steps 1, 3, ..., N trains clean from step 20


def _changed(old, new):
    return any(np.any(np.asarray(a) != np.asarray(b))
               for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)))


@pytest.fixture(scope="module")
def short_run(unoptimized_xla):
    """20 steps of the method (K = 3, N's batch: every image transformed plus the clean batch, as
    the thesis's defaults for "transform"), T and D every second step, the transforms stopping
    after step 20. Unoptimized XLA from here to the module's end: the tests below check the
    method's steps against each other and second writings, not ops against closed forms."""
    del unoptimized_xla
    images, labels = synthetic.generate(160, seed=0, image_size=16)
    images = images / 255.0
    batches = [{"image": jnp.asarray(images[i:i + 8], jnp.float32),
                "label": jnp.asarray(labels[i:i + 8])} for i in range(0, 160, 8)]
    method = _method(num_steps=3, samples=2, disc_weight=0.1, update_every=UPDATE_EVERY,
                     stop_step=RUN_STEPS, policy_optimizer=optax.adam(1e-2))
    states = [jax.jit(method.init)(jax.random.key(0), batches[0])]
    step = jax.jit(method.step)
    history = []
    for i in range(RUN_STEPS):
        state, metrics = step(states[-1], batches[i % len(batches)], jax.random.key(i))
        states.append(state)
        history.append({k: float(v) for k, v in metrics.items()})
    probe = jnp.asarray(images[:64], jnp.float32)
    return method, step, states, history, probe, batches


def test_short_run_moves_policy_off_uniform(short_run):
    _, _, states, history, probe, _ = short_run
    first, state = states[0], states[-1]
    start = _kl_from_uniform(_action_probs(first, probe))
    assert start < 1e-6  # the zero-initialised output layer: exactly uniform
    kl = _kl_from_uniform(_action_probs(state, probe))
    coop_kl = _kl_from_uniform(_action_probs(state, probe, policy=1))
    print(f"KL from uniform after {RUN_STEPS // UPDATE_EVERY} T updates: competitive {kl:.4f}, "
          f"cooperative {coop_kl:.4f}")
    assert kl > 0.01 and coop_kl > 1e-3, (kl, coop_kl)  # from < 1e-6
    assert history[-1]["policy_entropy"] < np.log(33) - 0.01
    assert int(state.step) == RUN_STEPS and int(state.skipped) == 0
    assert all(np.isfinite(v) for m in history for v in m.values())
    assert {"loss", "accuracy", "policy_entropy", "reward", "coop_reward", "d_loss",
            "d_real", "d_fake", "skipped", "augmented"} <= set(history[-1])
    assert all(m["augmented"] == 1.0 for m in history)  # apply_prob 1 before the stop


def test_transformer_and_discriminator_move_once_per_period(short_run):
    """T and D change on the steps that complete a period of N updates (steps 1, 3, ...: after
    N's 2nd, 4th, ... update) and on no other; the target changes on every step."""
    _, _, states, _, _, _ = short_run
    for i, (old, new) in enumerate(zip(states, states[1:])):
        due = (i + 1) % UPDATE_EVERY == 0
        assert _changed(old.policy, new.policy) == due, i
        assert _changed(old.disc, new.disc) == due, i
        assert _changed(old.target, new.target), i


def _force_hflip(state):
    """Both policies' logits put 1e3 on the horizontal flip (the output layer's kernel is still
    zero): every rollout flips K = 3 times, x_K = hflip(x), with no interpolation."""
    bias = state.policy.params["Dense_0"]["bias"]
    hflip = episodes.TRANSFORM_ACTIONS.index(("hflip", 0.0))
    params = {**state.policy.params, "Dense_0": {**state.policy.params["Dense_0"],
                                                 "bias": bias.at[:, hflip].set(1e3)}}
    return state.replace(policy=state.policy.replace(params=params))


@jax.jit
def _sgd_reference(target, images, labels, flipped_weight, clean_weight):
    """N's update by a second writing: SGD(0.05, momentum 0.9) on flipped_weight x CE(hflip(x))
    + clean_weight x CE(x), the two batches in one training-mode forward (BatchNorm over the
    images it is given: both halves, or x alone when flipped_weight is 0)."""
    flipped = images[:, :, ::-1]
    both = flipped_weight > 0

    def loss(params):
        def forward(inputs):
            logits, updates = TARGET.apply(
                {"params": params, "batch_stats": target.batch_stats}, inputs, train=True,
                mutable=["batch_stats"])
            ce = optax.softmax_cross_entropy_with_integer_labels(
                logits, jnp.tile(labels, inputs.shape[0] // labels.shape[0]))
            return ce, updates["batch_stats"]

        ce_both, stats_both = forward(jnp.concatenate([flipped, images]))
        ce_clean, stats_clean = forward(images)
        n = labels.shape[0]
        value = jnp.where(both, flipped_weight * ce_both[:n].mean()
                          + clean_weight * ce_both[n:].mean(), clean_weight * ce_clean.mean())
        return value, jax.tree.map(lambda a, b: jnp.where(both, a, b), stats_both, stats_clean)

    grads, stats = jax.grad(loss, has_aux=True)(target.params)
    updates, _ = TARGET_OPTIMIZER.update(grads, target.opt_state, target.params)
    return optax.apply_updates(target.params, updates), stats


def _distance(a, b):
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_target_learns_from_clean_and_transformed(short_run):
    """Eq. 3.4: with every rollout ending in hflip(x), N's step is SGD on CE(hflip(x)) + CE(x).
    The old rule (transformed images only) differs from it by far more than the tolerance."""
    _, step, states, _, _, batches = short_run
    state = _force_hflip(states[0])
    new, metrics = step(state, batches[3], jax.random.key(30))
    assert float(metrics["augmented"]) == 1.0
    images, labels = batches[3]["image"], batches[3]["label"]
    params, stats = _sgd_reference(state.target, images, labels, 1.0, 1.0)
    old_rule, _ = _sgd_reference(state.target, images, labels, 1.0, 0.0)
    error, gap = _distance(new.target.params, params), _distance(old_rule, params)
    print(f"N's update vs CE(hflip x) + CE(x): {error:.2e}; vs transformed only: {gap:.2e}")
    assert error < 1e-5 and gap > 100 * error
    assert _distance(new.target.batch_stats, stats) < 1e-5


def test_after_the_stop_the_target_takes_a_supervised_step(short_run):
    """From step 20 (stop_step), N trains on the clean batch alone: its update is a supervised
    SGD step on CE(x) (momentum carried over), whatever T does."""
    _, step, states, _, _, batches = short_run
    state = _force_hflip(states[-1])
    new, metrics = step(state, batches[5], jax.random.key(31))
    assert float(metrics["augmented"]) == 0.0
    params, stats = _sgd_reference(state.target, batches[5]["image"], batches[5]["label"],
                                   0.0, 1.0)
    error = _distance(new.target.params, params)
    print(f"N's update after the stop vs a supervised step: {error:.2e}")
    assert error < 1e-5
    assert _distance(new.target.batch_stats, stats) < 1e-5


def test_predict_applies_the_cooperative_policy_greedily(short_run):
    method, _, states, _, probe, _ = short_run
    first = states[0]
    # Untrained, every action is equally likely and argmax takes action 0 (rotate +2.5) K times.

    @jax.jit
    def expected(target, images):
        rotated = jax.vmap(lambda x: ops.rotate(x, 7.5, FILL, interpolation="bilinear"))(images)
        return predict_target(TARGET, target, rotated)

    np.testing.assert_allclose(jax.jit(method.predict)(first, probe[:8]),
                               expected(first.target, probe[:8]), atol=1e-4)


@pytest.mark.parametrize("index, skipped", [(RUN_STEPS - 1, 3), (RUN_STEPS - 2, 1)])
def test_non_finite_batch_skips_every_update(short_run, index, skipped):
    """On a step where T and D are due, all three updates are skipped and counted; on another,
    only N's (T and D were not to move)."""
    _, step, states, _, _, batches = short_run
    state = states[index]
    bad = {**batches[0], "image": batches[0]["image"].at[0].set(jnp.nan)}
    new, metrics = step(state, bad, jax.random.key(99))
    assert float(metrics["skipped"]) == skipped and int(new.skipped) == int(state.skipped) + skipped
    for old_leaf, new_leaf in zip(jax.tree.leaves((state.target, state.policy, state.disc)),
                                  jax.tree.leaves((new.target, new.policy, new.disc))):
        np.testing.assert_array_equal(old_leaf, new_leaf)


def test_entropy_bonus_raises_the_policies_entropy(short_run):
    """From a trained state, one step (one where T updates) with a large entropy weight leaves
    both policies more uncertain on the probe images than the same step (same batch, key)
    without it."""
    _, step, states, _, probe, batches = short_run
    state = states[RUN_STEPS - 1]
    bonus = _method(num_steps=3, samples=2, disc_weight=0.1, update_every=UPDATE_EVERY,
                    stop_step=RUN_STEPS, policy_optimizer=optax.adam(1e-2), entropy_weight=10.0)
    plain_state, _ = step(state, batches[0], jax.random.key(50))
    bonus_state, _ = jax.jit(bonus.step)(state, batches[0], jax.random.key(50))

    def entropy(s, policy):
        p = np.asarray(_action_probs(s, probe, policy=policy), np.float64)
        return float(-np.sum(p * np.log(np.maximum(p, 1e-300))))

    for policy in (0, 1):
        assert entropy(bonus_state, policy) > entropy(plain_state, policy) + 1e-4, policy


@pytest.mark.slow
def test_policy_update_ascends_the_discounted_rewards(short_run):
    """Slow (a second rollout and policy gradient compile on top of the step's); the fast
    counterparts are test_rewards_telescope, test_returns_and_reinforce_surrogate_by_hand and
    test_discriminator_and_realness_gradient_signs. Step 1 of the run (T's first update) is
    Adam (lr 1e-2) on the gradient of -sum_p mean (R - b) log pi_p(a), written again here: each
    policy on its own episodes (every P-th), its own dropout key, the step's rollout key;
    competitive v = l + 0.1 log D, cooperative v = -l, l the target's eval-mode loss; returns at
    gamma 0.5, baseline the mean over episodes per step. A policy that descended its rewards
    fails."""
    _, _, states, _, _, batches = short_run
    state, new = states[1], states[2]
    images, labels = batches[1]["image"], batches[1]["label"]
    num_policies, copies, num_steps = 2, 4, 3
    disc = models.Normalized(models.Discriminator(), NORM)

    def policy(params):
        def apply(x, extra, key):
            keys = jax.random.split(key, num_policies)
            logits = [TRANSFORMER.apply({"params": jax.tree.map(lambda a, p=p: a[p], params)},
                                        x[p::num_policies], extra[p::num_policies], train=True,
                                        rngs={"dropout": keys[p]})
                      for p in range(num_policies)]
            return jnp.stack(logits, 1).reshape(x.shape[0], -1)
        return apply

    @jax.jit
    def reference(state):
        roll = episodes.rollout(policy(state.policy.params), jnp.repeat(images, copies, 0),
                                jax.random.split(jax.random.key(1), 3)[0], mode="transform",
                                num_steps=num_steps, fill=FILL)
        ys = jnp.repeat(labels, copies)
        losses = jnp.stack([optax.softmax_cross_entropy_with_integer_labels(
            predict_target(TARGET, state.target, x), ys) for x in roll.images])  # [K + 1, N]
        log_d = jnp.stack([log_realness(disc.apply(
            {"params": state.disc.params, "batch_stats": state.disc.batch_stats},
            x[::num_policies], train=False)) for x in roll.images])
        values = [losses[:, ::num_policies] + 0.1 * log_d, -losses[:, 1::num_policies]]
        discount = jnp.asarray([[0.5 ** (t - s) if t >= s else 0.0 for t in range(num_steps)]
                                for s in range(num_steps)])

        def surrogate(params):
            log_p, _ = episodes.action_log_probs(policy(params), roll)  # [N, K]
            total = 0.0
            for p, v in enumerate(values):
                returns = jnp.diff(v, axis=0).T @ discount.T  # [E, K]
                advantage = returns - returns.mean(0)
                total -= jnp.mean(advantage * log_p[p::num_policies])
            return total

        grads = jax.grad(surrogate)(state.policy.params)
        return grads, optax.adam(1e-2).update(grads, state.policy.opt_state,
                                              state.policy.params)[0]

    grads, updates = reference(state)
    moved = 0
    for g, u, old, now in zip(*(jax.tree.leaves(t) for t in (
            grads, updates, state.policy.params, new.policy.params)), strict=True):
        big = np.abs(np.asarray(g)) > 1e-5  # Adam's first step is lr g / |g|: signs of tiny g flip
        moved += int(big.sum())
        np.testing.assert_allclose(np.asarray(now - old)[big], np.asarray(u)[big], atol=1e-5)
    print(f"policy parameters checked: {moved}")
    assert moved > 100
