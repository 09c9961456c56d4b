"""Training methods: each is ``init`` plus a pure ``step`` built from objectives."""

import functools
from collections.abc import Callable

import flax.linen as nn
import ml_collections
import optax

from jaxaug.methods import adatransform, adv_autoaugment, online_augment, tanda
from jaxaug.methods.base import Method, TargetState, init_target, predict_target
from jaxaug.methods.cnsn_consistency import cnsn_consistency
from jaxaug.methods.supervised import supervised


def _supervised_from_config(model, optimizer, config, lr_schedule, image_stats, steps_per_epoch):
    del lr_schedule, image_stats, steps_per_epoch
    return supervised(model, optimizer, label_smoothing=config.label_smoothing)


def _online_augment_from_config(model, optimizer, config, lr_schedule, image_stats,
                                steps_per_epoch):
    del image_stats, steps_per_epoch
    c = config.online_augment
    gens = [online_augment.GENERATORS[name](**c[name])
            for name in online_augment.generator_names(c.generator)]
    return online_augment.online_augment(
        model, optimizer, gens, inner_num=c.inner_num, meta=c.meta, meta_mode=c.meta_mode,
        lr_schedule=lr_schedule, grad_clip=c.grad_clip)


def _adv_autoaugment_from_config(model, optimizer, config, lr_schedule, image_stats,
                                steps_per_epoch):
    del lr_schedule
    c = config.adv_autoaugment
    update_every = c.update_every or steps_per_epoch
    if not update_every:
        raise ValueError("adv_autoaugment: config.adv_autoaugment.update_every is 0 (one epoch) "
                         "but the number of steps per epoch was not given")
    return adv_autoaugment.adv_autoaugment(
        model, optimizer, mean=image_stats[0], std=image_stats[1], update_every=update_every,
        num_policies=c.num_policies, entropy_weight=c.entropy_weight,
        controller_optimizer=optax.adam(c.controller_lr), cutout=config.augment.cutout)


def _adatransform_from_config(model, optimizer, config, lr_schedule, image_stats,
                             steps_per_epoch):
    """Unset (None) fields take the thesis's value for the mode (`adatransform.THESIS_DEFAULTS`);
    the transforms stop ``stop_epochs`` before the end, at step (epochs - stop_epochs) x
    ``steps_per_epoch``."""
    del lr_schedule
    c = config.adatransform
    setting = functools.partial(adatransform.thesis_default, c.mode)
    stop_epochs = setting("stop_epochs", c.stop_epochs)
    stop_step = None
    if stop_epochs:
        if not steps_per_epoch:
            raise ValueError("adatransform: config.adatransform.stop_epochs needs the number of "
                             "steps per epoch, which was not given")
        stop_step = max(config.epochs - stop_epochs, 0) * steps_per_epoch
    return adatransform.adatransform(
        model, optimizer, mean=image_stats[0], std=image_stats[1], mode=c.mode,
        num_steps=setting("num_steps", c.num_steps), samples=c.samples, gamma=c.gamma,
        disc_weight=c.disc_weight, cutout_size=c.cutout_size, move_pixels=c.move_pixels,
        apply_prob=setting("apply_prob", c.apply_prob),
        clean_weight=setting("clean_weight", c.clean_weight), update_every=c.update_every,
        stop_step=stop_step,
        transformer_width=c.transformer_width, dropout=c.dropout,
        policy_optimizer=adatransform.make_policy_optimizer(
            setting("policy_lr", c.policy_lr), setting("policy_weight_decay",
                                                       c.policy_weight_decay)),
        cooperative_test=c.cooperative_test, entropy_weight=c.entropy_weight)


def _tanda_from_config(model, optimizer, config, lr_schedule, image_stats, steps_per_epoch):
    del lr_schedule, steps_per_epoch
    c = config.tanda
    return tanda.tanda(
        model, optimizer, mean=image_stats[0], std=image_stats[1], generator=c.generator,
        sequence_length=c.sequence_length, entropy_weight=c.entropy_weight,
        augment_prob=c.augment_prob, warmup_steps=c.warmup_steps,
        generator_optimizer=optax.adam(c.generator_lr), diversity_weight=c.diversity_weight,
        diversity_space=c.diversity_space, diversity_layer=c.diversity_layer,
        discount=c.discount)


def _cnsn_consistency_from_config(model, optimizer, config, lr_schedule, image_stats,
                                 steps_per_epoch):
    del lr_schedule, image_stats, steps_per_epoch
    return cnsn_consistency(model, optimizer, cn_prob=config.cnsn.cn_prob,
                            weight=config.cnsn_consistency.weight)


_REGISTRY: dict[str, Callable[..., Method]] = {
    "supervised": _supervised_from_config,
    "online_augment": _online_augment_from_config,
    "adv_autoaugment": _adv_autoaugment_from_config,
    "adatransform": _adatransform_from_config,
    "tanda": _tanda_from_config,
    "cnsn_consistency": _cnsn_consistency_from_config,
}


def target_updates_per_step(config: ml_collections.ConfigDict) -> int:
    """How many optimizer updates of the target one step of ``config.method`` makes: the unit of
    the learning-rate schedule (OnlineAugment updates the target ``inner_num`` times on generated
    images, then once on the clean batch)."""
    return config.online_augment.inner_num + 1 if config.method == "online_augment" else 1


def create(
    name: str,
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    config: ml_collections.ConfigDict,
    lr_schedule: optax.Schedule | None = None,
    image_stats: tuple = ((0.0,), (1.0,)),
    steps_per_epoch: int | None = None,
) -> Method:
    """Builds the method called ``name`` for ``model`` from the run's config; ``lr_schedule`` is the
    target's learning rate by update count (the meta-gradient's inner step uses it; default: the
    constant ``config.optimizer.lr``). ``image_stats`` = (mean, std) per channel of the dataset's
    normalization: methods that apply image ops map the normalized batch back to [0, 1] with it.
    ``steps_per_epoch`` sets the epoch-long windows of Adversarial AutoAugment's controller and
    the step at which AdaTransform's transforms stop."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown method {name!r}; available: {sorted(_REGISTRY)}")
    schedule = lr_schedule or optax.constant_schedule(config.optimizer.lr)
    return _REGISTRY[name](model, optimizer, config, schedule, image_stats, steps_per_epoch)


__all__ = ["Method", "TargetState", "adatransform", "adv_autoaugment", "cnsn_consistency", "create", "init_target", "online_augment", "predict_target",
           "supervised", "tanda", "target_updates_per_step"]
