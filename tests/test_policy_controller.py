"""The LSTM policy controller: valid actions per head, first-choice frequencies match its softmax,
log-probabilities are those of the sampled actions, and REINFORCE through it learns."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import jit_init

from jaxaug.objectives import reinforce
from jaxaug.policies.controller import PolicyController

pytestmark = pytest.mark.usefixtures("unoptimized_xla")

CONTROLLER = PolicyController(num_choices=4, hidden=16, embedding=8)


@functools.cache
def _init():
    return jit_init(CONTROLLER.init, jax.random.key(0), jax.random.key(1), num_policies=2)


@functools.partial(jax.jit, static_argnums=2)
def _sample(params, key, num_policies):
    return CONTROLLER.apply(params, key, num_policies)


@jax.jit
def _score(params, key, actions):
    """Teacher-forced on ``actions``."""
    return CONTROLLER.apply(params, key, actions.shape[0], actions)


def test_actions_alternate_heads_and_log_probs_are_consistent():
    params = _init()
    actions, log_probs, entropies = _sample(params, jax.random.key(2), 4000)
    assert actions.shape == log_probs.shape == entropies.shape == (4000, 4)
    assert actions[:, 0::2].max() < 16 and actions[:, 1::2].max() < 10 and actions.min() >= 0
    assert len(np.unique(actions[:, 0])) == 16 and len(np.unique(actions[:, 1])) == 10
    # The first choice has the same input for every policy: one distribution, whose log-probs
    # the module reports, and whose frequencies the samples follow.
    first = np.zeros(16)
    first[np.asarray(actions[:, 0])] = np.asarray(log_probs[:, 0])
    probs = np.exp(first)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-4)
    counts = np.bincount(np.asarray(actions[:, 0]), minlength=16) / 4000
    assert np.all(np.abs(counts - probs) < 4 * np.sqrt(probs * (1 - probs) / 4000) + 1e-3)
    np.testing.assert_allclose(entropies[0, 0], -np.sum(probs * np.log(probs)), rtol=1e-4)


def test_reinforce_through_the_controller_learns_a_rewarded_choice():
    """Reward 1 when the second choice (the 10-way head) is 7: its probability rises."""
    params = _init()
    optimizer = optax.adam(0.05)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, key):
        def loss(p):
            actions, log_probs, _ = CONTROLLER.apply(p, key, 64)
            rewards = (actions[:, 1] == 7).astype(jnp.float32)
            return reinforce.reinforce_loss(log_probs.sum(1), rewards,
                                            reinforce.batch_mean_baseline(rewards))
        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state)
        return optax.apply_updates(params, updates), opt_state

    def rate(p):
        return float(jnp.mean(_sample(p, jax.random.key(99), 2000)[0][:, 1] == 7))

    before = rate(params)
    for i in range(60):
        params, opt_state = step(params, opt_state, jax.random.key(10 + i))
    assert before < 0.2 and rate(params) > 0.8, (before, rate(params))


def test_teacher_forcing_scores_the_sampled_actions():
    """Scoring the sampled actions again gives the log-probabilities reported when sampling,
    and other actions score differently, from a normalised distribution."""
    params = _init()
    actions, log_probs, _ = _sample(params, jax.random.key(3), 5)
    _, again, _ = _score(params, jax.random.key(99), actions)
    np.testing.assert_allclose(again, log_probs, rtol=1e-5, atol=1e-6)
    other = (actions + 1) % jnp.asarray([16, 10, 16, 10])
    _, scored, _ = _score(params, jax.random.key(99), other)
    assert not np.allclose(scored, log_probs)
    # Forcing each of the 16 first choices: their probabilities sum to 1, and the sampled
    # policies' first log-probs are entries of that table.
    every = jnp.zeros((16, 4), jnp.int32).at[:, 0].set(jnp.arange(16))
    _, table, _ = _score(params, jax.random.key(0), every)
    np.testing.assert_allclose(np.exp(table[:, 0]).sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(table[actions[:, 0], 0], log_probs[:, 0], rtol=1e-5)
