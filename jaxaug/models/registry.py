"""Model construction by name, and parameter counting."""

from __future__ import annotations

import math
import re
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxaug.models.resnet import RESNET_CONFIGS, ResNet
from jaxaug.models.shake_shake import ShakeShake
from jaxaug.models.wide_resnet import WideResNet

ACCEPTED_PATTERNS = (
    "wrn-<depth>-<width> with (depth - 4) % 6 == 0, e.g. wrn-28-10",
    "shake-shake-<depth>-2x<width>d with (depth - 2) % 6 == 0, e.g. shake-shake-26-2x32d",
    "resnet-18, resnet-34, resnet-50",
)
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _compute_dtype(dtype: Any) -> Any:
    """Maps jnp.float32 / jnp.bfloat16 / numpy dtypes / their names to the jnp scalar type."""
    try:
        key = jnp.dtype(dtype).name
    except TypeError:
        key = None
    if key not in _DTYPES:
        raise ValueError(f"dtype must be float32 or bfloat16 (or their names), got {dtype!r}")
    return _DTYPES[key]


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an int >= 1, got {value!r}")
    return value


def create(
    name: str,
    num_classes: int = 10,
    num_bn_sets: int = 1,
    dtype: Any = jnp.float32,
    **kwargs: Any,
) -> nn.Module:
    """Builds the target network called ``name``; ``kwargs`` go to the model (e.g. WRN's dropout_rate).

    Names: ``wrn-<depth>-<width>``, ``shake-shake-<depth>-2x<width>d``, ``resnet-18|34|50``.
    ``dtype`` is the compute dtype of convolutions and the classifier; parameters and BatchNorm
    statistics stay float32 and logits are float32.
    """
    common = dict(
        num_classes=_positive_int(num_classes, "num_classes"),
        num_bn_sets=_positive_int(num_bn_sets, "num_bn_sets"),
        dtype=_compute_dtype(dtype),
        **kwargs,
    )
    text = name if isinstance(name, str) else ""
    try:
        if m := re.fullmatch(r"wrn-(\d+)-(\d+)", text):
            return WideResNet(depth=int(m[1]), widen_factor=int(m[2]), **common)
        if m := re.fullmatch(r"shake-shake-(\d+)-2x(\d+)d", text):
            return ShakeShake(depth=int(m[1]), width=int(m[2]), **common)
        if (m := re.fullmatch(r"resnet-(\d+)", text)) and int(m[1]) in RESNET_CONFIGS:
            return ResNet(depth=int(m[1]), **common)
    except ValueError as e:  # a well-formed name with an invalid depth or width
        raise ValueError(f"invalid model name {name!r}: {e}; accepted: {'; '.join(ACCEPTED_PATTERNS)}") from e
    raise ValueError(f"unknown model name {name!r}; accepted: {'; '.join(ACCEPTED_PATTERNS)}")


def count_params(params: Any) -> int:
    """Number of scalars in a pytree of arrays or ``jax.ShapeDtypeStruct``s (e.g. from eval_shape)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
