"""TeachAugment (Suzuki, CVPR 2022): an adversarial augmenter that an EMA teacher keeps
recognisable, trained online with the target.

The augmenter a_phi is `jaxaug.generators.TeachAugmenter` (colour then geometric, the identity at
initialisation), the teacher f_tea the exponential moving average of the target f_theta. The
paper's objective is

    max_phi  L(f_theta(a_phi(x)), y) - L(f_tea(a_phi(x)), y),   min_theta L(f_theta(a_phi(x)), y):

the augmented image should fool the target while the teacher still recognises it, which bounds
the augmentation without tuning a regularizer. With the paper's improvement techniques and the
reference code (DensoITLab/TeachAugment, ``main.py``, ``lib/teachaugment.py``), one step on a
batch x (after the trainer's crop and flip) with labels y is:

  1. teacher <- r teacher + (1 - r) theta, r = 0.999 (``ema_rate``; the teacher starts as the
     initial target, so this first average is theta_0 itself, as PyTorch's ``AveragedModel``).
  2. On every ``update_every``-th step (5: the reference's ``n_inner`` target updates per
     augmenter update; steps 0, 5, 10, ...), one AdamW step of phi (lr 1e-3, weight decay 1e-2)
     minimising

        L_aug = NS(f_theta(a(x)), y) + CE(f_tea(a(x)), y) + 10 SWD(x, colour(x)),

     NS the non-saturating loss with label smoothing 0.1 (`objectives.adversarial.
     non_saturating_loss`; the reference's CIFAR configs set 0.2, as configs/teachaugment.py),
     standing for -L(f_theta); ``adversarial="cross_entropy"`` uses -CE(f_theta(a(x)), y), the
     objective as written. SWD is the colour regularizer (`objectives.regularizers.
     color_sliced_wasserstein`, 128 random directions, on the normalized images, before the
     geometric warp, sorted across the batch as the reference code; ``color_reg_over="pixels"``
     compares each image's colour distribution instead). Target and teacher run in training
     mode on the batch's BatchNorm statistics, none kept. (The reference counts the schedule
     within each epoch, restarting at every epoch's first batch; here it runs over all steps.)
  3. One update of theta on CE(f_theta(cutout(a(x))), y) with freshly sampled (and not
     differentiated) augmentations, the gradient clipped at global norm 5 (the reference's
     CIFAR setting), Cutout (``config.augment.cutout``) after the augmenter, as the reference's
     base augmentation.

Evaluation uses the target, not the teacher (as the reference).

The augmenter reads the class as context (the reference's default; ``with_context=False``
drops it). Off its schedule the augmenter update is skipped by a `lax.cond`
(``conditional=True``). ``conditional=False`` computes it on every step and keeps it only on
schedule (a select), the choice of the REINFORCE learners, since XLA:CPU runs convolutions inside
a conditional's branch many times slower (docs/benchmarks.md); for TeachAugment the select cost
3.3x the conditional on CPU (WRN-10-1, batch 32, bench/teachaugment_cost.py), the update being
the expensive part of a step. The result is the same.

Departure from the reference, left: its replay buffer (every 10 epochs a copy of the augmenter
is stored, and the target's batch is augmented in 16 chunks, each by a stored copy drawn with
priority 0.9^age) is not implemented; the target always sees the current augmenter.

Metrics: the target update's "loss", "accuracy", "grad_norm"; the last augmenter update's
"adversarial", "teacher_loss", "teacher_accuracy", "color_regularizer", "augmenter_grad_norm";
"generated_distance", mean |a(x) - x| of the target's batch; "skipped". A non-finite loss or
gradient skips that update and counts it in ``state.skipped``.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxaug import generators, models, objectives
from jaxaug.data import augment
from jaxaug.methods import registry
from jaxaug.methods.base import (
    Method,
    NetworkState,
    TargetState,
    check_int,
    count_skips,
    gradient_update,
    init_target,
    keep_if,
    predict_target,
    require,
)
from jaxaug.objectives.adversarial import non_saturating_loss
from jaxaug.objectives.classification import model_rngs
from jaxaug.objectives.regularizers import color_sliced_wasserstein, random_directions

ADVERSARIAL = ("non_saturating", "cross_entropy")
_AUGMENTER_METRICS = ("adversarial", "teacher_loss", "teacher_accuracy", "color_regularizer",
                      "augmenter_grad_norm")


@flax.struct.dataclass
class TeachAugmentState:
    step: jax.Array
    target: TargetState
    teacher: Any  # the EMA of the target's parameters
    augmenter: NetworkState
    augmenter_metrics: dict  # of the last augmenter update
    skipped: jax.Array  # updates skipped for non-finite values, cumulative


@dataclasses.dataclass(frozen=True)
class TeachAugmentMethod(Method):
    """A `Method` that can also show its augmenter's work: ``generate(state, images, labels, key)
    -> images``, a(x) as the target's update samples it (before Cutout)."""

    generate: Callable = dataclasses.field(kw_only=True)


def _context(labels: jax.Array, num_classes: int) -> jax.Array:
    """The augmenter's class context: one-hot int labels, soft labels as they are."""
    if jnp.issubdtype(labels.dtype, jnp.floating):
        return labels
    return jax.nn.one_hot(labels, num_classes)


def sample_augmenter(augmenter: nn.Module, phi: Any, images: jax.Array, labels: jax.Array,
                     key: jax.Array, *, num_classes: int,
                     normalization: models.Normalization | None = None
                     ) -> tuple[jax.Array, jax.Array]:
    """(a(x), colour(x)) for images [B, H, W, C] in [0, 1], with the augmenter in training mode
    (dropout on), as the reference always runs it; its colour branch reads the images through
    ``normalization`` (None: as they are)."""
    noise, drop = jax.random.split(key)
    net_images = normalization(images) if normalization else images
    out = augmenter.apply({"params": phi}, net_images, _context(labels, num_classes), train=True,
                          rngs={"noise": noise, "dropout": drop})
    colored = generators.apply_color(images, out["scale"], out["shift"])
    return generators.apply_geometric(colored, out["theta"]), colored


def augmenter_loss(phi: Any, images: jax.Array, labels: jax.Array, target_params: Any,
                   batch_stats: Any, teacher_params: Any, key: jax.Array, *,
                   augmenter: nn.Module, model: nn.Module, num_classes: int,
                   adversarial: str = "non_saturating", adv_label_smoothing: float = 0.1,
                   color_reg: float = 10.0, color_reg_over: str = "batch",
                   projections: int = 128,
                   normalization: models.Normalization | None = None
                   ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """L_aug(phi) of the module docstring, what the augmenter minimises:

        adv(f_theta(a(x)), y) + CE(f_tea(a(x)), y) + color_reg SWD(n(x), n(colour(x))),

    adv = NS (``adversarial="non_saturating"``) or -CE (``"cross_entropy"``), each with label
    smoothing ``adv_label_smoothing``; n the ``normalization``. Target (``target_params``) and
    teacher run in training mode on the batch's BatchNorm statistics (``batch_stats`` is only
    the variables' structure). Returns (loss, aux) with its parts."""
    sample_key, direction_key, target_key, teacher_key = jax.random.split(key, 4)
    augmented, colored = sample_augmenter(augmenter, phi, images, labels, sample_key,
                                          num_classes=num_classes, normalization=normalization)
    reg = jnp.zeros(())
    if color_reg:  # a hyperparameter, not traced: a weight of 0 leaves the sort out of the program
        to_net = normalization or (lambda x: x)
        directions = random_directions(direction_key, images.shape[-1], projections)
        reg = color_sliced_wasserstein(to_net(images), to_net(colored), directions,
                                       over=color_reg_over)

    def logits_of(params, key):
        logits, _ = model.apply({"params": params, "batch_stats": batch_stats}, augmented,
                                train=True, rngs=model_rngs(key), mutable=["batch_stats"])
        return logits.astype(jnp.float32)

    target_logits, teacher_logits = logits_of(target_params, target_key), logits_of(
        teacher_params, teacher_key)
    if adversarial == "non_saturating":
        adv = non_saturating_loss(target_logits, labels, label_smoothing=adv_label_smoothing)
    else:
        adv = -jnp.mean(objectives.softmax_cross_entropy(target_logits, labels,
                                                         label_smoothing=adv_label_smoothing))
    teacher_loss = jnp.mean(objectives.softmax_cross_entropy(teacher_logits, labels))
    correct = jnp.argmax(teacher_logits, -1) == objectives.hard_labels(labels)
    loss = adv + teacher_loss + color_reg * reg
    return loss, {"adversarial": adv, "teacher_loss": teacher_loss, "color_regularizer": reg,
                  "teacher_accuracy": jnp.mean(correct.astype(jnp.float32))}


def ema(teacher: Any, params: Any, rate: float | jax.Array) -> Any:
    """rate * teacher + (1 - rate) * params, leaf by leaf."""
    return jax.tree.map(lambda t, p: rate * t + (1.0 - rate) * p, teacher, params)


def teachaugment(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    *,
    num_classes: int = 10,
    ema_rate: float = 0.999,
    update_every: int = 5,
    adversarial: str = "non_saturating",
    adv_label_smoothing: float = 0.1,
    color_reg: float = 10.0,
    color_reg_over: str = "batch",
    projections: int = 128,
    color_scale: float = 0.8,
    geometric_scale: float = 0.5,
    with_context: bool = True,
    noise_dim: int = 128,
    hidden: int = 128,
    dropout: float = 0.8,
    augmenter_lr: float = 1e-3,
    augmenter_weight_decay: float = 1e-2,
    grad_clip: float | None = 5.0,
    conditional: bool = True,
    cutout: int = 0,
    cutout_fill: float | tuple[float, ...] = 0.0,
    target_loss: objectives.TargetLoss = objectives.softmax_cross_entropy,
    normalization: models.Normalization | None = None,
) -> TeachAugmentMethod:
    """TeachAugment (module docstring) on batches in [0, 1]; the defaults are the reference's.
    ``normalization``: the space the colour network reads and the colour regularizer measures
    (the reference's normalizer; None: [0, 1])."""
    name = "teachaugment"
    require(0 <= ema_rate < 1, name, "ema_rate", ema_rate, "must be in [0, 1)")
    check_int(name, "update_every", update_every, 1)
    check_int(name, "projections", projections, 1)
    check_int(name, "noise_dim", noise_dim, 1)
    check_int(name, "hidden", hidden, 1)
    check_int(name, "cutout", cutout, 0)
    require(adversarial in ADVERSARIAL, name, "adversarial", adversarial,
            f"must be one of {', '.join(ADVERSARIAL)}")
    require(color_reg_over in ("batch", "pixels"), name, "color_reg_over", color_reg_over,
            "must be 'batch' or 'pixels'")
    require(0 <= adv_label_smoothing < 1, name, "adv_label_smoothing", adv_label_smoothing,
            "must be in [0, 1)")
    require(0 <= dropout < 1, name, "dropout", dropout, "must be in [0, 1)")
    for field, value in (("color_reg", color_reg), ("color_scale", color_scale),
                         ("geometric_scale", geometric_scale),
                         ("augmenter_weight_decay", augmenter_weight_decay)):
        require(0 <= value < float("inf"), name, field, value, "must be finite and non-negative")
    require(0 < augmenter_lr < float("inf"), name, "augmenter_lr", augmenter_lr,
            "must be positive and finite")
    require(grad_clip is None or grad_clip == 0 or 0 < grad_clip < float("inf"), name, "grad_clip",
            grad_clip, "must be a positive finite number, or 0 or None for no clipping")
    augmenter = generators.TeachAugmenter(
        num_classes=num_classes, noise_dim=noise_dim, hidden=hidden, dropout=dropout,
        color_scale=color_scale, geometric_scale=geometric_scale, with_context=with_context)
    aug_optimizer = optax.adamw(augmenter_lr, weight_decay=augmenter_weight_decay)

    sample = functools.partial(sample_augmenter, augmenter, num_classes=num_classes,
                               normalization=normalization)
    objective = functools.partial(
        augmenter_loss, augmenter=augmenter, model=model, num_classes=num_classes,
        adversarial=adversarial, adv_label_smoothing=adv_label_smoothing, color_reg=color_reg,
        color_reg_over=color_reg_over, projections=projections, normalization=normalization)

    def init(key, batch):
        target_key, param_key, noise_key = jax.random.split(key, 3)
        target = init_target(target_key, batch["image"], model, optimizer)
        labels = jnp.zeros(batch["image"].shape[:1], jnp.int32)
        images = normalization(batch["image"]) if normalization else batch["image"]
        phi = augmenter.init({"params": param_key, "noise": noise_key}, images,
                             _context(labels, num_classes), train=False)["params"]
        metrics = {k: jnp.zeros((), jnp.float32) for k in _AUGMENTER_METRICS}
        return TeachAugmentState(jnp.zeros((), jnp.int32), target, target.params,
                                 NetworkState(phi, {}, aug_optimizer.init(phi)), metrics,
                                 jnp.zeros((), jnp.int32))

    def update_augmenter(augmenter_state, images, labels, target, teacher, key):
        new, aux, ok = gradient_update(augmenter_state, objective, aug_optimizer, images, labels,
                                       target.params, target.batch_stats, teacher, key)
        metrics = {k: aux[k] for k in _AUGMENTER_METRICS[:-1]}
        return new, {**metrics, "augmenter_grad_norm": aux["grad_norm"]}, ok

    def step(state, batch, key):
        images, labels = batch["image"], batch["label"]
        aug_key, sample_key, cutout_key, target_key = jax.random.split(key, 4)
        teacher = ema(state.teacher, state.target.params, ema_rate)
        on_schedule = state.step % update_every == 0
        args = (images, labels, state.target, teacher, aug_key)
        if conditional:
            def skip(augmenter_state, *_):
                return augmenter_state, state.augmenter_metrics, jnp.ones((), bool)
            aug_state, aug_metrics, aug_ok = jax.lax.cond(
                on_schedule, update_augmenter, skip, state.augmenter, *args)
        else:
            aug_state, aug_metrics, aug_ok = update_augmenter(state.augmenter, *args)
            aug_state = keep_if(on_schedule, aug_state, state.augmenter)
            aug_metrics = keep_if(on_schedule, aug_metrics, state.augmenter_metrics)
            aug_ok = aug_ok | ~on_schedule

        augmented, _ = sample(aug_state.params, images, labels, sample_key)
        augmented = jax.lax.stop_gradient(augmented)
        seen = augment.cutout(cutout_key, augmented, cutout, cutout_fill) if cutout else augmented
        target, aux, ok = gradient_update(
            state.target, objectives.cross_entropy, optimizer, {"image": seen, "label": labels},
            model=model, target_loss=target_loss, batch_stats=state.target.batch_stats,
            key=target_key, grad_clip=grad_clip)
        skipped = count_skips(aug_ok, ok)
        state = TeachAugmentState(state.step + 1, target, teacher, aug_state, aug_metrics,
                                  state.skipped + skipped)
        distance = jnp.mean(jnp.abs(augmented - images))
        return state, {"loss": aux["loss"], "accuracy": aux["accuracy"],
                       "grad_norm": aux["grad_norm"], **aug_metrics,
                       "generated_distance": distance, "skipped": skipped.astype(jnp.float32)}

    def predict(state, images):
        return predict_target(model, state.target, images)

    def generate(state, images, labels, key):
        return sample(state.augmenter.params, images, labels, key)[0]

    return TeachAugmentMethod(init=init, step=step, predict=predict, generate=generate,
                              applies_cutout=True)


@registry.register("teachaugment", defaults=registry.keyword_defaults(
    teachaugment, "ema_rate", "update_every", "adversarial", "adv_label_smoothing", "color_reg",
    "color_reg_over", "projections", "color_scale", "geometric_scale", "with_context",
    "noise_dim", "hidden", "dropout", "augmenter_lr", "augmenter_weight_decay", "grad_clip",
    "conditional"))
def _from_config(settings, context: registry.Context) -> Method:
    """``config.teachaugment`` with ``config.augment.cutout`` (filled with the dataset mean)
    applied after the augmenter."""
    return teachaugment(context.model, context.optimizer, num_classes=context.num_classes,
                        cutout=context.config.augment.cutout,
                        cutout_fill=context.normalization.mean, target_loss=context.target_loss,
                        normalization=context.normalization, **settings)
