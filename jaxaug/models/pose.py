"""Heatmap pose models by name: ``create_pose_model("cunet" | "hourglass", num_joints, **kwargs)``."""

from __future__ import annotations

from typing import Any

from flax import linen as nn

from jaxaug.models.cunet import CUNet
from jaxaug.models.hourglass import StackedHourglass

POSE_MODELS = {"cunet": CUNet, "hourglass": StackedHourglass}


def create_pose_model(name: str, num_joints: int = 16, **kwargs: Any) -> nn.Module:
    """The pose model called ``name`` with ``num_joints`` heatmaps; ``kwargs`` are its fields (e.g.
    ``num_unets``, ``order``, ``memory_efficient`` for "cunet"; ``num_stacks``, ``features`` for
    "hourglass"; ``depth``, ``stem_stride``, ``quant``, ``dtype`` for both)."""
    if not isinstance(name, str) or name not in POSE_MODELS:
        raise ValueError(f"unknown pose model name {name!r}; choose one of {', '.join(POSE_MODELS)}")
    try:
        return POSE_MODELS[name](num_joints=num_joints, **kwargs)
    except TypeError as e:  # a keyword the model does not have
        raise ValueError(f"create_pose_model({name!r}): {e}") from None
