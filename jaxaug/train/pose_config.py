"""The base config of keypoint (pose / landmark) training runs, and its validation.

A config with ``task = "keypoints"`` is trained by `jaxaug.train.train_pose`; `train.py` picks the
trainer from ``task``. Configs in ``configs/`` start from :func:`pose_config` and override fields.
"""

import ml_collections

from jaxaug.models.pose import POSE_MODELS
from jaxaug.quant import SETTINGS as QUANT_SETTINGS

KEYPOINT_DATASETS = ("synthetic", "mpii:<annotation .mat>", "lsp:<dir>", "300w:<dir>")


def pose_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "keypoints"
    c.seed = 0
    c.method = "heatmap_regression"

    # "synthetic" (procedural articulated figures, MPII's 16 joints) or a real set, see
    # jaxaug.train.pose_loop.load_keypoints; image_size is the square network input.
    c.dataset = "synthetic"
    c.image_size = 64
    c.train_size = 4000  # synthetic only
    c.test_size = 500  # synthetic only

    # model: "cunet" or "hourglass", built from its section; `quant` one of jaxaug.quant.SETTINGS
    # ("fp": full precision). CU-Net's features / growth are the paper's m / n.
    c.model = "cunet"
    c.quant = "fp"
    # CPU-sized defaults; the papers' CU-Net is num_unets=8 (or 16), depth=4, features=128,
    # growth=32, stem_stride=4 on 256x256 crops, and the hourglass num_stacks=8, features=256.
    c.cunet = ml_collections.ConfigDict({
        "num_unets": 2, "depth": 2, "order": 1, "features": 64, "growth": 16, "stem_stride": 4,
        "memory_efficient": False, "refine_iterations": 0,
    })
    c.hourglass = ml_collections.ConfigDict({
        "num_stacks": 2, "depth": 2, "features": 64, "stem_stride": 4,
    })

    # Gaussian heatmap width (heatmap pixels) and the random augmentation of every training image.
    c.heatmap_sigma = 1.0
    c.augment = ml_collections.ConfigDict({
        "scale_min": 0.75, "scale_max": 1.25, "max_rotation": 30.0, "flip_prob": 0.5,
    })

    # RMSProp at 2.5e-4, as the stacked hourglass and CU-Net papers train.
    c.optimizer = ml_collections.ConfigDict({"lr": 2.5e-4, "decay": 0.99, "eps": 1e-8})
    c.batch_size = 32
    c.eval_batch_size = 100
    c.epochs = 10
    # PCK threshold as a fraction of the layout's normaliser: 0.5 of the head size (PCKh@0.5,
    # MPII and synthetic) or 0.2 of the torso (LSP's PCK@0.2). 300-W reports NME instead.
    c.pck_threshold = 0.5

    c.checkpoint = ml_collections.ConfigDict({"enabled": True, "keep": 2})
    c.log_every_steps = 50
    c.tensorboard = False
    c.distributed = ml_collections.ConfigDict({
        "enabled": False, "coordinator_address": None, "num_processes": None, "process_id": None,
    })
    return c


def validate_pose(config: ml_collections.ConfigDict, device_count: int) -> None:
    """Raises ``ValueError`` naming the first invalid field."""

    def check(ok: bool, field: str, why: str) -> None:
        if not ok:
            value = config
            for part in field.split("."):
                value = value[part]
            raise ValueError(f"Invalid config.{field}={value!r}: {why}")

    check(config.method == "heatmap_regression", "method",
          "keypoint runs support 'heatmap_regression'")
    check(config.model in POSE_MODELS, "model", f"must be one of {', '.join(POSE_MODELS)}")
    check(config.quant in QUANT_SETTINGS, "quant", f"must be one of {', '.join(QUANT_SETTINGS)}")
    check(config.image_size >= 16, "image_size", "must be at least 16")
    check(config.train_size >= 1, "train_size", "must be positive")
    check(config.test_size >= 1, "test_size", "must be positive")
    check(config.heatmap_sigma > 0, "heatmap_sigma", "must be positive")
    a = config.augment
    check(0 < a.scale_min <= a.scale_max, "augment.scale_min", "must be in (0, scale_max]")
    check(0 <= a.max_rotation <= 180, "augment.max_rotation", "must be in [0, 180] degrees")
    check(0 <= a.flip_prob <= 1, "augment.flip_prob", "must be in [0, 1]")
    check(config.optimizer.lr > 0, "optimizer.lr", "must be positive")
    check(0 <= config.optimizer.decay < 1, "optimizer.decay", "must be in [0, 1)")
    check(config.batch_size >= 1, "batch_size", "must be positive")
    check(config.batch_size % device_count == 0, "batch_size",
          f"must be divisible by the {device_count} devices of the mesh")
    check(config.eval_batch_size >= 1, "eval_batch_size", "must be positive")
    check(config.epochs >= 1, "epochs", "must be at least 1")
    check(0 < config.pck_threshold, "pck_threshold", "must be positive")
    check(config.checkpoint.keep >= 1, "checkpoint.keep", "must be at least 1")
    check(config.log_every_steps >= 1, "log_every_steps", "must be at least 1")
