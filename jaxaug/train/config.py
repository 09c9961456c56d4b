"""The base training config and its validation.

Experiment configs in ``configs/`` start from :func:`base_config` and override fields; every field
a run reads is declared here, so a typo on the command line (``--config.bach_size``) is an error.
"""

import math

import ml_collections
from ml_collections import config_dict

from jaxaug.methods.adatransform import MODES as ADATRANSFORM_MODES
from jaxaug.methods.adatransform import thesis_default as adatransform_default
from jaxaug.methods.online_augment import generator_names
from jaxaug.methods.tanda import DIVERSITY_SPACES as TANDA_DIVERSITY_SPACES
from jaxaug.methods.tanda import GENERATORS as TANDA_GENERATORS
from jaxaug.models.norm import CNSNPlacement
from jaxaug.objectives.meta import MODES as META_MODES
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

    # OnlineAugment (method "online_augment"): `generator` is "astn", "deform_vae",
    # "perturb_vae", a comma-separated list of them, or "comb" (all three); num_bn_sets must be
    # 1 + the number of generators. Each generator's section holds its adversarial weight beta
    # and regularizer weights, the papers' values by default. A step makes inner_num target
    # updates on generated images, then one on the clean batch; grad_clip bounds the target
    # gradient's global norm in each (the reference's 5; 0 or None: off).
    c.online_augment = ml_collections.ConfigDict({
        "generator": "astn", "inner_num": 1, "meta": False, "meta_mode": "exact",
        "grad_clip": config_dict.FieldReference(5.0, field_type=float),
        "astn": {"beta": 0.1, "cycle_weight": 0.1},
        "deform_vae": {"beta": 1e-2, "kl_weight": 1.0, "smooth_weight": 10.0},
        "perturb_vae": {"beta": 10.0, "weight": 1e-3},
    })

    # Adversarial AutoAugment (method "adv_autoaugment"): M policies per batch (the target sees
    # M x batch_size images), the controller's Adam lr and entropy weight (the paper's values),
    # and the steps between its updates (0: one epoch, the paper's window).
    c.adv_autoaugment = ml_collections.ConfigDict({
        "num_policies": 8, "entropy_weight": 1e-5, "controller_lr": 3.5e-4, "update_every": 0,
    })

    # AdaTransform (method "adatransform"), Tang thesis ch. 3: mode "transform" (K
    # meta-transformations), "cutout" or "erasing" (AdaCutout / AdaErasing: K moves of a random
    # box by move_pixels); s rollouts per image, discount gamma, weight disc_weight of the
    # discriminator's log D, entropy bonus entropy_weight (0 as in the thesis). N's batch: each
    # image transformed with probability apply_prob, plus clean_weight x the clean batch's loss;
    # the last stop_epochs epochs train N on clean images only. T and D update once per
    # update_every steps of N. T is a ResNet-18 of width transformer_width (64) with dropout
    # rate `dropout`, trained by Adam(policy_lr) with L2 decay policy_weight_decay.
    # cooperative_test applies the cooperative policy before classifying. Fields left None take
    # the thesis's value for the mode (sec. 3.6.1, jaxaug.methods.adatransform.THESIS_DEFAULTS):
    # transform K 8, lr 1e-4, decay 1e-4, apply_prob 1, clean_weight 1, stop_epochs 10,
    # cooperative_test on; cutout / erasing K 3, lr 3e-5, decay 1e-5, apply_prob 0.3,
    # clean_weight 0, stop_epochs 0, cooperative_test off.
    c.adatransform = ml_collections.ConfigDict({
        "mode": "transform", "num_steps": config_dict.placeholder(int), "samples": 2,
        "gamma": 0.5, "disc_weight": 0.1, "cutout_size": 16, "move_pixels": 2,
        "policy_lr": config_dict.placeholder(float),
        "policy_weight_decay": config_dict.placeholder(float),
        "apply_prob": config_dict.placeholder(float),
        "clean_weight": config_dict.placeholder(float),
        "stop_epochs": config_dict.placeholder(int), "update_every": 5,
        "transformer_width": 64, "dropout": 0.3, "entropy_weight": 0.0,
        "cooperative_test": config_dict.placeholder(bool),
    })

    # TANDA (method "tanda"): an "lstm" or "mean_field" generator of `sequence_length`
    # transformations, trained against a discriminator; the target trains on its augmentations
    # (each image with probability augment_prob) after `warmup_steps` steps on clean images.
    # The generator's diversity term diversity_weight / (MSE + 1e-6) takes the MSE between real
    # and augmented images in `diversity_space` "pixels" or "discriminator" (the hidden layer of
    # D `diversity_layer` back from its last); each TF's return discounts the later TFs' loss
    # changes by `discount`. The defaults are the TANDA reference's CIFAR-10 setting (mse_term
    # 0.001, mse_layer 1, gamma 0.5).
    c.tanda = ml_collections.ConfigDict({
        "generator": "lstm", "sequence_length": 5, "entropy_weight": 0.0, "augment_prob": 1.0,
        "warmup_steps": 500, "generator_lr": 1e-3, "diversity_weight": 1e-3,
        "diversity_space": "discriminator", "diversity_layer": 1, "discount": 0.5,
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
    # Method "cnsn_consistency": with probability cn_prob (config.cnsn), cross-entropy on the
    # clean pass plus `weight` x the Jensen-Shannon consistency of it and two CrossNorm passes.
    c.cnsn_consistency = ml_collections.ConfigDict({"weight": 10.0})
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
    if config.method == "online_augment":
        oa = config.online_augment
        try:
            names = generator_names(oa.generator)
        except ValueError as e:
            field = f"config.online_augment.generator={oa.generator!r}"
            raise ValueError(f"Invalid {field}: {e}") from e
        check(config.num_bn_sets >= 1 + len(names), "num_bn_sets",
              f"online_augment with {len(names)} generator(s) needs {1 + len(names)} "
              "(clean + one per generator)")
        for name in names:
            for field, value in oa[name].items():
                check(value >= 0, f"online_augment.{name}.{field}", "must be non-negative")
        check(oa.inner_num >= 1, "online_augment.inner_num", "must be at least 1")
        check(oa.grad_clip is None or oa.grad_clip == 0 or 0 < oa.grad_clip < float("inf"),
              "online_augment.grad_clip", "must be a positive finite number, or 0 or None for "
              "no clipping")
        check(oa.meta_mode in META_MODES, "online_augment.meta_mode",
              f"must be one of {', '.join(META_MODES)}")
        check(not oa.meta or config.batch_size % (2 * device_count) == 0, "batch_size",
              "must split into (train, validation) pairs on every device when meta is on")
    if config.method == "adv_autoaugment":
        aa = config.adv_autoaugment
        check(aa.num_policies >= 2, "adv_autoaugment.num_policies",
              "must be at least 2 (the rewards are normalised across the policies)")
        check(aa.entropy_weight >= 0, "adv_autoaugment.entropy_weight", "must be non-negative")
        check(aa.controller_lr > 0, "adv_autoaugment.controller_lr", "must be positive")
        check(aa.update_every >= 0, "adv_autoaugment.update_every",
              "must be non-negative (0: once per epoch)")
    if config.method == "adatransform":
        a = config.adatransform
        check(a.mode in ADATRANSFORM_MODES, "adatransform.mode",
              f"must be one of {', '.join(ADATRANSFORM_MODES)}")

        def setting(name):  # the field, or the thesis's value for the mode where it is None
            return adatransform_default(a.mode, name, a[name])

        check(setting("num_steps") >= 1, "adatransform.num_steps", "must be at least 1")
        check(a.samples >= 1, "adatransform.samples", "must be at least 1")
        check(0 <= a.gamma <= 1, "adatransform.gamma", "must be in [0, 1]")
        check(a.disc_weight >= 0, "adatransform.disc_weight", "must be non-negative")
        check(a.cutout_size >= 2, "adatransform.cutout_size", "must be at least 2")
        check(a.move_pixels >= 1, "adatransform.move_pixels", "must be at least 1")
        check(setting("policy_lr") > 0, "adatransform.policy_lr", "must be positive")
        check(setting("policy_weight_decay") >= 0, "adatransform.policy_weight_decay",
              "must be non-negative")
        check(0 <= setting("apply_prob") <= 1, "adatransform.apply_prob", "must be in [0, 1]")
        check(setting("clean_weight") >= 0, "adatransform.clean_weight", "must be non-negative")
        check(0 <= setting("stop_epochs") < config.epochs, "adatransform.stop_epochs",
              f"must be in [0, epochs) = [0, {config.epochs}): the transforms stop that many "
              "epochs before the end")
        check(a.update_every >= 1, "adatransform.update_every", "must be at least 1")
        check(a.transformer_width >= 1, "adatransform.transformer_width", "must be at least 1")
        check(0 <= a.dropout < 1, "adatransform.dropout", "must be in [0, 1)")
        check(a.entropy_weight >= 0, "adatransform.entropy_weight", "must be non-negative")
        check(not (a.cooperative_test and a.mode != "transform"), "adatransform.cooperative_test",
              "is only available in mode 'transform' (the box modes start from a random box)")
    if config.method == "tanda":
        t = config.tanda
        check(t.generator in TANDA_GENERATORS, "tanda.generator",
              f"must be one of {', '.join(TANDA_GENERATORS)}")
        check(t.sequence_length >= 1, "tanda.sequence_length", "must be at least 1")
        check(t.entropy_weight >= 0, "tanda.entropy_weight", "must be non-negative")
        check(0 <= t.augment_prob <= 1, "tanda.augment_prob", "must be in [0, 1]")
        check(t.warmup_steps >= 0, "tanda.warmup_steps", "must be non-negative")
        check(t.generator_lr > 0, "tanda.generator_lr", "must be positive")
        check(t.diversity_weight >= 0, "tanda.diversity_weight", "must be non-negative")
        check(t.diversity_space in TANDA_DIVERSITY_SPACES, "tanda.diversity_space",
              f"must be one of {', '.join(TANDA_DIVERSITY_SPACES)}")
        check(t.diversity_layer >= 0, "tanda.diversity_layer", "must be non-negative")
        check(0 <= t.discount <= 1, "tanda.discount", "must be in [0, 1]")
    if config.cnsn.selfnorm or config.cnsn.crossnorm:
        check(not config.model.startswith("shake-shake"), "model",
              "SelfNorm / CrossNorm (config.cnsn) are placed in WRN and ResNet blocks only")
        try:
            cnsn_placement(config)
        except ValueError as e:
            raise ValueError(f"Invalid config.cnsn: {e}") from e
    if config.method == "cnsn_consistency":
        check(config.cnsn.crossnorm, "cnsn.crossnorm",
              "method cnsn_consistency compares clean and CrossNorm passes: enable CrossNorm")
        check(config.cnsn_consistency.weight >= 0, "cnsn_consistency.weight",
              "must be non-negative")
    check(config.dtype in ("float32", "bfloat16"), "dtype", "must be 'float32' or 'bfloat16'")
    check(0 <= config.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
    check(config.checkpoint.keep >= 1, "checkpoint.keep", "must be at least 1")
    check(config.log_every_steps >= 1, "log_every_steps", "must be at least 1")


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
