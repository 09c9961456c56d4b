"""TANDA: log-probabilities of sampled TF sequences, the entropy bonus, the discriminator and
REINFORCE gradient signs, TF application, what D sees as real, the diversity term, a short GAN
run that moves the generator off uniform, the warm-up switch of the target's inputs, and argument
validation."""

import functools
import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyNet

from jaxaug import models, objectives, ops
from jaxaug.data import synthetic
from jaxaug.generators.sequence import MeanFieldGenerator
from jaxaug.methods import tanda as tn
from jaxaug.models.discriminator import Discriminator
from jaxaug.objectives import tanda as tanda_objectives
from jaxaug.ops.geometry import GREY
from jaxaug.policies import sequences as tf_sequences
from jaxaug.train.config import base_config

# A small vocabulary for the tests: one TF (invert) a discriminator spots at once.
TFS = (("rotate", 3), ("rotate", -3), ("shear_x", -2), ("brightness", 7), ("contrast", 3),
       ("color", 3), ("invert", 0))
INVERT = TFS.index(("invert", 0))
K, L = len(TFS), 2
WARMUP = 3


def _demo_data(n=96, size=16):
    """Demo-dataset images in [0, 1] and the normalization by their per-channel mean and std."""
    images, labels = synthetic.generate(n, seed=0, image_size=size)
    x01 = images.astype(np.float32) / 255
    return x01, labels, models.Normalization(x01.mean((0, 1, 2)), x01.std((0, 1, 2)))


IMAGES, LABELS, NORM = _demo_data()
# The networks as the config path builds them: the normalization first.
TARGET, DISC = models.Normalized(TinyNet(), NORM), models.Normalized(Discriminator(width=8), NORM)
TARGET_LR = 0.1


def _batch(i, n=8):
    index = np.arange(i * n, (i + 1) * n) % len(IMAGES)
    return {"image": jnp.asarray(IMAGES[index]), "label": jnp.asarray(LABELS[index])}


# The diversity weight of the tests' step: small enough that the short GAN runs below follow D
# alone (invert twice is the identity, which the default 1e-3 prices at up to 1e3 per image),
# large enough that the step's reward visibly carries the term.
DIVERSITY = 1e-6


def _method(generator, gen_lr=0.05):
    return tn.tanda(TARGET, optax.sgd(TARGET_LR), generator=generator,
                    sequence_length=L, tfs=TFS, warmup_steps=WARMUP,
                    generator_optimizer=optax.adam(gen_lr),
                    disc_optimizer=optax.adam(2e-3, b1=0.5), discriminator=DISC,
                    diversity_weight=DIVERSITY)


def _init(method):
    """The method's initial state. With the default partitionable threefry, XLA on CPU takes
    about 10 s to compile each random draw of a 4-D convolution kernel; the classic threefry
    compiles them in under a second (only the initial values differ)."""
    with jax.threefry_partitionable(False):
        return jax.jit(method.init)(jax.random.key(0), _batch(0))


@functools.cache
def _generator(kind):
    """A generator of the test vocabulary and its initial params (uniform for mean-field)."""
    gen = _method(kind).generator
    with jax.threefry_partitionable(False):
        return gen, jax.jit(gen.init)(jax.random.key(3))


@pytest.fixture(scope="module")
def mean_field():
    """The mean-field method with its jitted step (compiled once for every test that uses it)."""
    method = _method("mean_field")
    return method, jax.jit(method.step), _init(method)


@jax.jit
def _steps(gen_params, images, key):
    """The step's sequences and incremental transforms [L + 1, B, ...], rebuilt from its key (the
    step's split)."""
    sample_key, apply_key, _, _ = jax.random.split(key, 4)
    sequences, _, _ = MeanFieldGenerator(K, L).sample(gen_params, sample_key, images.shape[0])
    return sequences, tf_sequences.incremental_inputs(apply_key, images, sequences, TFS)


def _d_inputs(gen_params, images, key):
    """The step's real and augmented batches for D."""
    steps = _steps(gen_params, images, key)[1]
    return steps[0], steps[-1]


def _fake_batch(gen_params, images, key):
    return _d_inputs(gen_params, images, key)[1]


def _kl_to_uniform(probs):
    """sum_t KL(p_t || uniform) = sum_t (log K - H(p_t))."""
    probs = np.asarray(probs, np.float64)
    return float(np.sum(np.log(K) + np.sum(probs * np.log(np.maximum(probs, 1e-12)), -1)))


# 1. Log-probabilities of sampled sequences --------------------------------------------------
def _find(tree, name):
    """The subtree called ``name`` at any depth of a parameter tree."""
    if name in tree:
        return tree[name]
    found = [_find(sub, name) for sub in tree.values() if isinstance(sub, dict)]
    return next(f for f in found if f is not None) if any(f is not None for f in found) else None


def _lstm_log_probs(gen, params, sequences):
    """A second writing of the LSTM generator's sequence log-probability, from its parameters:
    the start embedding in, then at every position the head's log-softmax at the sampled TF,
    whose embedding is the next input; returns sum_t log pi(tau_t | tau_<t) [N]."""
    p = {name: _find(params, name) for name in ("start", "lstm", "head_0", "embed_0")}
    cell = nn.OptimizedLSTMCell(gen.hidden)
    n = sequences.shape[0]
    inputs = jnp.broadcast_to(p["start"], (n, gen.embedding))
    carry = (jnp.zeros((n, gen.hidden)), jnp.zeros((n, gen.hidden)))
    total = jnp.zeros(n)
    for t in range(sequences.shape[1]):
        carry, out = cell.apply({"params": p["lstm"]}, carry, inputs)
        logits = out @ p["head_0"]["kernel"] + p["head_0"]["bias"]
        total += jax.nn.log_softmax(logits)[jnp.arange(n), sequences[:, t]]
        inputs = p["embed_0"]["embedding"][sequences[:, t]]
    return total


@pytest.mark.parametrize("kind", ["mean_field", "lstm"])
def test_sequence_log_prob_is_the_sum_over_its_sampled_tfs(kind):
    gen, params = _generator(kind)
    if kind == "mean_field":  # off uniform, so that every TF has its own log-probability
        params = {"logits": jax.random.normal(jax.random.key(4), (L, K))}

    @jax.jit
    def sample_and_rescore(params, key):
        sequences, log_probs, entropies = gen.sample(params, key, 256)
        if kind == "mean_field":
            expected = jax.nn.log_softmax(params["logits"])[jnp.arange(L), sequences].sum(1)
        else:
            expected = _lstm_log_probs(gen, params, sequences)
        # The step's REINFORCE term re-scores the sampled sequences (teacher-forced for the LSTM).
        return sequences, log_probs, entropies, expected, gen.score(params, sequences)[0]

    sequences, log_probs, entropies, expected, rescored = sample_and_rescore(
        params, jax.random.key(5))
    assert sequences.shape == log_probs.shape == entropies.shape == (256, L)
    assert sequences.min() >= 0 and sequences.max() < K
    np.testing.assert_allclose(log_probs.sum(1), expected, rtol=1e-5, atol=1e-5)
    assert np.std(np.asarray(expected)) > 1e-3  # the sequences do differ in probability
    np.testing.assert_allclose(rescored, log_probs, rtol=1e-5, atol=1e-6)


# 2. The entropy bonus ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mean_field", "lstm"])
def test_entropy_bonus_raises_the_entropy(kind):
    """With rewards 0 the generator loss is -lambda H; one gradient step on it raises H (of the
    whole distribution for mean-field, of the re-scored fixed sequences for the LSTM)."""
    gen, params = _generator(kind)
    # Both start near uniform, the maximum, where the gradient vanishes: sharpen them first.
    params = jax.tree.map(lambda p: 8.0 * p, params)
    if kind == "mean_field":
        params = {"logits": 2.0 * jax.random.normal(jax.random.key(7), (L, K))}
    sequences, _, _ = jax.jit(gen.sample, static_argnums=2)(params, jax.random.key(8), 64)

    @jax.jit
    def loss_and_entropy(p):
        log_probs, entropies = gen.score(p, sequences)
        loss = tanda_objectives.generator_loss(log_probs, entropies, jnp.zeros(64), entropy_weight=0.1)
        return loss, jnp.mean(entropies.sum(1))

    (loss, entropy), grads = jax.value_and_grad(loss_and_entropy, has_aux=True)(params)
    stepped = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
    assert entropy < 0.9 * L * np.log(K)
    assert loss_and_entropy(stepped)[1] > entropy + 1e-3
    np.testing.assert_allclose(loss, -0.1 * entropy, rtol=1e-5)


# 3. Gradient signs -----------------------------------------------------------------------------
def test_discriminator_loss_raises_real_and_lowers_fake_logits():
    real, fake = jnp.asarray([-1.0, 0.0, 2.0]), jnp.asarray([-2.0, 0.5, 1.0])
    g_real, g_fake = jax.grad(lambda r, f: objectives.discriminator_loss(r, f)[0],
                              argnums=(0, 1))(real, fake)
    assert np.all(g_real < 0) and np.all(g_fake > 0)  # descent: real logits up, fake down
    # The generator's reward log D rises with D's logit: fooling D pays.
    assert np.all(np.diff(objectives.log_realness(jnp.asarray([-3.0, 0.0, 3.0]))) > 0)


@jax.jit
def _d_logits(d, images):
    """D's training-mode logits of ``images`` and its hidden layers' activations."""
    logits, updates = DISC.apply(
        {"params": d.params, "batch_stats": d.batch_stats}, images, train=True,
        mutable=["batch_stats", "intermediates"])
    return logits, updates["intermediates"]["features"]


@jax.jit
def _d_eval(d, images):
    """D's inference-mode logits of ``images`` and its convolutions' outputs."""
    logits, sown = DISC.apply(
        {"params": d.params, "batch_stats": d.batch_stats}, images, train=False,
        mutable=["intermediates"])
    return logits, sown["intermediates"]["features"]


def _d_loss(d, real, fake):
    return objectives.discriminator_loss(*jnp.split(_d_logits(d, jnp.concatenate([real, fake]))[0],
                                                    2))[0]


def test_step_trains_the_discriminator_to_separate_real_from_augmented(mean_field):
    _, step, state = mean_field
    batch, key = _batch(1), jax.random.key(11)
    new, metrics = step(state, batch, key)
    real, fake = _d_inputs(state.generator.params, batch["image"], key)
    before, after = _d_loss(state.discriminator, real, fake), _d_loss(new.discriminator, real,
                                                                      fake)
    np.testing.assert_allclose(metrics["d_loss"], before, rtol=1e-4)
    assert after < before - 1e-3


@pytest.mark.parametrize("kind", ["mean_field", "lstm"])
def test_reinforce_moves_probability_toward_tfs_that_fool_a_fixed_discriminator(kind):
    """A bandit: a fixed fake D whose logit for h_tau(x) is the sum of per-TF scores, so the
    reward log D is highest for sequences of the best TF and lowest for the worst."""
    gen, params = _generator(kind)
    scores = jnp.linspace(-3.0, 1.0, K)  # TF K-1 fools D best, TF 0 worst
    best, worst = K - 1, 0
    optimizer = optax.adam(0.05)

    @jax.jit
    def update(params, opt_state, key):
        sequences, _, _ = gen.sample(params, key, 256)
        rewards = objectives.log_realness(scores[sequences].sum(1))

        def loss(p):
            log_probs, entropies = gen.score(p, sequences)
            return tanda_objectives.generator_loss(log_probs, entropies, rewards, entropy_weight=0.0)

        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, grads

    opt_state = optimizer.init(params)
    marginals = jax.jit(gen.marginals)
    start = np.asarray(marginals(params, jax.random.key(13)))
    for i in range(25):
        params, opt_state, grads = update(params, opt_state, jax.random.key(100 + i))
        if kind == "mean_field" and i == 0:  # from uniform: descent raises best, lowers worst
            assert np.all(grads["logits"][:, best] < 0) and np.all(grads["logits"][:, worst] > 0)
    end = np.asarray(marginals(params, jax.random.key(13)))
    assert np.all(end[:, best] > start[:, best] + 0.1)
    assert np.all(end[:, worst] < start[:, worst] - 0.05)


# 4. Applying TF sequences ---------------------------------------------------------------------
def _image(seed=0, size=16):
    return jnp.asarray(np.random.default_rng(seed).uniform(0.1, 0.9, (size, size, 3)),
                       jnp.float32)


def test_tf_table_has_fixed_signed_parameters():
    op_names, op_index, value = tf_sequences.tf_table(TFS, 16)
    assert [op_names[i] for i in op_index] == [name for name, _ in TFS]
    # rotate 3 = 9 degrees, its mirror -9; shear -2 = -0.06; enhance 7 = 1.36, 3 = 0.64.
    np.testing.assert_allclose(value[:6], [9.0, -9.0, -0.06, 1.36, 0.64, 0.64], rtol=1e-6)


_apply_tfs = jax.jit(tf_sequences.apply_tfs, static_argnums=3)


def _sequence(*tfs):
    return jnp.asarray([TFS.index(tf) for tf in tfs])


def test_point_tfs_apply_one_after_another():
    img = _image()
    out = _apply_tfs(jax.random.key(0), img, _sequence(("brightness", 7), ("contrast", 3)), TFS)
    np.testing.assert_allclose(out, ops.contrast(ops.brightness(img, 1.36), 0.64), atol=1e-6)
    assert np.abs(np.asarray(out - img)).max() > 0.05
    # A point TF then a geometric one: in order, the warp last.
    out = _apply_tfs(jax.random.key(0), img, _sequence(("color", 3), ("rotate", -3)), TFS)
    expected = ops.affine(ops.color(img, 0.64), ops.rotate_matrix(-9.0, 16, 16),
                          interpolation="bilinear", fill=GREY)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_geometric_tfs_are_one_resampling_of_their_composition():
    img = _image(1)
    rotate, shear = ops.rotate_matrix(9.0, 16, 16), ops.shear_x_matrix(-0.06)
    out = _apply_tfs(jax.random.key(0), img, _sequence(("rotate", 3), ("shear_x", -2)), TFS)
    chain, _ = ops.warp_chain(img, jnp.stack([rotate, shear]), interpolation="bilinear",
                              fill=GREY)
    np.testing.assert_allclose(out, chain, atol=1e-6)
    # Away from the border (where a chain fills what leaves the frame at any warp) that is the
    # composed matrix resampled once; two resamplings blur more.
    once = ops.affine(img, ops.compose(rotate, shear), interpolation="bilinear", fill=GREY)
    twice = ops.affine(ops.affine(img, rotate, interpolation="bilinear", fill=GREY), shear,
                       interpolation="bilinear", fill=GREY)
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(out[inner], once[inner], atol=1e-5)
    assert np.abs(np.asarray(out[inner] - twice[inner])).max() > 0.02


def test_augment_applies_each_sequence_with_one_key_per_image():
    batch = _batch(2)["image"]
    sequences = jnp.asarray(np.random.default_rng(2).integers(0, K, (8, L)), jnp.int32)
    out = jax.jit(tf_sequences.augment, static_argnums=3)(jax.random.key(4), batch, sequences, TFS)
    keys = jax.random.split(jax.random.key(4), 8)
    for i in (0, 5):
        expected = _apply_tfs(keys[i], batch[i], sequences[i], TFS)
        np.testing.assert_allclose(out[i], expected, atol=1e-5)


# 5. What D sees as real, and the diversity term -------------------------------------------------
# A vocabulary with identity TFs (rotate by 0 degrees, brightness factor 1) and a geometric one, so
# every sequence goes through the warp.
ID_TFS = (("rotate", 0), ("brightness", 5), ("rotate", 3))
IDENTITY = jnp.zeros((8, L), jnp.int32).at[:, 1].set(1)  # rotate 0, then brightness 1.0
_incremental = jax.jit(tf_sequences.incremental_inputs, static_argnums=3)


def _id_inputs(*args):
    steps = _incremental(*args)
    return steps[0], steps[-1]


def test_step_feeds_d_the_real_images_through_the_augmentation_pipeline(mean_field):
    """The step's D loss is that of (x0, x~) from `incremental_inputs`, and x0, the batch through
    the empty sequence (the identity resampling), is the batch bitwise."""
    _, step, state = mean_field
    batch, key = _batch(4), jax.random.key(12)
    _, metrics = step(state, batch, key)
    real, fake = _d_inputs(state.generator.params, batch["image"], key)
    np.testing.assert_array_equal(real, batch["image"])
    np.testing.assert_allclose(metrics["d_loss"], _d_loss(state.discriminator, real, fake),
                               rtol=1e-5)


def test_d_cannot_tell_real_from_identity_augmented_images(mean_field):
    """Identity sequences give D bitwise the real images, so equal logits and accuracy 1/2 for any
    D (here the fixture's D after a few training steps)."""
    _, step, state = mean_field
    state, _ = _run(step, state, 3)
    images = _batch(5)["image"]
    real, fake = _id_inputs(jax.random.key(0), images, IDENTITY, ID_TFS)
    np.testing.assert_array_equal(real, fake)
    logits, _ = _d_logits(state.discriminator, jnp.concatenate([real, fake]))
    real_logits, fake_logits = jnp.split(logits, 2)
    np.testing.assert_array_equal(real_logits, fake_logits)
    accuracy = objectives.discriminator_loss(real_logits, fake_logits)[1]["d_accuracy"]
    assert float(accuracy) == 0.5
    # The geometric TF does change what D sees.
    rotated = jnp.full((8, L), 2, jnp.int32)
    real, fake = _id_inputs(jax.random.key(0), images, rotated, ID_TFS)
    assert float(jnp.abs(real - fake).max()) > 0.1


def test_diversity_penalty_is_its_closed_form():
    real = jnp.zeros((2, 2, 2, 1))
    fake = jnp.asarray([[[[1.0], [0.0]], [[0.0], [0.0]]],  # MSE 1/4
                        [[[2.0], [2.0]], [[0.0], [0.0]]]])  # MSE 2
    np.testing.assert_allclose(tanda_objectives.diversity_penalty(real, fake, 0.5),
                               [0.5 / (0.25 + 1e-6), 0.5 / (2.0 + 1e-6)], rtol=1e-6)
    np.testing.assert_allclose(tanda_objectives.diversity_penalty(real, real, 1e-3), 1e-3 / 1e-6, rtol=1e-6)


def test_incremental_inputs_are_the_prefixes_of_each_sequence():
    """Row 0 is the batch itself, row 1 the batch through the one-TF sequences tau_1, row L
    through the whole sequences, each with the image's own key."""
    images = _batch(9)["image"]
    sequences = jnp.asarray(np.random.default_rng(9).integers(0, K, (8, L)), jnp.int32)
    steps = _incremental(jax.random.key(3), images, sequences, TFS)
    assert steps.shape == (L + 1, *images.shape)
    augment = jax.jit(tf_sequences.augment, static_argnums=3)
    np.testing.assert_allclose(steps[0], images, atol=1e-5)
    np.testing.assert_allclose(steps[1], augment(jax.random.key(3), images, sequences[:, :1], TFS),
                               atol=1e-5)
    np.testing.assert_allclose(steps[L], augment(jax.random.key(3), images, sequences, TFS),
                               atol=1e-5)
    assert float(jnp.abs(steps[1] - steps[0]).max()) > 0.1


def test_generator_returns_are_discounted_loss_changes():
    losses = jnp.asarray([[1.0, 3.0, 2.0], [0.5, 0.5, 4.0]])  # l^0, l^1, l^2 of two images
    # d = (2, -1) and (0, 3.5): R^1 = d^1 + gamma d^2, R^2 = d^2.
    np.testing.assert_allclose(tanda_objectives.generator_returns(losses, 0.5), [[1.5, -1.0], [1.75, 3.5]])
    np.testing.assert_allclose(tanda_objectives.generator_returns(losses, 1.0), [[1.0, -1.0], [3.5, 3.5]])
    np.testing.assert_allclose(tanda_objectives.generator_returns(losses, 0.0), [[2.0, -1.0], [0.0, 3.5]])


def test_generator_loss_has_a_baseline_per_position():
    """L_G = -mean_i sum_t (r_it - b_t) log pi_it with b_t the batch mean at position t."""
    log_probs = jnp.log(jnp.asarray([[0.2, 0.5], [0.4, 0.1], [0.3, 0.3]]))
    rewards = jnp.asarray([[1.0, -2.0], [3.0, 0.0], [-1.0, 5.0]])
    advantages = np.asarray(rewards) - np.asarray(rewards).mean(0)
    expected = -np.mean(np.sum(advantages * np.asarray(log_probs), 1))
    np.testing.assert_allclose(tanda_objectives.generator_loss(log_probs, jnp.zeros((3, 2)), rewards, 0.0),
                               expected, rtol=1e-6)


@pytest.mark.parametrize("space, layer", [("pixels", 0), ("discriminator", 0),
                                          ("discriminator", 1)])
def test_transform_losses_take_the_penalty_in_the_chosen_space(mean_field, space, layer):
    """l^t = -log D(x^t) + mu / (MSE(phi(x^0), phi(x^t)) + eps), D's input or its layer."""
    _, _, state = mean_field
    steps = _steps(state.generator.params, _batch(6)["image"], jax.random.key(6))[1]
    logits, features = _d_eval(state.discriminator, steps.reshape(-1, *steps.shape[2:]))
    assert len(features) == 2  # 16 -> 8 -> 4: layer 1 is the first, layer 0 the last
    phi = steps if space == "pixels" else features[-(layer + 1)].reshape(
        L + 1, 8, *features[-(layer + 1)].shape[1:])
    logits = logits.reshape(L + 1, 8)
    losses = tanda_objectives.transform_losses(logits, phi, 0.01)
    assert losses.shape == (8, L + 1)
    phi = np.asarray(phi, np.float64).reshape(L + 1, 8, -1)
    mse = np.mean(np.square(phi - phi[:1]), axis=-1)
    expected = -np.asarray(jax.nn.log_sigmoid(logits)) + 0.01 / (mse + 1e-6)
    np.testing.assert_allclose(losses, expected.T, rtol=1e-4)
    np.testing.assert_allclose(losses[:, 0], expected[0], rtol=1e-6)  # includes 0.01 / eps


def test_step_trains_the_generator_on_the_reference_objective(mean_field):
    """The step's G loss is `generator_loss` of -R, R the discounted loss changes of its
    incremental transforms under D in inference mode with the diversity term in D's layer 1 (the
    default layer; layer 0 gives another penalty); the defaults are the reference's CIFAR-10
    ones."""
    _, step, state = mean_field
    # Off uniform: there L_G is 0 for any returns (equal log-probabilities, zero-mean advantages).
    logits = jax.random.normal(jax.random.key(5), (L, K))
    state = state.replace(generator=state.generator.replace(params={"logits": logits}))
    batch, key = _batch(7), jax.random.key(17)
    _, metrics = step(state, batch, key)
    sequences, steps = _steps(state.generator.params, batch["image"], key)
    logits, features = _d_eval(state.discriminator, steps.reshape(-1, *steps.shape[2:]))
    logits = logits.reshape(L + 1, 8)

    def losses(layer):
        phi = features[-(layer + 1)]
        return tanda_objectives.transform_losses(logits, phi.reshape(L + 1, 8, *phi.shape[1:]), DIVERSITY)

    returns = tanda_objectives.generator_returns(losses(1), 0.5)
    gen = MeanFieldGenerator(K, L)
    expected = tanda_objectives.generator_loss(*gen.score(state.generator.params, sequences), -returns, 0.0)
    penalty = losses(1)[:, -1] + jax.nn.log_sigmoid(logits[-1])
    other = losses(0)[:, -1] + jax.nn.log_sigmoid(logits[-1])
    print(f"step diversity penalty {float(metrics['diversity_penalty']):.3e} (layer 0: "
          f"{float(jnp.mean(other)):.3e}), return {float(metrics['return']):.5f}, "
          f"G loss {float(metrics['generator_loss']):.5f}")
    np.testing.assert_allclose(metrics["generator_loss"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["return"], jnp.mean(returns[:, 0]), rtol=1e-4)
    assert float(jnp.mean(penalty)) > 1e-7
    np.testing.assert_allclose(metrics["diversity_penalty"], jnp.mean(penalty), rtol=1e-3)
    assert abs(float(jnp.mean(other) / jnp.mean(penalty)) - 1) > 0.05
    defaults = inspect.signature(tn.tanda).parameters
    names = ("diversity_weight", "diversity_space", "diversity_layer", "discount",
             "entropy_weight")
    reference = [1e-3, "discriminator", 1, 0.5, 0.0]
    assert [defaults[name].default for name in names] == reference
    assert [base_config().tanda[name] for name in names] == reference


def test_diversity_term_moves_the_generator_away_from_identity_sequences():
    """All else equal (D's logits the same for every image), the identity sequence has the lower
    reward (no loss change, while the rotations' first step drops the penalty from mu / eps), so
    one REINFORCE step lowers its probability and raises the rotation's; without the term the
    rewards tie and the gradient is zero."""
    images = _batch(8)["image"]
    sequences = jnp.concatenate([IDENTITY[:4], jnp.full((4, L), 2, jnp.int32)])
    steps = _incremental(jax.random.key(0), images, sequences, ID_TFS)
    gen = MeanFieldGenerator(len(ID_TFS), L)

    @jax.jit
    def rewards_and_grads(weight):
        rewards = -tanda_objectives.generator_returns(tanda_objectives.transform_losses(jnp.zeros((L + 1, 8)), steps,
                                                            weight), 0.5)

        def loss(p):
            log_probs, entropies = gen.score(p, sequences)
            return tanda_objectives.generator_loss(log_probs, entropies, rewards, entropy_weight=0.0)

        return rewards, jax.grad(loss)(gen.init(None))["logits"]

    for weight in (1e-3, 0.0):
        rewards, grads = rewards_and_grads(weight)
        if weight:
            np.testing.assert_array_equal(rewards[:4], 0.0)
            assert np.all(np.asarray(rewards[4:, 0]) > 100)
            assert grads[0, 0] > 0 and grads[1, 1] > 0  # descent lowers rotate 0, brightness 1
            assert np.all(grads[:, 2] < 0)  # and raises the rotation
        else:
            np.testing.assert_array_equal(grads, 0.0)


# 6. A short GAN run on the demo dataset ---------------------------------------------------------
def _run(step, state, steps):
    for i in range(steps):
        state, metrics = step(state, _batch(i), jax.random.key(1000 + i))
        assert float(metrics["skipped"]) == 0
    return state, metrics


def test_short_run_moves_the_mean_field_generator_off_uniform(mean_field):
    """30 steps: D learns to spot inverted images, so G draws invert less, and the marginals
    leave uniform (KL 0 at the start)."""
    method, step, state = mean_field
    start = np.asarray(method.tf_probs(state))
    np.testing.assert_allclose(start, 1.0 / K, rtol=1e-6)
    state, metrics = _run(step, state, 30)
    probs = np.asarray(method.tf_probs(state))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert _kl_to_uniform(probs) > 0.1
    assert np.all(probs[:, INVERT] < 0.5 / K)
    assert float(metrics["d_real"]) > float(metrics["d_fake"])
    assert float(metrics["generator_entropy"]) < L * np.log(K) - 0.05


@pytest.mark.slow  # a second compile of the whole step: about 20 s more on 2 cores
def test_short_run_moves_the_lstm_generator_off_uniform():
    """Fast counterparts: test_short_run_moves_the_mean_field_generator_off_uniform (the same run
    with the other generator) and test_reinforce_moves_probability_toward_tfs_that_fool_a_fixed_
    discriminator[lstm] (the LSTM generator's update moves its distribution)."""
    method = _method("lstm", gen_lr=0.01)
    state = _init(method)
    key = jax.random.key(21)
    start = np.asarray(method.tf_probs(state, key))
    state, _ = _run(jax.jit(method.step), state, 30)
    probs = np.asarray(method.tf_probs(state, key))
    total_variation = 0.5 * np.abs(probs - 1.0 / K).sum(1)
    assert np.all(total_variation > 0.15)
    assert np.all(0.5 * np.abs(start - 1.0 / K).sum(1) < 0.05)  # started near uniform
    assert np.all(probs[:, INVERT] < 0.5 / K)


# 7. Warm-up ------------------------------------------------------------------------------------
@jax.jit
def _target_grad(state, images, labels, key):
    def loss(params):
        batch = {"image": images, "label": labels}
        return objectives.cross_entropy(params, batch, model=TARGET,
                                        batch_stats=state.target.batch_stats, key=key)[0]

    return jax.grad(loss)(state.target.params)


def _applied_grad(old, new):
    """The gradient plain SGD applied: (old - new) / lr."""
    return jax.tree.map(lambda a, b: (a - b) / TARGET_LR, old.target.params, new.target.params)


def test_target_trains_on_clean_images_in_warmup_and_on_augmented_after(mean_field):
    _, step, state = mean_field
    batch, key = _batch(3), jax.random.key(31)
    target_key = jax.random.split(key, 4)[3]
    fake = _fake_batch(state.generator.params, batch["image"], key)
    clean_grad = _target_grad(state, batch["image"], batch["label"], target_key)
    fake_grad = _target_grad(state, fake, batch["label"], target_key)
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(
        jax.tree.leaves(clean_grad), jax.tree.leaves(fake_grad))) > 1e-3

    for at, expected, fraction in ((WARMUP - 1, clean_grad, 0.0), (WARMUP, fake_grad, 1.0)):
        old = state.replace(step=jnp.asarray(at, jnp.int32))
        new, metrics = step(old, batch, key)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5),
                     _applied_grad(old, new), expected)
        assert float(metrics["augmented"]) == fraction
        # G and D learn in the warm-up too.
        assert not np.allclose(new.generator.params["logits"], old.generator.params["logits"])
        assert int(new.step) == at + 1


# 8. Argument validation ------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"generator": "gru"}, "generator"),
    ({"sequence_length": 0}, "sequence_length"),
    ({"tfs": (("zoom", 2),)}, "tfs.*zoom"),
    ({"tfs": (("rotate", 11),)}, "tfs.*level"),
    ({"tfs": (("brightness", -3),)}, "tfs.*unsigned"),
    ({"tfs": (("rotate", 2.5),)}, "tfs.*level"),
    ({"tfs": (("rotate", 2), ("rotate", 2))}, "tfs.*repeat"),
    ({"tfs": ()}, "tfs"),
    ({"tfs": (("sample_pairing", 3),)}, "tfs.*sample_pairing"),
    ({"entropy_weight": -0.1}, "entropy_weight"),
    ({"augment_prob": 1.5}, "augment_prob"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"interpolation": "cubic"}, "interpolation"),
    ({"diversity_weight": -1.0}, "diversity_weight"),
    ({"diversity_space": "logits"}, "diversity_space"),
    ({"diversity_layer": -1}, "diversity_layer"),
    ({"discount": 1.5}, "discount"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tn.tanda(TinyNet(), optax.sgd(0.1), **kwargs)


def test_a_diversity_layer_deeper_than_d_raises_at_init():
    method = tn.tanda(TinyNet(), optax.sgd(0.1), tfs=TFS, discriminator=DISC, diversity_layer=2)
    with pytest.raises(ValueError, match="diversity_layer 2.*it has 2"):
        jax.eval_shape(method.init, jax.random.key(0), _batch(0))
