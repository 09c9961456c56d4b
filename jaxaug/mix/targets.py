"""Soft targets of a mixed batch: smoothed one-hot labels blended with the flipped batch's."""

import jax
import jax.numpy as jnp


def check_num_classes(fn: str, num_classes: int) -> None:
    """Raise ValueError naming `fn` and `num_classes` unless it is a positive int."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"{fn}: num_classes must be a positive int, got {num_classes!r}")


def check_labels(fn: str, labels: jax.Array, batch_size: int, num_classes: int) -> None:
    """Raise ValueError naming `fn` and `labels` unless they are int [B] or float [B, num_classes].

    Only static shapes and dtypes are read, so this is safe under jit/vmap.
    """
    check_num_classes(fn, num_classes)
    shape, dtype = tuple(jnp.shape(labels)), jnp.result_type(labels)
    if jnp.issubdtype(dtype, jnp.integer):
        expected = (batch_size,)
    elif jnp.issubdtype(dtype, jnp.floating):
        expected = (batch_size, num_classes)
    else:
        raise ValueError(f"{fn}: labels must be int [B] or float soft labels [B, K], got {dtype}")
    if shape != expected:
        raise ValueError(
            f"{fn}: labels of dtype {dtype} must have shape {expected} (batch size {batch_size}, "
            f"num_classes {num_classes}), got {shape}"
        )


def smooth_targets(labels: jax.Array, *, num_classes: int,
                   label_smoothing: float = 0.0) -> jax.Array:
    """Targets q = (1 - eps) p + eps / K of int labels (p one-hot) or soft labels p [B, K].

    For int labels these are timm's one-hot targets with off value eps / K and on value
    1 - eps + eps / K.
    """
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        p = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    else:
        p = labels.astype(jnp.float32)
    return (1.0 - label_smoothing) * p + label_smoothing / num_classes


def mix_targets(labels: jax.Array, lam: jax.Array, *, num_classes: int,
                label_smoothing: float = 0.0) -> jax.Array:
    """Soft targets t_i = lam_i q_i + (1 - lam_i) q_{B-1-i} of a batch mixed with its flip.

    q are the smoothed targets of `smooth_targets`; lam is a scalar or one weight per sample [B].
    Smoothing is affine and the weights sum to 1, so smoothing the mixed targets gives the same
    t: label smoothing belongs either here or in the loss, never in both.
    """
    q = smooth_targets(labels, num_classes=num_classes, label_smoothing=label_smoothing)
    lam = jnp.broadcast_to(jnp.asarray(lam, jnp.float32), q.shape[:1])[:, None]
    return lam * q + (1.0 - lam) * q[::-1]
