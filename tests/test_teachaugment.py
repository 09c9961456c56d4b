"""TeachAugment (jaxaug/methods/teachaugment.py): the augmenter's gradient ascends
L_target - L_teacher, the non-saturating loss and the colour regularizer match their formulas,
the augmenter starts at the identity within the paper's bounds, and the step's teacher is the
exact EMA with the augmenter updated on its schedule. TinyNet targets, 16x16 images, an
augmenter of width 8 without dropout; compiles are shared through module fixtures."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyNet, jit_init, numpy_variables

from jaxaug import generators
from jaxaug.methods.teachaugment import augmenter_loss, ema, teachaugment
from jaxaug.objectives import softmax_cross_entropy
from jaxaug.objectives.adversarial import non_saturating_loss
from jaxaug.objectives.regularizers import color_sliced_wasserstein, random_directions

NUM_CLASSES = 10
AUGMENTER = generators.TeachAugmenter(num_classes=NUM_CLASSES, noise_dim=8, hidden=8, dropout=0.0)


@pytest.fixture(scope="module")
def tiny():
    """Images (two with a 2-pixel black border, a random crop's zero padding), labels, target and
    teacher variables (different draws) and the augmenter's initial parameters."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0.05, 1.0, (8, 16, 16, 3)).astype(np.float32)
    images[:2, :2], images[:2, :, -2:] = 0.0, 0.0
    images = jnp.asarray(images)
    labels = jnp.asarray(rng.integers(0, NUM_CLASSES, 8), jnp.int32)
    shapes = jax.eval_shape(TinyNet().init, jax.random.key(0), images)
    target, teacher = numpy_variables(shapes, seed=0), numpy_variables(shapes, seed=1)
    phi = jit_init(AUGMENTER.init, {"params": jax.random.key(2), "noise": jax.random.key(3)},
                   images, jax.nn.one_hot(labels, NUM_CLASSES), train=False)["params"]
    return images, labels, target, teacher, phi


@functools.cache
def _program():
    """The one jitted program of the augmenter tests, (phi, images, labels, target, teacher,
    key) -> (L_aug, d L_aug / d phi, D, outputs): L_aug from `augmenter_loss` with the objective
    as written (adversarial="cross_entropy", no colour regularizer, no smoothing); D =
    L_target - L_teacher and the augmenter's outputs (with "colored", the colour transform
    applied, and "augmented", then the geometric one) recomputed here from the same draws."""
    objective = jax.value_and_grad(functools.partial(
        augmenter_loss, augmenter=AUGMENTER, model=TinyNet(), num_classes=NUM_CLASSES,
        adversarial="cross_entropy", adv_label_smoothing=0.0, color_reg=0.0), has_aux=True)

    def run(phi, images, labels, target, teacher, key):
        (value, _), grads = objective(phi, images, labels, target["params"],
                                      target["batch_stats"], teacher["params"], key)
        noise = jax.random.split(jax.random.split(key, 4)[0])[0]  # augmenter_loss's draws
        out = AUGMENTER.apply({"params": phi}, images, jax.nn.one_hot(labels, NUM_CLASSES),
                              train=True, rngs={"noise": noise})
        colored = generators.apply_color(images, out["scale"], out["shift"])
        augmented = generators.apply_geometric(colored, out["theta"])

        def loss(variables):
            logits, _ = TinyNet().apply(variables, augmented, train=True, mutable=["batch_stats"])
            return softmax_cross_entropy(logits, labels).mean()
        outputs = {**out, "colored": colored, "augmented": augmented}
        return value, grads, loss(target) - loss(teacher), outputs
    return jax.jit(run)


def test_non_saturating_loss_formula_and_its_gradient_opposes_cross_entropy():
    """loss = -mean_i sum_k q_ik log(1 - p_ik), q smoothed; per example with eps = 0,
    d NS / d logits = -p_y / (1 - p_y) d CE / d logits: the augmenter's NS term pushes the
    target's loss up, the direction of the paper's max L_target."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, NUM_CLASSES)).astype(np.float32) * 2
    labels = np.array([0, 3, 3, 9])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    q = 0.8 * np.eye(NUM_CLASSES)[labels] + 0.2 / NUM_CLASSES
    expected = -np.mean(np.sum(q * np.log(1 - p + 1e-12), -1))
    losses = jax.jit(lambda z, y, q: (non_saturating_loss(z, y, label_smoothing=0.2),
                                      non_saturating_loss(z, q)))  # soft labels, no smoothing
    for got in losses(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(q)):
        np.testing.assert_allclose(got, expected, rtol=1e-5)

    @jax.jit
    def gradients(logits, labels):
        def per_example(loss):
            return jax.vmap(jax.grad(lambda z, y: loss(z[None], y[None])))(logits, labels)
        return (per_example(non_saturating_loss),
                per_example(lambda z, y: softmax_cross_entropy(z, y).mean()))

    g_ns, g_ce = gradients(jnp.asarray(logits), jnp.asarray(labels))
    p_y = p[np.arange(4), labels][:, None]
    np.testing.assert_allclose(g_ns, -p_y / (1 - p_y) * np.asarray(g_ce), rtol=1e-4, atol=1e-6)


def test_color_sliced_wasserstein_matches_its_formula():
    """mean (sort(<x, d>) - sort(<x', d>))^2, sorted across the batch (the reference) or across
    each image's pixels (the paper's colour distributions), against numpy."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2, 3, 4, 5, 3)).astype(np.float32)
    directions = random_directions(jax.random.key(0), 3, 16)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, rtol=1e-5)
    d = np.asarray(directions)
    px, py = x.reshape(3, 20, 3) @ d, y.reshape(3, 20, 3) @ d
    for over, axis in (("batch", 0), ("pixels", 1)):
        expected = np.mean((np.sort(px, axis) - np.sort(py, axis)) ** 2)
        got = color_sliced_wasserstein(jnp.asarray(x), jnp.asarray(y), directions, over=over)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    # A permutation of each image's pixels keeps its colour distribution: 0 over pixels only.
    shuffled = x.reshape(3, 20, 3)[:, rng.permutation(20)].reshape(x.shape)
    assert float(color_sliced_wasserstein(jnp.asarray(x), jnp.asarray(shuffled), directions,
                                          over="pixels")) < 1e-10
    assert float(color_sliced_wasserstein(jnp.asarray(x), jnp.asarray(shuffled), directions)) > 0.1
    with pytest.raises(ValueError, match="over"):
        color_sliced_wasserstein(jnp.asarray(x), jnp.asarray(y), directions, over="image")


def test_augmenter_starts_at_the_identity_within_the_papers_bounds(tiny):
    """At initialisation alpha = 1, beta = 0, A = I (up to rounding) and a(x) = x; with any output
    weights alpha stays in 1 +- 0.8 / 2, |beta| <= 1/2, |A - I| <= 0.5 / 2 (the colour and
    geometric scales), and the zero padding stays black."""
    images, labels, target, teacher, phi = tiny

    def apply(phi):
        return _program()(phi, images, labels, target, teacher, jax.random.key(4))[3]

    out = apply(phi)
    np.testing.assert_allclose(out["scale"], 1.0, atol=1e-6)  # (1 - p) + p, rounded
    np.testing.assert_array_equal(out["shift"], 0.0)
    np.testing.assert_allclose(out["theta"], np.broadcast_to(np.eye(2, 3), (8, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(out["augmented"], images, atol=1e-5)

    rng = np.random.default_rng(3)
    def perturb(path, v):  # large random output layers, random application always on
        name = jax.tree_util.keystr(path)
        if "logits" in name:
            return jnp.full_like(v, 10.0)
        if any(k in name for k in ("out", "geometric", "global")):
            return v + 20 * rng.normal(size=v.shape).astype(np.float32)
        return v

    strong = jax.tree_util.tree_map_with_path(perturb, phi)
    out = apply(strong)
    scale, shift, theta = (np.asarray(out[k]) for k in ("scale", "shift", "theta"))
    assert 0.6 - 1e-6 <= scale.min() and scale.max() <= 1.4 + 1e-6
    assert np.abs(shift).max() <= 0.5 + 1e-6
    assert np.abs(theta - np.eye(2, 3)).max() <= 0.25 + 1e-6
    assert np.abs(scale - 1).max() > 0.2 and np.abs(theta - np.eye(2, 3)).max() > 0.1
    colored = out["colored"]
    np.testing.assert_array_equal(colored[:2, :2], 0.0)
    np.testing.assert_array_equal(colored[:2, :, -2:], 0.0)
    assert float(jnp.abs(colored[:2, 2:, :-2] - images[:2, 2:, :-2]).max()) > 0.1


def test_augmenter_gradient_ascends_target_minus_teacher(tiny):
    """With the objective as written (adversarial="cross_entropy", no colour regularizer, no
    smoothing) the augmenter minimises L_aug = -(L_target - L_teacher). Its gradient g, from
    `augmenter_loss`, against D = L_target - L_teacher computed again from the augmenter's
    samples (`_program`): L_aug = -D, and a step along -g raises D at rate |g| (central
    difference), away from the identity (phi perturbed) and with a teacher unlike the target."""
    images, labels, target, teacher, phi = tiny
    rng = np.random.default_rng(5)
    phi = jax.tree.map(lambda v: v + 0.3 * rng.normal(size=v.shape).astype(np.float32), phi)
    key = jax.random.key(6)

    def loss_gradient_and_difference(phi):
        return _program()(phi, images, labels, target, teacher, key)[:3]

    value, grads, difference = loss_gradient_and_difference(phi)
    np.testing.assert_allclose(value, -difference, rtol=1e-5)
    grads = jax.tree.map(np.asarray, grads)
    norm = float(np.sqrt(sum(np.sum(g**2) for g in jax.tree.leaves(grads))))
    assert norm > 1e-3
    h = 1e-2 / norm
    up = loss_gradient_and_difference(jax.tree.map(lambda p, g: p - h * g / norm, phi, grads))[2]
    down = loss_gradient_and_difference(jax.tree.map(lambda p, g: p + h * g / norm, phi, grads))[2]
    rate = float(up - down) / (2 * h)
    print(f"|g| {norm:.4f}, central difference of D along -g/|g| {rate:.4f}")
    assert rate > 0
    np.testing.assert_allclose(rate, norm, rtol=0.05)


@pytest.fixture(scope="module")
def three_steps(tiny):
    """Three steps of the method (update_every 2, ema_rate 0.9) from one compile: the states
    before and after each."""
    images, labels, *_ = tiny
    method = teachaugment(TinyNet(), optax.sgd(0.1), num_classes=NUM_CLASSES, ema_rate=0.9,
                          update_every=2, noise_dim=8, hidden=8, dropout=0.0, projections=8)
    batch = {"image": images, "label": labels}
    with jax.threefry_partitionable(False):
        state = jit_init(method.init, jax.random.key(0), batch)
        step = jax.jit(method.step)
        states = [state]
        for i in range(3):
            state, _ = step(state, batch, jax.random.key(10 + i))
            states.append(state)
    return states


def test_ema_closed_form():
    """`ema`: r t + (1 - r) p leaf by leaf, what the step applies to the teacher (checked through
    the step by the slow test_step_teacher_is_the_exact_ema_and_augmenter_updates_on_schedule)."""
    teacher = {"a": jnp.asarray([1.0, -2.0]), "b": {"c": jnp.asarray(3.0)}}
    params = {"a": jnp.asarray([5.0, 0.0]), "b": {"c": jnp.asarray(-1.0)}}
    out = ema(teacher, params, 0.75)
    np.testing.assert_allclose(out["a"], [2.0, -1.5])
    np.testing.assert_allclose(out["b"]["c"], 2.0)


@pytest.mark.slow
def test_step_teacher_is_the_exact_ema_and_augmenter_updates_on_schedule(three_steps):
    """Slow (a step compile, about 9 s of CPU); the fast counterparts are test_ema_closed_form
    and test_augmenter_gradient_ascends_target_minus_teacher.

    teacher_k = r teacher_(k-1) + (1 - r) theta_k with theta_k the target before step k and
    teacher_0 = theta_0 (the copy PyTorch's AveragedModel starts from); the augmenter changes on
    steps 0 and 2 only (every 2nd), and the target on every step."""
    states = three_steps
    thetas = [jax.tree.leaves(s.target.params) for s in states]
    expected = [np.asarray(t, np.float64) for t in thetas[0]]
    for k in range(3):
        expected = [0.9 * e + 0.1 * np.asarray(t, np.float64) for e, t in zip(expected, thetas[k])]
        for got, want in zip(jax.tree.leaves(states[k + 1].teacher), expected):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(jax.tree.leaves(states[3].teacher)[0], thetas[0][0])

    def changed(a, b):
        return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    augmenters = [s.augmenter.params for s in states]
    assert [changed(augmenters[k], augmenters[k + 1]) for k in range(3)] == [True, False, True]
    assert all(changed(states[k].target.params, states[k + 1].target.params) for k in range(3))
    assert int(states[3].step) == 3 and int(states[3].skipped) == 0


@pytest.mark.slow
def test_select_schedule_matches_the_conditional(tiny, three_steps):
    """``conditional=False`` (the off-schedule augmenter update computed, then dropped by a
    select) gives the states of the default lax.cond. Slow: a second step compile; the fast
    counterpart of its parts is test_ema_closed_form."""
    images, labels, *_ = tiny
    method = teachaugment(TinyNet(), optax.sgd(0.1), num_classes=NUM_CLASSES, ema_rate=0.9,
                          update_every=2, noise_dim=8, hidden=8, dropout=0.0, projections=8,
                          conditional=False)
    batch = {"image": images, "label": labels}
    with jax.threefry_partitionable(False):
        state = jit_init(method.init, jax.random.key(0), batch)
        step = jax.jit(method.step)
        for i in range(3):
            state, _ = step(state, batch, jax.random.key(10 + i))
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(three_steps[3])):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bad_arguments_name_the_field():
    for kwargs, field in (({"update_every": 0}, "update_every"), ({"ema_rate": 1.0}, "ema_rate"),
                          ({"adversarial": "hinge"}, "adversarial"),
                          ({"color_reg_over": "image"}, "color_reg_over")):
        with pytest.raises(ValueError, match=field):
            teachaugment(TinyNet(), optax.sgd(0.1), **kwargs)


@pytest.mark.slow
def test_step_descends_the_augmenter_loss(tiny, three_steps):
    """Slow (a gradient compile of the full augmenter loss on top of the step's); the fast
    counterpart is test_augmenter_gradient_ascends_target_minus_teacher. Step 0's augmenter
    update is AdamW (lr 1e-3, weight decay 1e-2) on d L_aug / d phi, L_aug from `augmenter_loss`
    with the step's defaults (non-saturating, smoothing 0.1, colour weight 10), the step's key
    and the teacher after the step's EMA: an update that ascended L_aug would fail."""
    images, labels, *_ = tiny
    before, after = three_steps[0], three_steps[1]
    teacher = ema(before.teacher, before.target.params, 0.9)
    augmenter = generators.TeachAugmenter(num_classes=NUM_CLASSES, noise_dim=8, hidden=8,
                                          dropout=0.0)

    @jax.jit
    def reference(phi, opt_state, target, teacher, key):
        grads = jax.grad(lambda p: augmenter_loss(
            p, images, labels, target.params, target.batch_stats, teacher, key,
            augmenter=augmenter, model=TinyNet(), num_classes=NUM_CLASSES, projections=8)[0])(phi)
        return grads, optax.adamw(1e-3, weight_decay=1e-2).update(grads, opt_state, phi)[0]

    with jax.threefry_partitionable(False):
        aug_key = jax.random.split(jax.random.key(10), 4)[0]
        grads, updates = reference(before.augmenter.params, before.augmenter.opt_state,
                                   before.target, teacher, aug_key)
    moved = 0
    for g, u, old, new in zip(*(jax.tree.leaves(t) for t in (
            grads, updates, before.augmenter.params, after.augmenter.params)), strict=True):
        big = np.abs(np.asarray(g)) > 1e-6  # Adam's first step is lr g / |g|: signs of tiny g flip
        moved += int(big.sum())
        np.testing.assert_allclose(np.asarray(new - old)[big], np.asarray(u)[big], atol=1e-6)
    assert moved > 100
