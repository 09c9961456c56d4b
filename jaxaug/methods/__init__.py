"""Training methods: each is ``init`` plus a pure ``step`` built from objectives."""

from collections.abc import Callable

import flax.linen as nn
import ml_collections
import optax

from jaxaug.methods.base import Method, TargetState, init_target, predict_target
from jaxaug.methods.supervised import supervised


def _supervised_from_config(model, optimizer, config):
    return supervised(model, optimizer, label_smoothing=config.label_smoothing)


_REGISTRY: dict[str, Callable[..., Method]] = {"supervised": _supervised_from_config}


def create(
    name: str, model: nn.Module, optimizer: optax.GradientTransformation, config: ml_collections.ConfigDict
) -> Method:
    """Builds the method called ``name`` for ``model`` from the run's config."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown method {name!r}; available: {sorted(_REGISTRY)}")
    return _REGISTRY[name](model, optimizer, config)


__all__ = ["Method", "TargetState", "create", "init_target", "predict_target", "supervised"]
