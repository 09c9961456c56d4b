"""BatchNorm with several sets of statistics and affine parameters (AdvProp-style).

For one set ``s`` and the activations ``x`` assigned to it, with reduction over every axis but the
last (features) one and ``N`` elements per feature:

    mean = (1/N) Σ x,    var = (1/N) Σ (x - mean)²               (biased, used to normalize)
    y    = scale[s] · (x - mean) / sqrt(var + eps) + bias[s]      (training)
    y    = scale[s] · (x - mean_run[s]) / sqrt(var_run[s] + eps) + bias[s]   (evaluation)
    mean_run[s] ← momentum · mean_run[s] + (1 - momentum) · mean
    var_run[s]  ← momentum · var_run[s]  + (1 - momentum) · var · N / (N - 1)

The running variance takes the *unbiased* batch variance, as PyTorch's ``BatchNorm2d`` does (flax's
``nn.BatchNorm`` uses the biased one), so that statistics match the PyTorch reference models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax import lax

BnSet = int | Sequence[int]


def _as_set_tuple(bn_set: BnSet, num_sets: int) -> tuple[int, ...]:
    """Checks ``bn_set`` (static: an int or a sequence of ints) and returns it as a tuple."""
    sets = tuple(bn_set) if isinstance(bn_set, (tuple, list)) else (bn_set,)
    if not sets:
        raise ValueError(f"bn_set={bn_set!r} is empty; give an int or a non-empty tuple of ints")
    for s in sets:
        # bn_set decides the program's structure, so it must be a Python value, never a traced one.
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"bn_set must be a static int or tuple of ints, got {bn_set!r}")
        if not 0 <= s < num_sets:
            raise ValueError(
                f"bn_set={bn_set!r} names set {s}, but there are num_sets={num_sets} "
                f"(valid indices 0..{num_sets - 1})"
            )
    return tuple(int(s) for s in sets)


class MultiBatchNorm(nn.Module):
    """BatchNorm over the last axis with ``num_sets`` independent sets of statistics and affine params.

    Call as ``bn(x, train=..., bn_set=...)``. ``bn_set`` is an int (one set for the whole batch) or a
    tuple of ints: the batch is split into ``len(bn_set)`` equal consecutive chunks and chunk ``i``
    uses set ``bn_set[i]``. In training, a set used by several chunks normalizes them with the mean
    and variance of all of its chunks together, and only the sets named in the call have their
    running statistics updated (not during ``init``, like ``nn.BatchNorm``).

    Statistics and normalization are computed in float32 whatever the input dtype; the output is
    cast to ``dtype``. All branching depends on static shapes and ``bn_set`` only, and the batch
    reductions are plain ``jnp.mean``s, so under ``jit`` with the batch sharded across devices they
    are global means without any ``axis_name``.

    Variables: params ``scale``, ``bias`` and batch_stats ``mean``, ``var``, each (num_sets, C).
    """

    num_sets: int = 1
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool, bn_set: BnSet = 0) -> jnp.ndarray:
        sets = _as_set_tuple(bn_set, self.num_sets)
        num_chunks = len(sets)
        batch = x.shape[0]
        if batch % num_chunks:
            raise ValueError(
                f"batch size {batch} is not divisible into the {num_chunks} chunks of bn_set={bn_set!r}"
            )
        features = x.shape[-1]
        shape = (self.num_sets, features)
        scale = self.param("scale", nn.initializers.ones, shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, shape, jnp.float32)
        run_mean = self.variable("batch_stats", "mean", jnp.zeros, shape, jnp.float32)
        run_var = self.variable("batch_stats", "var", jnp.ones, shape, jnp.float32)

        # (chunks, batch/chunks, ..., C): chunk axis first so per-chunk statistics are one reduction.
        xc = x.astype(jnp.float32).reshape((num_chunks, batch // num_chunks) + x.shape[1:])
        reduce_axes = tuple(range(1, xc.ndim - 1))
        chunk_set = np.asarray(sets)  # static gather indices: chunk -> set

        def per_chunk(v):  # (chunks, C) -> broadcastable against xc
            return v.reshape((num_chunks,) + (1,) * (xc.ndim - 2) + (features,))

        if train:
            used = sorted(set(sets))
            members = [np.flatnonzero(chunk_set == s) for s in used]
            slot = np.asarray([used.index(s) for s in sets])  # chunk -> row of `used`
            # Chunks are equally sized, so a set's joint mean is the mean of its chunks' means, and
            # likewise for the mean squared deviation from that joint mean (two-pass, no E[x²]-E[x]²
            # cancellation).
            chunk_mean = jnp.mean(xc, axis=reduce_axes)
            set_mean = jnp.stack([chunk_mean[m].mean(axis=0) for m in members])
            chunk_sq = jnp.mean(jnp.square(xc - per_chunk(set_mean[slot])), axis=reduce_axes)
            set_var = jnp.stack([chunk_sq[m].mean(axis=0) for m in members])
            count = np.asarray([len(m) for m in members]) * math.prod(xc.shape[1:-1])
            if count.min() < 2:
                raise ValueError(
                    f"training BatchNorm needs more than one value per feature and set, got "
                    f"input shape {x.shape} with bn_set={bn_set!r}"
                )
            if not self.is_initializing():
                rows = np.asarray(used)
                unbiased = set_var * (count / (count - 1))[:, None].astype(np.float32)
                m = self.momentum
                run_mean.value = run_mean.value.at[rows].set(
                    m * run_mean.value[rows] + (1 - m) * set_mean
                )
                run_var.value = run_var.value.at[rows].set(m * run_var.value[rows] + (1 - m) * unbiased)
            mean, var = set_mean[slot], set_var[slot]
        else:
            mean, var = run_mean.value[chunk_set], run_var.value[chunk_set]

        mul = scale[chunk_set] * lax.rsqrt(var + self.epsilon)
        y = (xc - per_chunk(mean)) * per_chunk(mul) + per_chunk(bias[chunk_set])
        return y.reshape(x.shape).astype(self.dtype)
