"""AugMix training (Hendrycks et al., ICLR 2020, sec. 3 "Jensen-Shannon divergence consistency
loss"): each step draws two AugMix views of the (crop + flip augmented) batch and minimises

    L = CE(p_clean, y) + lambda JS(p_clean, p_augmix1, p_augmix2),   lambda = 12,

with the predictions of the three batches from one forward pass, so that BatchNorm normalises them
together, as the reference code (``google-research/augmix`` ``cifar.py``, ``train``) does. The
views come from `jaxaug.policies.augmix` (`jaxaug.policies.augmix_policy` states its op set and
levels); the reference's defaults are the section's: severity 3, width 3, random depth 1-3,
alpha 1, the ops without corruption overlap. AugMix without the JS term (the reference's
``--no-jsd``) is the supervised method with ``config.augment.policy = "augmix"``.
"""

import functools
import re
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxaug import policies
from jaxaug.methods import registry
from jaxaug.methods.base import (
    InvalidArgument,
    Method,
    gradient_update,
    init_target,
    predict_target,
    require,
)
from jaxaug.objectives import TargetLoss, hard_labels, softmax_cross_entropy
from jaxaug.objectives.classification import model_rngs
from jaxaug.objectives.consistency import jensen_shannon_consistency

Policy = Callable[[jax.Array, jax.Array], jax.Array]


def augmix_views(policy: Policy, key: jax.Array, images: jax.Array, views: int = 2
                 ) -> list[jax.Array]:
    """``views`` independent draws of ``policy`` on every image of ``images`` [N, H, W, C]."""
    n = images.shape[0]
    return [jax.vmap(policy)(jax.random.split(k, n), images)
            for k in jax.random.split(key, views)]


def augmix_objective(params: Any, batch: dict[str, Any], *, model: nn.Module, batch_stats: Any,
                     key: jax.Array, weight: float = 12.0,
                     target_loss: TargetLoss = softmax_cross_entropy
                     ) -> tuple[jax.Array, dict[str, Any]]:
    """``mean target_loss(clean) + weight JS(clean, *views)`` over ``batch["image"]`` and the
    list ``batch["views"]``, one forward pass of their concatenation. Returns ``(loss, aux)`` with
    ``loss``, ``cross_entropy``, ``consistency``, ``accuracy`` (clean) and ``batch_stats``."""
    images = [batch["image"], *batch["views"]]
    n = batch["image"].shape[0]
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats},
                                  jnp.concatenate(images), train=True, rngs=model_rngs(key),
                                  mutable=["batch_stats"])
    logits = logits.astype(jnp.float32)
    per_view = [logits[i * n:(i + 1) * n] for i in range(len(images))]
    ce = jnp.mean(target_loss(per_view[0], batch["label"]))
    js = jensen_shannon_consistency(*per_view)
    correct = jnp.argmax(per_view[0], -1) == hard_labels(batch["label"])
    accuracy = jnp.mean(correct.astype(jnp.float32))
    loss = ce + weight * js
    return loss, {"loss": loss, "cross_entropy": ce, "consistency": js, "accuracy": accuracy,
                  "batch_stats": updates["batch_stats"]}


def augmix(model: nn.Module, optimizer: optax.GradientTransformation, *,
           policy: Policy | None = None, weight: float = 12.0,
           target_loss: TargetLoss = softmax_cross_entropy) -> Method:
    """AugMix with the JS consistency (module docstring): two draws of ``policy`` (default
    ``jaxaug.policies.augmix()``, the reference's CIFAR setting) per image and step, the clean
    ``target_loss`` plus ``weight`` x JS. Metrics: ``loss``, ``accuracy`` (clean),
    ``cross_entropy``, ``consistency``, ``grad_norm``."""
    require(0 <= weight < float("inf"), "augmix", "weight", weight,
            "must be finite and non-negative")
    policy = policies.augmix() if policy is None else policy

    def init(key, batch):
        return init_target(key, batch["image"], model, optimizer)

    def step(state, batch, key):
        view_key, model_key = jax.random.split(key)
        batch = {**batch, "views": augmix_views(policy, view_key, batch["image"])}
        state, aux, _ = gradient_update(state, augmix_objective, optimizer, batch, model=model,
                                        batch_stats=state.batch_stats, key=model_key,
                                        weight=weight, target_loss=target_loss,
                                        keep_on_nonfinite=False)
        return state, aux

    return Method(init=init, step=step, predict=functools.partial(predict_target, model))


_POLICY_FIELDS = ("severity", "width", "depth", "alpha", "all_ops")


@registry.register("augmix", defaults={
    "severity": 3, "width": 3, "depth": -1, "alpha": 1.0, "all_ops": False,
    **registry.keyword_defaults(augmix, "weight")})
def _from_config(settings, context: registry.Context) -> Method:
    """``config.augmix``: the AugMix policy's ``severity``, ``width``, ``depth``, ``alpha``,
    ``all_ops`` (`jaxaug.policies.augmix`) and the JS ``weight``."""
    try:
        policy = policies.augmix(**{f: settings[f] for f in _POLICY_FIELDS})
    except ValueError as e:
        # The policy names its argument ("augmix: width must be ..."): report it as the field.
        field, why = re.fullmatch(r"augmix: (\w+) (.*), got .*", str(e)).groups()
        raise InvalidArgument("augmix", field, settings[field], why) from None
    return augmix(context.model, context.optimizer, policy=policy, weight=settings.weight,
                  target_loss=context.target_loss)
