"""Uncertainty-based sampling of augmentations (Wu, Zhang, Valiant & Ré, "On the Generalization
Effects of Linear Transformations in Data Augmentation", ICML 2020, arXiv 2005.00695; the blog
summary is part III of papers/004_188d69dcb963af9a.txt, "From Theory to Practice"; the paper's
text is not in papers/, so the settings below come from the authors' code).

Each step, for every image x_i of the batch (B images, after the trainer's crop and flip):

  draw C augmented copies  x_i^1 .. x_i^C  from a random policy (RandAugment by default: each
    copy its own ops, signs and Cutout square);
  score them with the current target in one forward pass in evaluation mode (running BatchNorm
    statistics, no gradient):  l_i^c = target_loss(f(x_i^c), y_i);
  keep the S copies of highest loss, I_i = argtop_S { l_i^c : c = 1..C };
  take one optimizer step of the target on the B x S kept copies, in training mode:

      L(theta) = 1 / (B S) sum_i sum_{c in I_i} target_loss(f_theta(x_i^c), y_i).

Everything runs inside the one jitted step. The paper and its blog pick "those with the highest
losses"; the authors' code (``senwu/dauphin``, ``dauphin/image/scheduler.py``,
``AugScheduler``) instead draws the S copies with replacement with probabilities proportional
to the losses: ``selection="sampled"`` is that variant, ``"top_k"`` (default) the paper's.

CIFAR settings (the authors' ``scripts/run_cifar10.sh`` and README table, files
``..._c_4_s_1``): C = 4 copies, S = 1 kept, each copy a composition of 2 random ops
(``num_comp=2``), then pad-crop, flip, Cutout (``MP16``: a side drawn up to 16 px) and MixUp
(their ``augment_policy.py``); their README also reports C = 8, S = 4 ("enlarging the number of
augmented data points"). The defaults here are C = 4, S = 1 and RandAugment(N=2, M=9)
(`jaxaug.policies.randaugment`, the issue's default policy), then ``config.augment.cutout`` (a
fixed side) on every copy (``Method.applies_cutout``). The authors' copies are
``policy="random_composition"`` (`jaxaug.policies.random_composition`: each of the 2 ops applied
with a probability drawn from U(0, 1), at a uniform level; config
``configs/policy_learners.py:uncertainty_reference,<dataset>``), much milder on average than
RandAugment's two ops at M = 9, always applied. Departures, kept: the copies share the
trainer's crop and flip (the reference draws crop and flip per copy), the final Cutout has a
fixed side, and the reference's MixUp on top is not applied. A target step sees B x S images;
with S = 1 that is the plain step's batch, at the price of the B x C scoring pass.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from jaxaug import objectives, policies
from jaxaug.data import augment
from jaxaug.methods import registry
from jaxaug.methods.base import (
    InvalidArgument,
    Method,
    check_int,
    gradient_update,
    init_target,
    predict_target,
    require,
)

SELECTIONS = ("top_k", "sampled")


def augment_copies(policy, key, images, num_copies, *, cutout=0, cutout_fill=0.0):
    """[B, C, H, W, ch]: ``num_copies`` draws of ``policy`` on every image of ``images``
    [B, H, W, ch] in [0, 1], each with its own key, then Cutout of side ``cutout`` (0: none) on
    every copy, its own square each (key ``fold_in(key, 1)``)."""
    b, c = images.shape[0], num_copies
    keys = jax.random.split(key, b * c).reshape(b, c)
    copies = jax.vmap(jax.vmap(policy, in_axes=(0, None)))(keys, images)
    flat = copies.reshape(b * c, *images.shape[1:])
    return augment.cutout(jax.random.fold_in(key, 1), flat, cutout, cutout_fill).reshape(
        copies.shape)


def select(losses, num_selected, *, selection="top_k", key=None):
    """int [B, S]: for each row of ``losses`` [B, C], the indices of the S copies kept:
    ``"top_k"`` the S largest losses in decreasing order; ``"sampled"`` S draws with replacement,
    copy c with probability l_c / sum l (uniform where every loss is 0), from ``key``."""
    if selection == "top_k":
        return jax.lax.top_k(losses, num_selected)[1]
    logits = jnp.where(jnp.any(losses > 0, -1, keepdims=True), jnp.log(losses), 0.0)
    return jax.random.categorical(key, logits[:, None, :], shape=(losses.shape[0], num_selected))


def gather(copies, index):
    """``copies`` [B, C, ...] at ``index`` [B, S]: [B, S, ...]."""
    index = index.reshape(index.shape + (1,) * (copies.ndim - 2))
    return jnp.take_along_axis(copies, index, axis=1)


def uncertainty(
    model,
    optimizer: optax.GradientTransformation,
    *,
    policy=None,
    num_copies: int = 4,
    num_selected: int = 1,
    selection: str = "top_k",
    cutout: int = 0,
    cutout_fill: float | tuple[float, ...] = 0.0,
    target_loss: objectives.TargetLoss = objectives.softmax_cross_entropy,
) -> Method:
    """The method above on batches in [0, 1]: ``num_copies`` (C) draws of ``policy`` (a
    ``(key, img) -> img`` policy; default RandAugment(2, 9)) per image, then Cutout of side
    ``cutout`` filled with ``cutout_fill``, the ``num_selected`` (S) of highest loss kept by
    ``selection`` (`SELECTIONS`). Metrics: ``loss`` and ``accuracy`` of the target update on
    the kept copies, ``grad_norm``, ``copy_loss`` (mean scored loss of all copies) and
    ``selected_loss`` (of the kept ones, as scored): their gap is what the selection adds."""
    check_int("uncertainty", "num_copies", num_copies, 1)
    check_int("uncertainty", "num_selected", num_selected, 1)
    require(num_selected <= num_copies, "uncertainty", "num_selected", num_selected,
            f"must be at most num_copies={num_copies}")
    require(selection in SELECTIONS, "uncertainty", "selection", selection,
            f"must be one of {', '.join(SELECTIONS)}")
    check_int("uncertainty", "cutout", cutout, 0)
    policy = policies.randaugment(2, 9) if policy is None else policy

    def init(key, batch):
        return init_target(key, batch["image"], model, optimizer)

    def step(state, batch, key):
        copy_key, select_key, model_key = jax.random.split(key, 3)
        images, labels = batch["image"], batch["label"]
        b = images.shape[0]
        copies = augment_copies(policy, copy_key, images, num_copies, cutout=cutout,
                                cutout_fill=cutout_fill)
        # One scoring pass over all B x C copies, as the reference scores them: eval mode.
        flat = copies.reshape(b * num_copies, *images.shape[1:])
        logits = predict_target(model, state, flat).astype(jnp.float32)
        losses = target_loss(logits, jnp.repeat(labels, num_copies, axis=0)).reshape(b, -1)
        losses = jax.lax.stop_gradient(losses)
        index = select(losses, num_selected, selection=selection, key=select_key)
        kept = gather(copies, index).reshape(b * num_selected, *images.shape[1:])
        kept_batch = {"image": kept, "label": jnp.repeat(labels, num_selected, axis=0)}
        state, aux, _ = gradient_update(state, objectives.cross_entropy, optimizer, kept_batch,
                                        model=model, batch_stats=state.batch_stats, key=model_key,
                                        target_loss=target_loss, keep_on_nonfinite=False)
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"], "grad_norm": aux["grad_norm"],
                   "copy_loss": losses.mean(),
                   "selected_loss": jnp.take_along_axis(losses, index, axis=1).mean()}
        return state, metrics

    return Method(init=init, step=step, predict=functools.partial(predict_target, model),
                  applies_cutout=True)


def _validate(settings, config):
    if config.augment.policy:
        raise ValueError(f"Invalid config.augment.policy={config.augment.policy!r}: the "
                         "uncertainty method draws its copies from its own policy "
                         "(config.uncertainty.policy); set config.augment.policy to ''")


@registry.register("uncertainty", defaults={
    "policy": "randaugment", "num_ops": 2, "magnitude": 9,
    **registry.keyword_defaults(uncertainty, "num_copies", "num_selected", "selection"),
}, validate=_validate)
def _from_config(settings, context: registry.Context) -> Method:
    """``config.uncertainty``: the copies' ``policy`` (a name of `jaxaug.policies.get`, with
    RandAugment's ``num_ops`` and ``magnitude``), C = ``num_copies``, S = ``num_selected`` and
    ``selection``; ``config.augment.cutout`` is applied to every copy, after the policy."""
    try:
        policy = policies.get(settings.policy, num_ops=settings.num_ops,
                              magnitude=settings.magnitude)
    except ValueError as e:
        field = next((f for f in ("num_ops", "magnitude") if f in str(e)), "policy")
        raise InvalidArgument("uncertainty", field, settings[field], str(e)) from None
    return uncertainty(context.model, context.optimizer, policy=policy,
                       num_copies=settings.num_copies, num_selected=settings.num_selected,
                       selection=settings.selection, cutout=context.config.augment.cutout,
                       cutout_fill=context.normalization.mean, target_loss=context.target_loss)
