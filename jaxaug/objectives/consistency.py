"""AugMix's Jensen-Shannon consistency between the predictions on a clean batch and on its
augmented views (Hendrycks et al., ICLR 2020), as used with SelfNorm / CrossNorm.

For class distributions p_1..p_k of the same images (softmax of the logits of each view) and their
mixture M = (1/k) sum_i p_i,

    JS(p_1, ..., p_k) = (1/k) sum_i KL(p_i || M),   KL(p || M) = sum_c p_c (log p_c - log M_c),

averaged over the batch. It is 0 exactly when every view predicts the same distribution; AugMix
adds 12 x JS(p_clean, p_aug1, p_aug2) to the clean cross-entropy. As in AugMix, M is clipped to
[1e-7, 1] inside the log.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxaug.objectives.classification import (
    TargetLoss,
    hard_labels,
    model_rngs,
    softmax_cross_entropy,
)


def jensen_shannon_consistency(*logits: jax.Array) -> jax.Array:
    """JS consistency (see the module docstring) of two or more logits arrays [N, classes] of the
    same images; differentiable w.r.t. every view."""
    if len(logits) < 2:
        raise ValueError(f"jensen_shannon_consistency: needs at least 2 views, got {len(logits)}")
    shapes = {jnp.shape(x) for x in logits}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"jensen_shannon_consistency: views must share one [N, classes] shape, "
                         f"got {[jnp.shape(x) for x in logits]}")
    log_p = jnp.stack([jax.nn.log_softmax(x.astype(jnp.float32), axis=-1) for x in logits])
    p = jnp.exp(log_p)
    log_mixture = jnp.log(jnp.clip(jnp.mean(p, axis=0), 1e-7, 1.0))
    kl = jnp.sum(p * (log_p - log_mixture), axis=-1)  # [k, N]
    return jnp.mean(kl)


def consistency_objective(params: Any, batch: dict[str, Any], *, model: nn.Module, batch_stats: Any,
                          weight: float = 12.0, key: jax.Array | None = None
                          ) -> tuple[jax.Array, dict[str, Any]]:
    """Cross-entropy on the clean images plus ``weight`` x the JS consistency of the predictions
    on ``batch["image"]`` and every ``batch["views"]`` (a list of augmented versions of the same
    images), all in one forward pass so that BatchNorm sees them together, as AugMix does.
    Returns ``(loss, aux)`` with ``cross_entropy``, ``consistency`` and ``batch_stats``."""
    views = [batch["image"], *batch["views"]]
    n = batch["image"].shape[0]
    rngs = {} if key is None else {"crossnorm": key}
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats},
                                  jnp.concatenate(views), train=True, rngs=rngs,
                                  mutable=["batch_stats"])
    per_view = [logits[i * n:(i + 1) * n] for i in range(len(views))]
    log_p = jax.nn.log_softmax(per_view[0].astype(jnp.float32))
    ce = -jnp.mean(jnp.take_along_axis(log_p, batch["label"][:, None], axis=-1))
    js = jensen_shannon_consistency(*per_view)
    loss = ce + weight * js
    return loss, {"loss": loss, "cross_entropy": ce, "consistency": js,
                  "batch_stats": updates["batch_stats"]}


def crossnorm_consistency(params: Any, batch: dict[str, jax.Array], *, model: nn.Module,
                          batch_stats: Any, key: jax.Array, weight: float = 10.0, views: int = 2,
                          active: bool | jax.Array = True,
                          target_loss: TargetLoss = softmax_cross_entropy,
                          ) -> tuple[jax.Array, dict[str, Any]]:
    """The CNSN paper's consistency objective: cross-entropy of a clean pass (CrossNorm off) plus
    ``weight`` x the JS consistency of it and ``views`` passes with CrossNorm on (the network's
    ``crossnorm="on"`` blocks, each pass its own draw).

    ``target_loss`` is the clean pass's per-example loss (the softmax cross-entropy).

    The passes are separate forwards, not one concatenated batch, because 2-instance CrossNorm
    swaps statistics between the images of a pass; BatchNorm statistics are threaded through them
    in order, as the reference's successive forwards update them. ``active`` (a bool, possibly
    traced) False turns the objective into the clean cross-entropy alone: the view passes still
    run, without CrossNorm, but the consistency is reported as 0, adds nothing to the loss or its
    gradient, and the BatchNorm statistics are those after the clean pass. Returns
    ``(loss, aux)`` with ``loss``, ``cross_entropy``, ``consistency``, ``accuracy`` and
    ``batch_stats``.
    """
    if views < 1:
        raise ValueError(f"crossnorm_consistency: views must be >= 1, got {views!r}")
    active = jnp.asarray(active)
    logits, stats = [], []
    for i, switch in enumerate(("off",) + (active,) * views):
        out, updates = model.apply({"params": params, "batch_stats": batch_stats}, batch["image"],
                                   train=True, crossnorm=switch,
                                   rngs=model_rngs(jax.random.fold_in(key, i)),
                                   mutable=["batch_stats"])
        batch_stats = updates["batch_stats"]
        logits.append(out)
        stats.append(batch_stats)
    ce = jnp.mean(target_loss(logits[0].astype(jnp.float32), batch["label"]))
    js = jnp.where(active, jensen_shannon_consistency(*logits), 0.0)
    correct = jnp.argmax(logits[0], -1) == hard_labels(batch["label"])
    accuracy = jnp.mean(correct.astype(jnp.float32))
    loss = ce + weight * js
    batch_stats = jax.tree.map(lambda last, clean: jnp.where(active, last, clean),
                               stats[-1], stats[0])
    return loss, {"loss": loss, "cross_entropy": ce, "consistency": js, "accuracy": accuracy,
                  "batch_stats": batch_stats}
