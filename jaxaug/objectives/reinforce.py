"""Score-function (REINFORCE) objectives for discrete augmentation choices.

A policy pi_phi samples actions a (op types, magnitudes, box moves) that give no gradient; their
reward R does not depend on phi. The score-function identity

    grad_phi E_{a ~ pi_phi}[R(a)] = E[(R(a) - b) grad_phi log pi_phi(a)]

holds for any baseline b independent of a, and b lowers the variance. `reinforce_loss` is the
surrogate whose gradient is minus that estimate, so minimising it ascends the expected reward:

    loss = -mean_i (R_i - b_i) * log pi(a_i),    R and b held constant.

For a sequence of T choices with per-step rewards r_t (AdaTransform's r_t = l(x_t) - l(x_{t-1})),
`discounted_returns` gives R_t' = sum_{t >= t'} gamma^(t - t') r_t, the return credited to the
choice at t'. Baselines: `batch_mean_baseline` (AdaTransform: the mean over the h images x s
samples of a batch) and the per-policy moving average of Adversarial AutoAugment
(`policy_average_init` / `policy_average_update`). `categorical_entropy` is the entropy bonus.
"""

import jax
import jax.numpy as jnp


def reinforce_loss(log_probs: jax.Array, returns: jax.Array,
                   baseline: jax.Array | float = 0.0, *, entropy: jax.Array | None = None,
                   entropy_weight: float = 0.0) -> jax.Array:
    """-mean((R - b) * log pi(a)) - lambda * mean(H) over all elements; the surrogate's gradient
    flows through ``log_probs`` only.

    ``log_probs`` are the log-probabilities of the sampled actions (any shape, e.g. [N] or
    [N, T]), ``returns`` R broadcastable to them, ``baseline`` b broadcastable to ``returns``.
    ``entropy`` H (e.g. `categorical_entropy` per decision, or summed per sequence) with weight
    ``entropy_weight`` lambda is the exploration bonus; None: no bonus.
    """
    advantage = jax.lax.stop_gradient(jnp.asarray(returns) - baseline)
    loss = -jnp.mean(advantage * log_probs)
    if entropy is not None:
        loss = loss - entropy_weight * jnp.mean(entropy)
    return loss


def discounted_returns(rewards: jax.Array, gamma: float) -> jax.Array:
    """R_t' = sum_{t >= t'} gamma^(t - t') r_t along the last axis (time) of ``rewards``."""
    steps = rewards.shape[-1]
    t = jnp.arange(steps)
    lag = t[None, :] - t[:, None]  # [t', t]: t - t'
    discount = jnp.where(lag >= 0, jnp.asarray(gamma, rewards.dtype) ** jnp.maximum(lag, 0), 0)
    return rewards @ discount.T


def batch_mean_baseline(returns: jax.Array, axis: int | tuple[int, ...] | None = None) -> jax.Array:
    """The mean return over ``axis`` (all elements by default: AdaTransform's h images x s
    samples), held constant, with the reduced axes kept for broadcasting."""
    return jax.lax.stop_gradient(jnp.mean(returns, axis=axis, keepdims=True))


def policy_average_init(num_policies: int) -> dict[str, jax.Array]:
    """State of the per-policy moving average: running sums and counts over the current epoch."""
    return {"sum": jnp.zeros((num_policies,)), "count": jnp.zeros((num_policies,))}


def policy_average_update(state: dict[str, jax.Array], rewards: jax.Array, *,
                          new_epoch: jax.Array | bool = False, eps: float = 1e-8
                          ) -> tuple[dict[str, jax.Array], jax.Array]:
    """Adversarial AutoAugment's reward for M policies: each policy's reward averaged over the
    epoch so far (including this batch's ``rewards`` [M]), normalised across the M policies,

        avg_m = (sum of policy m's rewards this epoch) / (their count),
        adv_m = (avg_m - mean_m avg) / (std_m avg + eps).

    ``new_epoch`` (a bool or traced bool) resets the averages first. Returns
    ``(new_state, advantages [M])``, the advantages held constant.
    """
    keep = 1.0 - jnp.asarray(new_epoch, jnp.float32)
    total = state["sum"] * keep + rewards
    count = state["count"] * keep + 1.0
    average = total / count
    advantages = (average - average.mean()) / (average.std() + eps)
    return {"sum": total, "count": count}, jax.lax.stop_gradient(advantages)


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """H = -sum_k p_k log p_k of the categorical over the last axis, per distribution."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
