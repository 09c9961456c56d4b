"""The reward/penalty target of adversarial pose augmentation (Peng et al., CVPR 2018), and the KL
objective that trains the augmentation network towards it with no gradient through sampling.

For a categorical distribution P~ over k bins from which bin i was sampled, the target P is

    reward  (the adversarial sample made the pose loss higher than a random one):
        P_i = P~_i + alpha P~_i,        P_j = P~_j - alpha P~_i / (k - 1)   (j != i)
    penalty (otherwise):
        P_i = P~_i - beta P~_i,         P_j = P~_j + beta P~_i / (k - 1)    (j != i)

Both sum to 1. The reward can drive a small P_j below 0 (when alpha P~_i / (k - 1) > P~_j), and
the penalty with beta > 1 drives P_i below 0; the paper does not say what happens then. Here the
target is clipped at 0 and renormalised, so it always is a distribution (a guard the paper
omits). The generator then minimises KL(P || P~) with P held constant, whose gradient with respect
to P~'s logits is P~ - P: it moves P~ towards P.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def reward_penalty_target(probs: jax.Array, chosen: jax.Array, rewarded: jax.Array,
                          alpha: float, beta: float) -> jax.Array:
    """The target distributions [..., k] for distributions ``probs`` [..., k], sampled bins
    ``chosen`` [...] (ints) and ``rewarded`` [...] (bool: the adversarial loss was higher)."""
    k = probs.shape[-1]
    if k < 2:
        raise ValueError(f"reward_penalty_target: needs at least 2 bins, got {k}")
    if alpha < 0 or beta < 0:
        raise ValueError(f"reward_penalty_target: alpha and beta must be >= 0, got {alpha}, {beta}")
    one_hot = jax.nn.one_hot(chosen, k, dtype=probs.dtype)
    p_chosen = jnp.sum(probs * one_hot, axis=-1, keepdims=True)
    step = jnp.where(rewarded[..., None], alpha, -beta) * p_chosen
    target = probs + step * one_hot - step / (k - 1) * (1.0 - one_hot)
    target = jnp.maximum(target, 0.0)
    return target / jnp.sum(target, axis=-1, keepdims=True)


def kl_to_target(target: jax.Array, logits: jax.Array, weights: jax.Array | None = None
                 ) -> jax.Array:
    """KL(target || softmax(logits)) over the last axis, the target held constant, averaged over
    the leading axes (weighted by ``weights`` [...] when given; 0 when every weight is 0)."""
    target = jax.lax.stop_gradient(target)
    log_q = jax.nn.log_softmax(logits, axis=-1)
    log_p = jnp.log(jnp.where(target > 0, target, 1.0))
    kl = jnp.sum(target * (log_p - log_q), axis=-1)
    if weights is None:
        return jnp.mean(kl)
    weights = jnp.asarray(weights, kl.dtype)
    return jnp.sum(weights * kl) / jnp.maximum(jnp.sum(weights), 1e-12)


def adversary_objective(params: Any, batch: dict[str, Any], *, adversary: nn.Module,
                        batch_stats: Any) -> tuple[jax.Array, dict[str, Any]]:
    """The augmentation network's objective: the weighted KL of each of its distributions to a
    fixed target, summed over the heads,

        L = KL_w(P_scale || P~_scale) + KL_w(P_rotation || P~_rotation)
            + KL_w(P_occlusion || P~_occlusion),

    with KL_w weighted over the batch by ``asr_weight`` (the two ASR heads) and ``aho_weight``
    (the occlusion grid, flattened). The targets come from `reward_penalty_target` during joint
    training and from `asr_pretraining_targets` / `aho_pretraining_target` in pre-training; no
    gradient flows through the sampling that produced them.

    batch: ``features`` (the pose network's skip and bridge features, as ``PoseAdversary``
    takes them), ``scale_target`` [N, m], ``rotation_target`` [N, n], ``occlusion_target``
    [N, g, g], ``asr_weight`` [N], ``aho_weight`` [N]. Returns ``(loss, aux)`` with the three KL
    terms, ``logits`` and the updated ``batch_stats``.
    """
    logits, updates = adversary.apply({"params": params, "batch_stats": batch_stats},
                                      batch["features"], train=True, mutable=["batch_stats"])
    n = logits["occlusion"].shape[0]
    kl_scale = kl_to_target(batch["scale_target"], logits["scale"], batch["asr_weight"])
    kl_rotation = kl_to_target(batch["rotation_target"], logits["rotation"], batch["asr_weight"])
    kl_occlusion = kl_to_target(batch["occlusion_target"].reshape(n, -1),
                                logits["occlusion"].reshape(n, -1), batch["aho_weight"])
    loss = kl_scale + kl_rotation + kl_occlusion
    return loss, {"loss": loss, "kl_scale": kl_scale, "kl_rotation": kl_rotation,
                  "kl_occlusion": kl_occlusion, "logits": logits,
                  "batch_stats": updates["batch_stats"]}


def asr_pretraining_targets(losses: jax.Array) -> tuple[jax.Array, jax.Array]:
    """ASR's pre-training targets from the frozen pose network's losses [..., m, n] under every
    (scale bin, rotation bin) pair: the losses summed over rotations (scale target [..., m]) and
    over scales (rotation target [..., n]), each normalised to a distribution; harder bins weigh
    more."""
    losses = jnp.asarray(losses)
    if losses.ndim < 2:
        raise ValueError(f"asr_pretraining_targets: losses must be [..., m, n], got {losses.shape}")
    scale, rotation = jnp.sum(losses, axis=-1), jnp.sum(losses, axis=-2)
    return (scale / jnp.sum(scale, -1, keepdims=True),
            rotation / jnp.sum(rotation, -1, keepdims=True))


def aho_pretraining_target(joints: jax.Array, visible: jax.Array, image_size: tuple[int, int],
                           grid: int = 4) -> jax.Array:
    """AHO's pre-training target: the normalised histogram [..., grid, grid] of the visible joints
    ([..., J, 2] (x, y) pixels of an H x W image) over a grid x grid partition of the image (uniform
    where no joint is visible)."""
    h, w = image_size
    col = jnp.clip(jnp.floor((joints[..., 0] + 0.5) * grid / w), 0, grid - 1).astype(jnp.int32)
    row = jnp.clip(jnp.floor((joints[..., 1] + 0.5) * grid / h), 0, grid - 1).astype(jnp.int32)
    counts = jnp.sum(jax.nn.one_hot(row * grid + col, grid * grid)
                     * jnp.asarray(visible, jnp.float32)[..., None], axis=-2)
    total = jnp.sum(counts, -1, keepdims=True)
    hist = jnp.where(total > 0, counts / jnp.maximum(total, 1.0), 1.0 / (grid * grid))
    return hist.reshape(*hist.shape[:-1], grid, grid)
