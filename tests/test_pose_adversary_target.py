"""The reward/penalty target is a distribution that moves the sampled bin the promised way, and
the KL gradient moves the generator's distribution towards it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug.objectives.pose_adversary import kl_to_target, reward_penalty_target


def test_reward_and_penalty_follow_the_formulas_and_stay_distributions():
    probs = jnp.asarray([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    target = reward_penalty_target(probs, jnp.asarray([0, 0]), jnp.asarray([True, False]),
                                   alpha=0.2, beta=0.4)
    # reward: 0.5 + 0.1, others - 0.1 / 2; penalty: 0.5 - 0.2, others + 0.2 / 2.
    np.testing.assert_allclose(target, [[0.6, 0.25, 0.15], [0.3, 0.4, 0.3]], rtol=1e-6)


def test_targets_sum_to_one_and_stay_non_negative_where_the_formula_would_not():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(0, 3, (500, 7)))
    probs = jax.nn.softmax(logits)
    chosen = jnp.asarray(rng.integers(0, 7, 500))
    rewarded = jnp.asarray(rng.random(500) < 0.5)
    target = reward_penalty_target(probs, chosen, rewarded, alpha=0.9, beta=1.5)
    assert float(jnp.min(target)) >= 0.0
    np.testing.assert_allclose(jnp.sum(target, -1), 1.0, rtol=1e-5)
    # The unguarded formula does go negative in these cases, so the clip is exercised.
    p_i = jnp.take_along_axis(probs, chosen[:, None], -1)
    assert bool(jnp.any(rewarded[:, None] & (0.9 * p_i / 6 > probs)))


def test_kl_gradient_moves_the_distribution_towards_the_target():
    logits = jnp.asarray([0.3, -0.2, 0.1, 0.0])
    target = reward_penalty_target(jax.nn.softmax(logits), jnp.asarray(2), jnp.asarray(True),
                                   alpha=0.5, beta=0.5)
    grad = jax.grad(lambda z: kl_to_target(target, z))(logits)
    np.testing.assert_allclose(grad, jax.nn.softmax(logits) - target, atol=1e-6)
    moved = jax.nn.softmax(logits - 0.5 * grad)
    assert float(jnp.sum(jnp.abs(moved - target))) < float(
        jnp.sum(jnp.abs(jax.nn.softmax(logits) - target)))
    assert float(kl_to_target(target, jnp.log(target))) == pytest.approx(0.0, abs=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="at least 2 bins"):
        reward_penalty_target(jnp.ones((3, 1)), jnp.zeros(3, int), jnp.ones(3, bool), 0.1, 0.1)
    with pytest.raises(ValueError, match="alpha and beta must be >= 0"):
        reward_penalty_target(jnp.ones((3, 2)) / 2, jnp.zeros(3, int), jnp.ones(3, bool), -1, 0.1)


def test_asr_pretraining_targets_accumulate_and_normalise_the_bin_losses():
    from jaxaug.objectives.pose_adversary import asr_pretraining_targets
    losses = jnp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 5.0]])  # 2 scale x 3 rotation bins
    scale, rotation = asr_pretraining_targets(losses)
    np.testing.assert_allclose(scale, [6 / 20, 14 / 20], rtol=1e-6)
    np.testing.assert_allclose(rotation, [5 / 20, 7 / 20, 8 / 20], rtol=1e-6)


def test_aho_pretraining_target_is_the_joint_histogram_over_the_grid():
    from jaxaug.objectives.pose_adversary import aho_pretraining_target
    # A 16 x 16 image, 4 x 4 cells of 4 px: joints in cells (0, 0) twice, (3, 1), and one hidden.
    joints = jnp.asarray([[1.0, 2.0], [3.0, 0.0], [5.0, 13.0], [9.0, 9.0]])
    visible = jnp.asarray([True, True, True, False])
    hist = np.asarray(aho_pretraining_target(joints, visible, (16, 16)))
    want = np.zeros((4, 4))
    want[0, 0], want[3, 1] = 2 / 3, 1 / 3
    np.testing.assert_allclose(hist, want, rtol=1e-6)
    uniform = aho_pretraining_target(joints, jnp.zeros(4, bool), (16, 16))
    np.testing.assert_allclose(uniform, np.full((4, 4), 1 / 16))
