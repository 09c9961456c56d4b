"""The base training config and its validation.

Experiment configs in ``configs/`` start from :func:`base_config` and override fields; every field
a run reads is declared here, so a typo on the command line (``--config.bach_size``) is an error.
"""

import math

import ml_collections
from ml_collections import config_dict

from jaxaug import methods
from jaxaug.models.norm import CNSNPlacement
from jaxaug.policies.policy import POLICY_NAMES

# Fields that only steer logging and bookkeeping: a resumed run may change them.
RUN_CONTROL_FIELDS = ("log_every_steps", "tensorboard", "checkpoint.keep", "save_image_grid")


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.method = "supervised"

    c.dataset = "synthetic"
    c.data_dir = config_dict.placeholder(str)  # tfds data_dir
    c.cache_dir = config_dict.placeholder(str)  # decoded-array cache; default ~/.cache/jaxaug
    c.image_size = config_dict.placeholder(int)  # resize image folders of mixed sizes
    c.reduced = 0  # class-balanced subset of the training split; 0 keeps all
    c.val_size = 0  # class-balanced hold-out from the training split
    c.data_seed = 0  # fixes the reduced subset and the hold-out independently of `seed`

    # policy: "" (none) or a name in jaxaug.policies.POLICY_NAMES, applied after crop and flip;
    # num_ops / magnitude are RandAugment's N and M.
    c.augment = ml_collections.ConfigDict({
        "pad": 4, "flip": True, "cutout": 0, "policy": "", "num_ops": 2, "magnitude": 9,
    })

    # Each method's section, `config.<method>`, comes from its registration with its defaults
    # (jaxaug.methods.registry; the method's docstring says what each field does).
    for name, defaults in methods.registry.sections().items():
        c[name] = ml_collections.ConfigDict(defaults)

    c.model = "wrn-28-10"
    # SelfNorm / CrossNorm in every residual block of a WRN or ResNet (jaxaug.models.norm):
    # `position` "post" | "pre" | "residual"; CrossNorm `cn_mode` "2-instance" | "1-instance",
    # `cn_crop` "neither" | "style" | "content" | "both"; per training pass, `cn_active` = k > 0
    # blocks are drawn when a Bernoulli(cn_prob) coin comes up (the CNSN reference), 0 switches
    # each block on independently with cn_prob. SelfNorm learns f and g (sn_recalibrate_mean) or
    # g alone (False, the reference code's CIFAR networks).
    c.cnsn = ml_collections.ConfigDict({
        "selfnorm": False, "crossnorm": False, "position": "post", "cn_prob": 0.5,
        "cn_mode": "2-instance", "cn_crop": "neither", "cn_active": 0,
        "sn_recalibrate_mean": True,
    })
    c.num_bn_sets = 1
    c.dtype = "float32"
    c.label_smoothing = 0.0

    c.batch_size = 128
    c.eval_batch_size = 500
    c.epochs = 200
    # Evaluate the held-out splits after every `eval_every`-th epoch and after the last one; on a
    # small training set the 10,000 test images can cost more than the epoch itself.
    c.eval_every = 1
    c.optimizer = ml_collections.ConfigDict({
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "warmup_epochs": 0.0,
    })

    # A step whose loss or new state is not finite: "stop" ends the run without saving that state
    # (summary.json says "diverged", train.py exits 1); "skip" keeps the previous state and counts
    # the step in the logged metric "nonfinite".
    c.nonfinite = "stop"
    c.checkpoint = ml_collections.ConfigDict({"enabled": True, "keep": 2})
    c.log_every_steps = 50
    c.tensorboard = False
    c.save_image_grid = True
    c.distributed = ml_collections.ConfigDict({
        "enabled": False,
        "coordinator_address": config_dict.placeholder(str),
        "num_processes": config_dict.placeholder(int),
        "process_id": config_dict.placeholder(int),
    })
    return c


def validate(config: ml_collections.ConfigDict, device_count: int) -> None:
    """Raises ``ValueError`` naming the first invalid field."""

    def check(ok: bool, field: str, why: str) -> None:
        if not ok:
            raise ValueError(f"Invalid config.{field}={config_value(config, field)!r}: {why}")

    check(config.epochs >= 1, "epochs", "must be at least 1")
    check(config.batch_size >= 1, "batch_size", "must be positive")
    check(
        config.batch_size % device_count == 0,
        "batch_size",
        f"must be divisible by the {device_count} devices of the mesh",
    )
    check(config.eval_batch_size >= 1, "eval_batch_size", "must be positive")
    check(isinstance(config.eval_every, int) and config.eval_every >= 1, "eval_every",
          "must be a positive number of epochs")
    check(0 < config.optimizer.lr < math.inf, "optimizer.lr", "must be positive and finite")
    check(config.nonfinite in ("stop", "skip"), "nonfinite", "must be 'stop' or 'skip'")
    check(0 <= config.optimizer.momentum < 1, "optimizer.momentum", "must be in [0, 1)")
    check(config.optimizer.weight_decay >= 0, "optimizer.weight_decay", "must be non-negative")
    check(
        0 <= config.optimizer.warmup_epochs < config.epochs,
        "optimizer.warmup_epochs",
        "must be in [0, epochs)",
    )
    check(config.augment.pad >= 0, "augment.pad", "must be non-negative")
    check(config.augment.cutout >= 0, "augment.cutout", "must be non-negative")
    check(
        config.augment.policy in ("", *POLICY_NAMES),
        "augment.policy",
        f"must be '' (no policy) or one of {', '.join(POLICY_NAMES)}",
    )
    check(config.augment.num_ops >= 1, "augment.num_ops", "must be at least 1")
    check(0 <= config.augment.magnitude <= 10, "augment.magnitude", "must be in [0, 10]")
    check(config.reduced >= 0, "reduced", "must be non-negative (0 keeps the whole split)")
    check(config.val_size >= 0, "val_size", "must be non-negative")
    check(config.num_bn_sets >= 1, "num_bn_sets", "must be at least 1")
    if config.cnsn.selfnorm or config.cnsn.crossnorm:
        check(not config.model.startswith("shake-shake"), "model",
              "SelfNorm / CrossNorm (config.cnsn) are placed in WRN and ResNet blocks only")
        try:
            cnsn_placement(config)
        except ValueError as e:
            raise ValueError(f"Invalid config.cnsn: {e}") from e
    check(config.dtype in ("float32", "bfloat16"), "dtype", "must be 'float32' or 'bfloat16'")
    check(0 <= config.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
    check(config.checkpoint.keep >= 1, "checkpoint.keep", "must be at least 1")
    check(config.log_every_steps >= 1, "log_every_steps", "must be at least 1")
    methods.registry.check(config, device_count)


def cnsn_placement(config: ml_collections.ConfigDict) -> CNSNPlacement | None:
    """The `CNSNPlacement` of ``config.cnsn``, or None when neither SelfNorm nor CrossNorm is on."""
    c = config.cnsn
    if not (c.selfnorm or c.crossnorm):
        return None
    return CNSNPlacement(selfnorm=c.selfnorm, crossnorm=c.crossnorm, position=c.position,
                         cn_prob=c.cn_prob, cn_mode=c.cn_mode, cn_crop=c.cn_crop,
                         cn_active=c.cn_active, sn_recalibrate_mean=c.sn_recalibrate_mean)


def config_value(config: ml_collections.ConfigDict, field: str):
    value = config
    for part in field.split("."):
        value = value[part]
    return value


def changed_fields(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two config dicts, run-control fields excepted."""
    changed = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += changed_fields(a, b, prefix=f"{name}.")
        elif a != b and name not in RUN_CONTROL_FIELDS:
            changed.append(name)
    return changed
