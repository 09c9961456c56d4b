"""Classification objective of the target network, and the per-example target loss it uses."""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


def model_rngs(key: jax.Array) -> dict[str, jax.Array]:
    """The random streams a target network may draw from in training (unused ones are ignored)."""
    dropout, shake = jax.random.split(key)
    return {"dropout": dropout, "shake": shake, "crossnorm": jax.random.fold_in(key, 2)}


#: A per-example target loss: ``(logits [N, C], integer labels [N]) -> losses [N]``. Methods take
#: one (``target_loss=``), and the trainer builds it from the config (label smoothing).
TargetLoss = Callable[[jax.Array, jax.Array], jax.Array]


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                          label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy with label smoothing eps:

        l_i = -sum_c q_ic log softmax(logits_i)_c,   q_i = (1 - eps) onehot(y_i) + eps / C.
    """
    if not label_smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def cross_entropy(
    params: Any,
    batch: dict[str, jax.Array],
    *,
    model: nn.Module,
    batch_stats: Any,
    key: jax.Array,
    bn_set: int | tuple[int, ...] = 0,
    target_loss: TargetLoss = softmax_cross_entropy,
) -> tuple[jax.Array, dict[str, Any]]:
    """Mean target loss of the target network in training mode,

    loss = mean_i  target_loss(f_params(x_i), y_i),

    by default the softmax cross-entropy (`softmax_cross_entropy`; label smoothing through
    ``functools.partial(softmax_cross_entropy, label_smoothing=eps)``).

    If the batch has a ``"mask"`` (1 for real examples), the mean is over masked examples.

    Returns:
      ``(loss, aux)``; aux holds ``batch_stats`` (the updated BatchNorm statistics), ``logits``,
      ``loss`` and ``accuracy``.
    """
    logits, updates = model.apply(
        {"params": params, "batch_stats": batch_stats},
        batch["image"],
        train=True,
        bn_set=bn_set,
        rngs=model_rngs(key),
        mutable=["batch_stats"],
    )
    per_example = target_loss(logits, batch["label"])
    correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
    mask = batch.get("mask", jnp.ones_like(per_example))
    denominator = jnp.maximum(mask.sum(), 1.0)
    loss = (per_example * mask).sum() / denominator
    accuracy = (correct * mask).sum() / denominator
    aux = {
        "batch_stats": updates["batch_stats"],
        "logits": logits,
        "loss": loss,
        "accuracy": accuracy,
    }
    return loss, aux
