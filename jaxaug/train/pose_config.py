"""The base config of keypoint (pose / landmark) training runs, and its validation.

A config with ``task = "keypoints"`` is trained by `jaxaug.train.train_pose`; `train.py` picks the
trainer from ``task``. Configs in ``configs/`` start from :func:`pose_config` and override fields.
"""

import ml_collections

from jaxaug.models.pose import POSE_MODELS
from jaxaug.quant import SETTINGS as QUANT_SETTINGS

POSE_METHODS = ("heatmap_regression", "adversarial_pose")
KEYPOINT_DATASETS = ("synthetic", "mpii:<annotation .mat>", "lsp:<dir>", "300w:<dir>")


def pose_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "keypoints"
    c.seed = 0
    # "heatmap_regression" (random augmentation) or "adversarial_pose" (ASR + AHO, see below).
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
    # block: "residual" (bottleneck modules, the paper's) or "dense" (CU-Net's dense blocks of
    # growth `growth`) in every hourglass module.
    c.hourglass = ml_collections.ConfigDict({
        "num_stacks": 2, "depth": 2, "features": 64, "stem_stride": 4, "block": "residual",
        "growth": 16,
    })

    # Gaussian heatmap width (heatmap pixels) and the random augmentation of every training image.
    c.heatmap_sigma = 1.0
    c.augment = ml_collections.ConfigDict({
        "scale_min": 0.75, "scale_max": 1.25, "max_rotation": 30.0, "flip_prob": 0.5,
    })

    # method="adversarial_pose" (Peng et al. 2018, jaxaug.methods.adversarial_pose): the run's
    # epochs go to the stages in order: pose_epochs of the pose network alone, pretrain_epochs of
    # pre-training the augmentation network G on the frozen pose network, then joint training for
    # the rest (0 epochs skips a stage). G (width channels) has num_scales x num_rotations ASR bins
    # tiling [scale_min, scale_max] x [-max_rotation, max_rotation] (each a Gaussian of std
    # sigma_fraction x the bin's half-width, truncated to the bin) and a grid x grid occlusion grid
    # of which 1..max_cells cells are zeroed. alpha / beta: reward / penalty rates (the reference
    # code's 0.2 / 0.5). G uses RMSProp at pretrain_lr, then lr (the paper's 5e-5). batch_size
    # must split into thirds (random | ASR | AHO).
    c.adversarial = ml_collections.ConfigDict({
        "pose_epochs": 5, "pretrain_epochs": 1, "width": 64, "num_scales": 7,
        "num_rotations": 9, "grid": 4, "scale_min": 0.75, "scale_max": 1.25, "max_rotation": 30.0,
        "sigma_fraction": 0.5, "alpha": 0.2, "beta": 0.5, "max_cells": 2, "lr": 5e-5,
        "pretrain_lr": 2.5e-4,
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

    check(config.method in POSE_METHODS, "method",
          f"keypoint runs support {', '.join(map(repr, POSE_METHODS))}")
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
    if config.method == "adversarial_pose":
        _validate_adversarial(config, check)
    check(config.checkpoint.keep >= 1, "checkpoint.keep", "must be at least 1")
    check(config.log_every_steps >= 1, "log_every_steps", "must be at least 1")


def _validate_adversarial(config, check) -> None:
    a = config.adversarial
    check(config.batch_size % 3 == 0, "batch_size",
          "must be divisible by 3 for adversarial_pose (random | ASR | AHO thirds)")
    for name in ("pose_epochs", "pretrain_epochs"):
        check(isinstance(a[name], int) and a[name] >= 0, f"adversarial.{name}",
              "must be an integer >= 0")
    check(a.pose_epochs + a.pretrain_epochs <= config.epochs, "adversarial.pretrain_epochs",
          f"pose_epochs + pretrain_epochs must be <= epochs = {config.epochs} (joint training "
          "gets the rest)")
    check(a.width >= 1, "adversarial.width", "must be positive")
    check(a.num_scales >= 2, "adversarial.num_scales", "needs at least 2 bins")
    check(a.num_rotations >= 2, "adversarial.num_rotations", "needs at least 2 bins")
    m = config[config.model]
    lowest = config.image_size // (m.stem_stride * 2**m.depth)
    check(a.grid >= 1 and lowest % a.grid == 0, "adversarial.grid",
          f"must divide the lowest feature resolution {lowest} "
          f"(image_size / (stem_stride * 2^depth))")
    check(0 < a.scale_min < a.scale_max, "adversarial.scale_min", "must be in (0, scale_max)")
    check(0 < a.max_rotation <= 180, "adversarial.max_rotation", "must be in (0, 180] degrees")
    check(a.sigma_fraction > 0, "adversarial.sigma_fraction", "must be positive")
    check(a.alpha >= 0, "adversarial.alpha", "must be >= 0")
    check(a.beta >= 0, "adversarial.beta", "must be >= 0")
    check(a.max_cells in (1, 2), "adversarial.max_cells", "must be 1 or 2")
    check(a.lr > 0, "adversarial.lr", "must be positive")
    check(a.pretrain_lr > 0, "adversarial.pretrain_lr", "must be positive")


def stage_schedule(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
    """The run's stages in order with their epochs: all "pose" for heatmap_regression; "pose",
    "pretrain", "joint" for adversarial_pose (stages of 0 epochs left out)."""
    if config.method != "adversarial_pose":
        return [("pose", config.epochs)]
    a = config.adversarial
    stages = [("pose", a.pose_epochs), ("pretrain", a.pretrain_epochs),
              ("joint", config.epochs - a.pose_epochs - a.pretrain_epochs)]
    return [(name, epochs) for name, epochs in stages if epochs > 0]
