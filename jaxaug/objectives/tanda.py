"""TANDA's generator objective, as its reference code defines it (``tanda/tan.py``,
``TAN._build``; ``tanda/generator/generator.py``, ``get_policy_loss_op``): each TF is charged with
the change it causes in l = -log D + mu / (MSE(phi(x^0), phi(x^t)) + eps), discounted over the TFs
after it, with a batch-mean baseline per position.
"""

import jax
import jax.numpy as jnp

from jaxaug.objectives import reinforce
from jaxaug.objectives.discriminator import log_realness

#: The diversity term's eps (the reference's ``get_mse_loss`` default).
DIVERSITY_EPS = 1e-6

def diversity_penalty(real: jax.Array, fake: jax.Array, weight: float) -> jax.Array:
    """TANDA's diversity term per image, mu / (MSE(real_i, fake_i) + eps) [...], the MSE over
    the last three axes (``tanda/tan.py``: ``get_mse_loss``, eps = `DIVERSITY_EPS`)."""
    mse = jnp.mean(jnp.square(real - fake), axis=(-3, -2, -1))
    return weight / (mse + DIVERSITY_EPS)

def transform_losses(logits: jax.Array, phi: jax.Array, weight: float) -> jax.Array:
    """l^t [B, L + 1] = -log D(x^t) + mu / (MSE(phi(x^0), phi(x^t)) + eps), from D's logits
    [L + 1, B] of the incremental transforms and their features ``phi`` [L + 1, B, ...] (D's
    input or a hidden layer; a flat feature vector is treated as [..., 1, 1, n])."""
    phi = phi.reshape(*phi.shape[:2], 1, 1, -1) if phi.ndim < 5 else phi
    penalty = diversity_penalty(phi[:1], phi, weight)
    return (-log_realness(logits) + penalty).T

def generator_returns(losses: jax.Array, gamma: float) -> jax.Array:
    """R [B, L]: the loss changes d^t = l^t - l^(t-1) of ``losses`` [B, L + 1], discounted over
    the later TFs, R^t = sum_(s >= t) gamma^(s - t) d^s."""
    return reinforce.discounted_returns(jnp.diff(losses, axis=-1), gamma)

def generator_loss(log_probs: jax.Array, entropies: jax.Array, rewards: jax.Array,
                   entropy_weight: float) -> jax.Array:
    """L_G = -mean_i sum_t (r_it - b_t) log pi_it - lambda mean_i sum_t H_it, b_t = mean_i r_it,
    from per-position ``log_probs`` and ``entropies`` [N, L] and ``rewards`` (held constant):
    per position [N, L] (the step passes -R), or one per sequence [N], shared by its positions."""
    rewards = jax.lax.stop_gradient(rewards)
    rewards = jnp.broadcast_to(rewards.reshape(rewards.shape[0], -1), log_probs.shape)
    # The surrogate's mean over positions, times L: the sum over positions of the formula.
    length = log_probs.shape[1]
    return length * reinforce.reinforce_loss(log_probs, rewards,
                                             reinforce.batch_mean_baseline(rewards, axis=0),
                                             entropy=entropies.sum(-1),
                                             entropy_weight=entropy_weight / length)
