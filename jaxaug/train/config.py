"""The base training config of each task and its validation.

Experiment configs in ``configs/`` start from :func:`base_config` (``base_config("keypoints")``
for keypoint runs) and override fields; every field
a run reads is declared here, so a typo on the command line (``--config.bach_size``) is an error.
"""

import importlib.util
import inspect
import math
import os

import ml_collections
from ml_collections import config_dict

from jaxaug import methods, mix, policies
from jaxaug.data import host_augment
from jaxaug.data.augment import CROPS
from jaxaug.models.cunet import INITS as CUNET_INITS
from jaxaug.models.cunet import MEMORY_EFFICIENT
from jaxaug.models.norm import CNSNPlacement
from jaxaug.models.pose import POSE_MODELS
from jaxaug.policies.policy import POLICY_NAMES
from jaxaug.quant import SETTINGS as QUANT_SETTINGS
from jaxaug.quant.layers import INT8_SUFFIX

# Fields that only steer logging and bookkeeping, and how the run is launched (a section names all
# its fields): a resumed run may change them, and the processes of one run differ in them
# (`distributed.process_id`). The global batch and its order depend neither on the process count
# nor on the input pipeline's workers, so a run may also resume with others.
RUN_CONTROL_FIELDS = ("log_every_steps", "tensorboard", "checkpoint.keep", "save_image_grid",
                      "distributed", "data.worker_count", "data.threads")


# Where the standard augmentation runs (config.augment.where).
AUGMENT_WHERE = ("device", "host")

# Each task with the adjective its messages use.
TASKS = {"classification": "classification", "keypoints": "keypoint"}
# The method a task trains unless the config names another.
DEFAULT_METHODS = {"classification": "supervised", "keypoints": "heatmap_regression"}


def base_config(task: str = "classification") -> ml_collections.ConfigDict:
    """The base config of ``task``: the generic fields every run reads (seed, schedule of
    evaluations, checkpoints, logging, the divergence guard, distribution), the task's data,
    model and optimizer fields, and the config sections of the task's registered methods."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    c = ml_collections.ConfigDict()
    if task != "classification":
        # No field means classification: its configs, and the config.json of its runs (which a
        # resumed run must match), are as they were before tasks had names.
        c.task = task
    c.seed = 0
    c.method = DEFAULT_METHODS[task]
    c.dataset = "synthetic"
    {"classification": _classification_fields, "keypoints": _keypoint_fields}[task](c)

    # Each method's section, `config.<section>`, comes from its registration with its defaults
    # (jaxaug.methods.registry; the method's docstring says what each field does).
    for name, defaults in methods.registry.sections(task).items():
        c[name] = ml_collections.ConfigDict(defaults)

    # Evaluate the held-out splits after every `eval_every`-th epoch and after the last one; on a
    # small training set the 10,000 test images can cost more than the epoch itself.
    c.eval_every = 1
    # A step whose loss or new state is not finite: "stop" ends the run without saving that state
    # (summary.json says "diverged", train.py exits 1); "skip" keeps the previous state and counts
    # the step in the logged metric "nonfinite".
    c.nonfinite = "stop"
    c.checkpoint = ml_collections.ConfigDict({"enabled": True, "keep": 2})
    c.log_every_steps = 50
    c.tensorboard = False
    # The host input pipeline (grain, `jaxaug.data.iterate`): `worker_count` worker processes
    # decode batches (0: in this process; for streamed sets, not in-memory ones, which each
    # worker would receive whole), each with `threads` reader threads. Batches do not depend on
    # either, so a resumed run may change them. `stream`: decode an image folder when read
    # instead of holding it decoded in memory (None: when it would exceed
    # jaxaug.data.dataset.IN_MEMORY_LIMIT); its mean / std are then estimated on a sample.
    c.data = ml_collections.ConfigDict({"worker_count": 0, "threads": 1,
                                        "stream": config_dict.placeholder(bool)})
    c.distributed = ml_collections.ConfigDict({
        "enabled": False,
        "coordinator_address": config_dict.placeholder(str),
        "num_processes": config_dict.placeholder(int),
        "process_id": config_dict.placeholder(int),
        # Seconds every process waits for the others to join before failing with an error that
        # names the processes missing (JAX's own default).
        "initialization_timeout": 300.0,
        # How often (in steps, and at every epoch's end) the processes agree whether one of them
        # was asked to stop (SIGTERM / Ctrl-C); a stop takes effect at the next such step.
        "stop_check_every_steps": 10,
    })
    return c


def recorded_config(recorded: dict) -> ml_collections.ConfigDict:
    """A run's recorded ``config.json`` (``recorded``, as parsed) on this code: its task's
    `base_config` updated with every recorded value. A field the code gained after the run's
    commit takes its default, which is how the run trained without it (a field is added with
    the behaviour it had before as its default), so tools built on this code can load the runs
    of an older one."""
    config = base_config(recorded.get("task", "classification"))
    config.update(recorded)
    return config


def keypoints_config() -> ml_collections.ConfigDict:
    """`base_config` of keypoint (pose / landmark) training."""
    return base_config("keypoints")


def load_config_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """A config file's ``get_config(arg)`` (``get_config()`` when ``arg`` is None), as
    ``train.py --config=path[:arg]`` loads it. ``ValueError`` names the file if it has no
    ``get_config`` or its ``get_config`` cannot take ``arg`` (or needs one)."""
    spec = importlib.util.spec_from_file_location(f"_config_{os.path.basename(path)}", path)
    if spec is None:
        raise ValueError(f"config file {path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} has no get_config()")
    args = () if arg is None else (arg,)
    try:  # checked before the call, so that a TypeError inside get_config stays one
        inspect.signature(module.get_config).bind(*args)
    except TypeError:
        raise ValueError(f"config file {path!r}: get_config() " + (
            f"takes no argument, got {arg!r}" if args else
            f"needs an argument ({path}:<arg>)")) from None
    return module.get_config(*args)


def _classification_fields(c: ml_collections.ConfigDict) -> None:
    c.data_dir = config_dict.placeholder(str)  # tfds data_dir
    c.cache_dir = config_dict.placeholder(str)  # decoded-array cache; default ~/.cache/jaxaug
    c.image_size = config_dict.placeholder(int)  # resize image folders of mixed sizes
    c.reduced = 0  # class-balanced subset of the training split; 0 keeps all
    c.val_size = 0  # class-balanced hold-out from the training split
    c.data_seed = 0  # fixes the reduced subset and the hold-out independently of `seed`

    # crop: "pad" (CIFAR's zero-padded pad-crop) or "random_resized" (torchvision's
    # RandomResizedCrop with crop_scale / crop_ratio, back to the loaded size; ImageNet's loader
    # has already resized and centre-cropped to image_size, so the crop is drawn from that).
    # policy: "" (none) or a name in jaxaug.policies.POLICY_NAMES, applied after crop and flip;
    # a timm string ("rand-m9-mstd0.5", "augmix-m5-w4-d2"); "table:<path>", an AutoAugment table
    # in JSON (a dada search's export, jaxaug.policies.load_table); num_ops / magnitude are the named
    # RandAugment's N and M; same_on_batch: one draw of the policy for the whole batch. where:
    # "device" (jaxaug.data.augment.standard in the jitted step) or "host" (the same draws applied
    # by numpy / Pillow in the input workers, jaxaug.data.host_augment; Policy objects only, no
    # AugMix). mixup: timm's MixUp / CutMix switch on the
    # augmented batch (`jaxaug.mix.Mixup`, its fields; off while both alphas are 0), the labels
    # then soft; label smoothing stays config.label_smoothing, applied in the loss.
    c.augment = ml_collections.ConfigDict({
        "crop": "pad", "pad": 4, "crop_scale": (0.08, 1.0), "crop_ratio": (3 / 4, 4 / 3),
        "flip": True, "cutout": 0, "policy": "", "num_ops": 2, "magnitude": 9,
        "same_on_batch": False, "where": "device",
        "mixup": {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "prob": 1.0, "switch_prob": 0.5,
                  "mode": "batch", "correct_lam": True,
                  "cutmix_minmax": config_dict.placeholder(tuple)},
    })

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
    c.optimizer = ml_collections.ConfigDict({
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "warmup_epochs": 0.0,
    })
    c.save_image_grid = True


def _keypoint_fields(c: ml_collections.ConfigDict) -> None:
    # "synthetic" (procedural articulated figures, MPII's 16 joints) or a real set, see
    # jaxaug.train.task.load_keypoints; image_size is the square network input.
    c.image_size = 64
    c.train_size = 4000  # synthetic only
    c.test_size = 500  # synthetic only
    # Images held out of the training set as a validation split (0: none), drawn by data_seed.
    # With one, the best epoch (checkpoint "best", summary's test_<metric>_at_best_val) is
    # chosen on it, never on the test set.
    c.val_size = 0
    c.data_seed = 0

    # model: "cunet" or "hourglass", built from its section; `quant` one of jaxaug.quant.SETTINGS
    # ("fp": full precision). CU-Net's features / growth are the paper's m / n.
    c.model = "cunet"
    c.quant = "fp"
    # CPU-sized defaults; the papers' CU-Net is num_unets=8 (or 16), depth=4, features=128,
    # growth=32, stem_stride=4 on 256x256 crops, and the hourglass num_stacks=8, features=256.
    # refine_iterations: extra passes of the thesis's iterative refinement (sec. 5.3.4; 1 there),
    # refine_growth its dense layers' new channels (16 gives the thesis's 0.2 M on CU-Net-4).
    # memory_efficient: False, True (the reference's rematerialised bottlenecks) or "int8_codes"
    # (with a "+int8" quant setting: only the quantized convs' int8 input codes are kept for the
    # backward pass, jaxaug.quant.residuals), hence a field of either type.
    c.cunet = ml_collections.ConfigDict({
        "num_unets": 2, "depth": 2, "order": 1, "features": 64, "growth": 16, "stem_stride": 4,
        "memory_efficient": ml_collections.FieldReference(False, field_type=object),
        "refine_iterations": 0, "refine_growth": 16,
        # initialization: "kaiming" (this library's) or "reference" (the official code's
        # U(+-1/sqrt(fan_in)) convs and U(0, 1) BatchNorm gammas, jaxaug.models.cunet.INITS).
        "initialization": "kaiming",
    })
    # block: "residual" (bottleneck modules, the paper's) or "dense" (CU-Net's dense blocks of
    # growth `growth`) in every hourglass module.
    c.hourglass = ml_collections.ConfigDict({
        "num_stacks": 2, "depth": 2, "features": 64, "stem_stride": 4, "block": "residual",
        "growth": 16,
    })

    # Gaussian heatmap width (heatmap pixels) and the random augmentation of every training image,
    # which every keypoint method applies itself: heatmap_regression's defaults.
    own = methods.registry.keyword_defaults(methods.pose.heatmap_regression, "sigma", "scale_range",
                                            "max_rotation", "flip_prob")
    c.heatmap_sigma = own["sigma"]
    c.augment = ml_collections.ConfigDict({
        "scale_min": own["scale_range"][0], "scale_max": own["scale_range"][1],
        "max_rotation": own["max_rotation"], "flip_prob": own["flip_prob"],
    })

    # RMSProp at 2.5e-4, as the stacked hourglass and CU-Net papers train; decay and eps are the
    # reference code's torch.optim.RMSprop(alpha=0.99, eps=1e-8) (zhiqiangdon/CU-Net,
    # pose-adv-aug), computed as torch does (jaxaug.methods.pose.torch_rmsprop).
    c.optimizer = ml_collections.ConfigDict({"lr": 2.5e-4, "decay": 0.99, "eps": 1e-8})
    c.batch_size = 32
    c.eval_batch_size = 100
    c.epochs = 10
    # PCK threshold as a fraction of the layout's normaliser: 0.5 of the head size (PCKh@0.5,
    # MPII and synthetic) or 0.2 of the torso (LSP's PCK@0.2). 300-W reports NME instead.
    c.pck_threshold = 0.5


def validate(config: ml_collections.ConfigDict, device_count: int) -> None:
    """Raises ``ValueError`` naming the first invalid field."""

    def check(ok: bool, field: str, why: str) -> None:
        if not ok:
            raise ValueError(f"Invalid config.{field}={config_value(config, field)!r}: {why}")

    task = config.get("task", "classification")
    check(task in TASKS, "task", f"must be one of {', '.join(TASKS)}")
    supported = methods.registry.names(task)
    check(config.method in supported,
          "method", f"{TASKS[task]} runs support {', '.join(map(repr, supported))}")
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
    {"classification": _validate_classification, "keypoints": _validate_keypoints}[task](
        config, check)
    check(config.checkpoint.keep >= 1, "checkpoint.keep", "must be at least 1")
    check(config.log_every_steps >= 1, "log_every_steps", "must be at least 1")
    check(config.data.worker_count >= 0, "data.worker_count", "must be non-negative")
    check(config.data.threads >= 0, "data.threads", "must be non-negative")
    check(config.distributed.stop_check_every_steps >= 1, "distributed.stop_check_every_steps",
          "must be at least 1")
    methods.registry.check(config, device_count)


def _validate_classification(config, check) -> None:
    check(0 <= config.optimizer.momentum < 1, "optimizer.momentum", "must be in [0, 1)")
    check(config.optimizer.weight_decay >= 0, "optimizer.weight_decay", "must be non-negative")
    check(
        0 <= config.optimizer.warmup_epochs < config.epochs,
        "optimizer.warmup_epochs",
        "must be in [0, epochs)",
    )
    check(config.augment.crop in CROPS, "augment.crop", f"must be one of {', '.join(CROPS)}")
    check(config.augment.pad >= 0, "augment.pad", "must be non-negative")
    scale, ratio = tuple(config.augment.crop_scale), tuple(config.augment.crop_ratio)
    check(len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1, "augment.crop_scale",
          "must be (low, high) with 0 < low <= high <= 1")
    check(len(ratio) == 2 and 0 < ratio[0] <= ratio[1], "augment.crop_ratio",
          "must be (low, high) with 0 < low <= high")
    check(config.augment.cutout >= 0, "augment.cutout", "must be non-negative")
    if config.augment.policy:
        try:
            policies.get(config.augment.policy)
        except ValueError as e:
            raise ValueError(f"Invalid config.augment.policy={config.augment.policy!r}: must be "
                             f"'' (no policy), one of {', '.join(POLICY_NAMES)}, a timm "
                             f"string or table:<JSON table> ({e})") from e
    check(config.augment.num_ops >= 1, "augment.num_ops", "must be at least 1")
    check(0 <= config.augment.magnitude <= 10, "augment.magnitude", "must be in [0, 10]")
    check(config.augment.where in AUGMENT_WHERE, "augment.where",
          f"must be one of {', '.join(map(repr, AUGMENT_WHERE))}")
    if config.augment.where == "host" and config.augment.policy:
        try:
            host_augment.check_policy(policies.get(
                config.augment.policy, num_ops=config.augment.num_ops,
                magnitude=config.augment.magnitude))
        except ValueError as e:
            raise ValueError(f"Invalid config.augment.policy={config.augment.policy!r} with "
                             f"augment.where='host': {e}") from e
    try:
        mixer(config.augment.mixup, num_classes=2)
    except ValueError as e:
        raise ValueError(f"Invalid config.augment.mixup: {e}") from e
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


def mixer(settings: ml_collections.ConfigDict, num_classes: int) -> mix.Mixup | None:
    """The `jaxaug.mix.Mixup` of ``config.augment.mixup`` for ``num_classes`` classes, or None
    while both alphas are 0; ``ValueError`` names a bad field."""
    if not (settings.mixup_alpha or settings.cutmix_alpha):
        return None
    return mix.Mixup(num_classes=num_classes, **settings)


def _validate_keypoints(config, check) -> None:
    check(config.model in POSE_MODELS, "model", f"must be one of {', '.join(POSE_MODELS)}")
    check(config.quant.removesuffix(INT8_SUFFIX) in QUANT_SETTINGS, "quant",
          f"must be one of {', '.join(QUANT_SETTINGS)}, optionally with the suffix {INT8_SUFFIX}")
    check(config.cunet.initialization in CUNET_INITS, "cunet.initialization",
          f"must be one of {CUNET_INITS}")
    memory_efficient = config.cunet.memory_efficient
    check(type(memory_efficient) in (bool, str) and memory_efficient in MEMORY_EFFICIENT,
          "cunet.memory_efficient", "must be False, True or 'int8_codes'")
    check(memory_efficient != "int8_codes" or config.quant.endswith(INT8_SUFFIX),
          "cunet.memory_efficient", f"'int8_codes' needs a quant setting with the suffix "
          f"{INT8_SUFFIX}, e.g. 818{INT8_SUFFIX}")
    check(config.image_size >= 16, "image_size", "must be at least 16")
    check(config.train_size >= 1, "train_size", "must be positive")
    check(config.test_size >= 1, "test_size", "must be positive")
    check(isinstance(config.val_size, int) and config.val_size >= 0, "val_size",
          "must be a non-negative int")
    check(config.heatmap_sigma > 0, "heatmap_sigma", "must be positive")
    a = config.augment
    check(0 < a.scale_min <= a.scale_max, "augment.scale_min", "must be in (0, scale_max]")
    check(0 <= a.max_rotation <= 180, "augment.max_rotation", "must be in [0, 180] degrees")
    check(0 <= a.flip_prob <= 1, "augment.flip_prob", "must be in [0, 1]")
    check(0 <= config.optimizer.decay < 1, "optimizer.decay", "must be in [0, 1)")
    check(0 < config.pck_threshold, "pck_threshold", "must be positive")


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


def is_run_control(name: str) -> bool:
    """Whether the dotted field ``name`` is, or lies in a section of, `RUN_CONTROL_FIELDS`."""
    return any(name == f or name.startswith(f"{f}.") for f in RUN_CONTROL_FIELDS)


def changed_fields(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two config dicts, run-control fields excepted."""
    changed = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += changed_fields(a, b, prefix=f"{name}.")
        elif a != b and not is_run_control(name):
            changed.append(name)
    return changed
