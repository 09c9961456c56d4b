"""Config-driven training of any method on any task, data-parallel over a ``jax.sharding`` mesh."""

from jaxaug.train.checkpoint import Checkpointer
from jaxaug.train.config import base_config, keypoints_config, validate
from jaxaug.train.loop import TrainingDiverged, load_trained, train, train_and_evaluate
from jaxaug.train.mesh import batch_sharding, make_mesh, replicated
from jaxaug.train.optim import learning_rate_schedule, make_optimizer
from jaxaug.train.task import Classification, Keypoints, Task, create_model

__all__ = [
    "Checkpointer",
    "Classification",
    "Keypoints",
    "Task",
    "TrainingDiverged",
    "base_config",
    "batch_sharding",
    "create_model",
    "keypoints_config",
    "learning_rate_schedule",
    "load_trained",
    "make_mesh",
    "make_optimizer",
    "replicated",
    "train",
    "train_and_evaluate",
    "validate",
]
