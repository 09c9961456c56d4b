"""REINFORCE: the estimator against exact policy gradients by enumeration, a bandit that learns,
and the returns, baselines and entropy against closed forms."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxaug.objectives import reinforce

REWARDS = jnp.asarray([0.2, -0.5, 1.3, 0.4])
LOGITS = jnp.asarray([0.3, -0.2, 0.1, 0.5])


def _exact_gradient(logits, rewards):
    """grad_phi E_{a ~ softmax(phi)}[R(a)], with the expectation written out over all arms."""
    return jax.grad(lambda p: jnp.sum(jax.nn.softmax(p) * rewards))(logits)


def _estimator_expectation(logits, rewards, baseline):
    """E_a[grad of the surrogate at a single sample a], by enumeration over the arms."""
    def surrogate_grad(a):
        return jax.grad(lambda p: reinforce.reinforce_loss(
            jax.nn.log_softmax(p)[a], rewards[a], baseline))(logits)
    probs = jax.nn.softmax(logits)
    return sum(probs[a] * surrogate_grad(a) for a in range(len(rewards)))


def test_estimator_expectation_is_the_exact_policy_gradient():
    exact = jax.jit(_exact_gradient)(LOGITS, REWARDS)
    assert np.abs(exact).max() > 0.05
    expectation = jax.jit(_estimator_expectation)  # one compile for every baseline
    for baseline in (0.0, 0.7, -2.0):  # any action-independent baseline leaves it unbiased
        np.testing.assert_allclose(-expectation(LOGITS, REWARDS, baseline), exact,
                                   rtol=1e-5, atol=1e-7)


def test_sampled_estimate_converges_to_the_exact_gradient():
    """The Monte-Carlo mean over 200k samples, with the batch-mean baseline, is within 4 standard
    errors of the exact gradient in every coordinate."""
    @jax.jit
    def mean_and_error():
        actions = jax.random.categorical(jax.random.key(0), LOGITS, shape=(200_000,))
        rewards = REWARDS[actions]

        def per_sample(p, a, r, b):
            return reinforce.reinforce_loss(jax.nn.log_softmax(p)[a], r, b)

        baseline = reinforce.batch_mean_baseline(rewards)[0]
        grads = jax.vmap(jax.grad(per_sample), in_axes=(None, 0, 0, None))(
            LOGITS, actions, rewards, baseline)
        return -grads.mean(0), grads.std(0) / np.sqrt(len(actions))

    mean, err = mean_and_error()
    exact = _exact_gradient(LOGITS, REWARDS)
    assert np.all(np.abs(mean - exact) < 4 * err + 1e-6), (mean, exact, err)


def test_sequence_estimator_with_returns_is_unbiased():
    """Two dependent choices (the second's logits depend on the first action), per-step rewards
    r_t(a_0..a_t): E[sum_t R_t grad log pi(a_t)] with gamma = 1 equals grad E[sum_t r_t]."""
    phi = {"first": jnp.asarray([0.2, -0.4]), "second": jnp.asarray([[0.5, -0.1], [-0.3, 0.6]])}
    r0 = jnp.asarray([0.3, -0.2])
    r1 = jnp.asarray([[1.0, -0.5], [0.2, 0.9]])

    def log_probs(p, a0, a1):
        return jnp.stack([jax.nn.log_softmax(p["first"])[a0],
                          jax.nn.log_softmax(p["second"][a0])[a1]])

    def expected_reward(p):
        return sum(jnp.exp(log_probs(p, a0, a1).sum()) * (r0[a0] + r1[a0, a1])
                   for a0, a1 in itertools.product(range(2), range(2)))

    def expected_estimate(p):
        total = jax.tree.map(jnp.zeros_like, p)
        for a0, a1 in itertools.product(range(2), range(2)):
            returns = reinforce.discounted_returns(jnp.asarray([r0[a0], r1[a0, a1]]), 1.0)
            g = jax.grad(lambda q: reinforce.reinforce_loss(log_probs(q, a0, a1), returns))(p)
            prob = jnp.exp(log_probs(p, a0, a1).sum())
            total = jax.tree.map(lambda t, x: t - 2 * prob * x, total, g)  # mean over T = 2
        return total

    exact, estimate = jax.jit(jax.grad(expected_reward))(phi), jax.jit(expected_estimate)(phi)
    for key in phi:
        np.testing.assert_allclose(estimate[key], exact[key], rtol=1e-5, atol=1e-7)


def test_bandit_trained_with_reinforce_finds_the_best_arm():
    means = jnp.asarray([0.1, 0.5, 0.3, 0.9, 0.6])
    optimizer = optax.adam(0.05)

    @jax.jit
    def step(carry, key):
        logits, opt_state = carry
        k_action, k_noise = jax.random.split(key)
        actions = jax.random.categorical(k_action, logits, shape=(64,))
        rewards = means[actions] + 0.3 * jax.random.normal(k_noise, (64,))

        def loss(p):
            return reinforce.reinforce_loss(jax.nn.log_softmax(p)[actions], rewards,
                                            reinforce.batch_mean_baseline(rewards))
        updates, opt_state = optimizer.update(jax.grad(loss)(logits), opt_state)
        return (optax.apply_updates(logits, updates), opt_state), None

    logits = jnp.zeros(5)
    (logits, _), _ = jax.lax.scan(step, (logits, optimizer.init(logits)),
                                  jax.random.split(jax.random.key(1), 400))
    probs = jax.nn.softmax(logits)
    assert int(jnp.argmax(probs)) == 3 and float(probs[3]) > 0.9, probs


def test_discounted_returns_closed_form():
    rewards = jnp.asarray([[1.0, 2.0, -1.0, 4.0], [0.0, 0.0, 0.0, 1.0]])
    gamma = 0.5
    expected = np.zeros((2, 4))
    for row in range(2):
        for start in range(4):
            expected[row, start] = sum(gamma ** (t - start) * float(rewards[row, t])
                                       for t in range(start, 4))
    np.testing.assert_allclose(reinforce.discounted_returns(rewards, gamma), expected, rtol=1e-6)
    np.testing.assert_allclose(reinforce.discounted_returns(rewards, 0.0), rewards)


def test_policy_moving_average_over_the_epoch():
    state = reinforce.policy_average_init(3)
    state, adv = reinforce.policy_average_update(state, jnp.asarray([1.0, 2.0, 3.0]))
    state, adv = reinforce.policy_average_update(state, jnp.asarray([3.0, 2.0, 3.0]))
    average = np.asarray([2.0, 2.0, 3.0])  # per-policy means of the two batches
    np.testing.assert_allclose(adv, (average - average.mean()) / average.std(), rtol=1e-5)
    np.testing.assert_allclose(adv.mean(), 0.0, atol=1e-6)
    state, adv = reinforce.policy_average_update(state, jnp.asarray([5.0, 1.0, 3.0]),
                                                 new_epoch=True)
    np.testing.assert_allclose(state["count"], [1.0, 1.0, 1.0])
    expected = np.asarray([5.0, 1.0, 3.0])
    np.testing.assert_allclose(adv, (expected - 3.0) / expected.std(), rtol=1e-5)


def test_entropy_closed_form_and_bonus_gradient():
    uniform = reinforce.categorical_entropy(jnp.zeros((2, 5)))
    np.testing.assert_allclose(uniform, np.log(5) * np.ones(2), rtol=1e-6)
    p = jnp.asarray([0.7, 0.2, 0.1])
    np.testing.assert_allclose(reinforce.categorical_entropy(jnp.log(p)),
                               -np.sum(np.asarray(p) * np.log(np.asarray(p))), rtol=1e-6)
    # Ascending the entropy bonus from a peaked distribution moves it toward uniform.
    grad = jax.grad(lambda x: reinforce.categorical_entropy(x))(jnp.log(p))
    assert grad[0] < 0 and grad[2] > 0


def test_entropy_bonus_ascends_the_entropy():
    """With only the bonus (zero returns), the loss is -lambda mean(H) and its gradient is
    -lambda grad H, so a step of gradient descent makes the policy more uniform."""
    def loss(p, weight):
        log_p = jax.nn.log_softmax(p)
        return reinforce.reinforce_loss(log_p[jnp.array([2, 3])], jnp.zeros(2),
                                        entropy=reinforce.categorical_entropy(p)[None],
                                        entropy_weight=weight)

    entropy = float(reinforce.categorical_entropy(LOGITS))
    np.testing.assert_allclose(loss(LOGITS, 0.3), -0.3 * entropy, rtol=1e-6)
    grad_h = jax.grad(reinforce.categorical_entropy)(LOGITS)
    np.testing.assert_allclose(jax.grad(loss)(LOGITS, 0.3), -0.3 * grad_h, rtol=1e-5, atol=1e-7)
    stepped = LOGITS - 1.0 * jax.grad(loss)(LOGITS, 0.3)
    assert float(reinforce.categorical_entropy(stepped)) > entropy
