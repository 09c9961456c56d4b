"""Classification objective of the target network."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


def model_rngs(key: jax.Array) -> dict[str, jax.Array]:
    """The random streams a target network may draw from in training (unused ones are ignored)."""
    dropout, shake = jax.random.split(key)
    return {"dropout": dropout, "shake": shake, "crossnorm": jax.random.fold_in(key, 2)}


def cross_entropy(
    params: Any,
    batch: dict[str, jax.Array],
    *,
    model: nn.Module,
    batch_stats: Any,
    key: jax.Array,
    bn_set: int | tuple[int, ...] = 0,
    label_smoothing: float = 0.0,
) -> tuple[jax.Array, dict[str, Any]]:
    """Mean softmax cross-entropy of the target network in training mode.

    loss = mean_i  -sum_c q_ic log softmax(f_params(x_i))_c,
    with q_i the one-hot label smoothed as (1 - eps) * onehot(y_i) + eps / C.

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
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], num_classes), label_smoothing)
    per_example = optax.softmax_cross_entropy(logits, targets)
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
