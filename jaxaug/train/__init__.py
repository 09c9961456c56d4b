"""Config-driven training of any method, data-parallel over a ``jax.sharding`` mesh."""

from jaxaug.train.checkpoint import Checkpointer
from jaxaug.train.config import base_config, validate
from jaxaug.train.loop import TrainingDiverged, create_model, load_trained, train_and_evaluate
from jaxaug.train.mesh import batch_sharding, make_mesh, replicated
from jaxaug.train.optim import learning_rate_schedule, make_optimizer
from jaxaug.train.pose_config import pose_config, validate_pose
from jaxaug.train.pose_loop import train_pose

__all__ = [
    "Checkpointer",
    "TrainingDiverged",
    "base_config",
    "batch_sharding",
    "create_model",
    "learning_rate_schedule",
    "load_trained",
    "make_mesh",
    "make_optimizer",
    "pose_config",
    "replicated",
    "train_and_evaluate",
    "train_pose",
    "validate",
    "validate_pose",
]
