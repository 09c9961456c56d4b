"""AdaTransform's rewards (Tang's thesis, eqs. 3.5-3.9): per-step rewards that telescope to the
terminal value, and the REINFORCE surrogate of one policy's episodes.

With l(x) the target's per-image loss in evaluation mode and D(x) = sigmoid(s(x)) the
discriminator,

    competitive:  v(x) = l(x) + lambda log D(x),     cooperative:  v(x) = -l(x),
    r_t = v(x_t) - v(x_{t-1}),   so   sum_t r_t = v(x_K) - v(x_0)   (telescoping),

i.e. the thesis's r_t = l(x_t) - l(x_{t-1}) (eqs. 3.5-3.6), with the realness term
lambda log D(x) placed inside v so that the rewards still add up to the terminal objective (less
v(x_0), which no action changes). The returns R_t' = sum_{t >= t'} gamma^(t - t') r_t (gamma =
0.5, eq. 3.8) are credited to a_t', and the baseline b_t is their mean over the h images x s
samples of the batch (per step t, eq. 3.9).
"""

import jax
import jax.numpy as jnp

from jaxaug.objectives.reinforce import batch_mean_baseline, discounted_returns, reinforce_loss

def step_rewards(values: jax.Array) -> jax.Array:
    """r_t = v(x_t) - v(x_{t-1}) [N, K] from the values v(x_0..x_K) [K + 1, N]."""
    return jnp.diff(values, axis=0).T

def episode_values(losses: jax.Array, log_d: jax.Array | None = None, *,
                   cooperative: bool = False, disc_weight: float = 0.0) -> jax.Array:
    """v(x_t): competitive l(x_t) + lambda log D(x_t) (no D term when ``log_d`` is None),
    cooperative -l(x_t)."""
    if cooperative:
        return -losses
    return losses if log_d is None else losses + disc_weight * log_d

def reinforce_terms(log_probs: jax.Array, rewards: jax.Array, gamma: float, *,
                    entropy: jax.Array | None = None, entropy_weight: float = 0.0) -> jax.Array:
    """The REINFORCE surrogate of rewards [N, K]: discounted returns, baseline = their mean
    over the N = h x s episodes per step t; ``entropy`` / ``entropy_weight``: the bonus of
    `reinforce_loss`."""
    returns = discounted_returns(rewards, gamma)
    return reinforce_loss(log_probs, returns, batch_mean_baseline(returns, axis=0),
                          entropy=entropy, entropy_weight=entropy_weight)
