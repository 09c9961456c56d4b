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


#: A per-example target loss: ``(logits [N, C], labels) -> losses [N]``, labels int [N] or soft
#: float [N, C]. Methods take one (``target_loss=``), and the trainer builds it from the config
#: (label smoothing).
TargetLoss = Callable[[jax.Array, jax.Array], jax.Array]


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                          label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy with label smoothing eps:

        l_i = -sum_c q_ic log softmax(logits_i)_c,   q_i = (1 - eps) p_i + eps / C,

    p_i = onehot(y_i) for int labels [N] and p_i = labels_i for float soft labels [N, C] (the
    targets of `jaxaug.mix`). timm trains mixed batches with `SoftTargetCrossEntropy`, which
    smooths nothing: its `Mixup` smooths the one-hots before mixing. Smoothing is affine, so
    smoothing the mixed soft labels here gives the same q; smooth in one of the two, not both.
    """
    if jnp.issubdtype(jnp.result_type(labels), jnp.floating):
        if jnp.shape(labels) != jnp.shape(logits):
            raise ValueError(f"softmax_cross_entropy: float labels are soft targets and must have "
                             f"the logits' shape {jnp.shape(logits)}, got {jnp.shape(labels)}")
        targets = labels
    elif not label_smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    else:
        targets = jax.nn.one_hot(labels, logits.shape[-1])
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def hard_labels(labels: jax.Array) -> jax.Array:
    """The class of each example: int labels [N] as they are, soft labels [N, C] (a mixed
    batch's) by their largest share, argmax over C. What accuracy is counted against."""
    return jnp.argmax(labels, -1) if jnp.issubdtype(labels.dtype, jnp.floating) else labels


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

    ``batch["label"]`` holds int labels [N] or soft labels [N, C] (a mixed batch of
    `jaxaug.mix`); accuracy counts argmax(logits) == the label, or the argmax of the soft label,
    i.e. the class with the larger share of a mixed image. If the batch has a ``"mask"`` (1 for
    real examples), the mean is over masked examples.

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
    correct = (jnp.argmax(logits, -1) == hard_labels(batch["label"])).astype(jnp.float32)
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
