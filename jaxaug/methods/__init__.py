"""Training methods: each is ``init`` plus a pure ``step`` built from objectives, registered by
name with its config section (`registry`).

Every module of this package is imported here, and a method module registers itself on import,
so a new method is one new file (plus its config and tests)."""

import importlib
import pkgutil

from jaxaug.methods import (
    adatransform,
    adv_autoaugment,
    adversarial_pose,
    online_augment,
    pose,
    registry,
    tanda,
)
from jaxaug.methods.base import Method, StagedMethod, TargetState, init_target, predict_target
from jaxaug.methods.cnsn_consistency import cnsn_consistency
from jaxaug.methods.registry import Context, create, register, target_updates_per_step
from jaxaug.methods.supervised import supervised

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Context", "Method", "StagedMethod", "TargetState", "adatransform", "adv_autoaugment",
           "adversarial_pose", "cnsn_consistency", "create", "init_target",
           "online_augment", "pose", "predict_target", "register", "registry", "supervised",
           "tanda", "target_updates_per_step"]
