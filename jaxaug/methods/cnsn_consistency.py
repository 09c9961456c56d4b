"""CrossNorm with consistency regularization (Tang et al., ICCV 2021, "CNSN + consistency").

Each step flips a Bernoulli(``cn_prob``) coin. Heads: the `crossnorm_consistency` objective (clean
cross-entropy + ``weight`` x JS of the clean pass and two CrossNorm passes). Tails: the clean
cross-entropy alone, as `crossnorm_consistency` with ``active=False``.

Every step runs the three passes; the coin selects, it does not branch. `jax.lax.cond` would skip
two passes on tails steps, but XLA:CPU runs convolutions inside a conditional's branches far more
slowly (a WRN-10-1 step wrapped in `lax.cond` measured 13x slower; jax issue #12868 describes the
same for loops), which costs more than the 0.5 passes per step that skipping saves at the configs'
cn_prob 0.75.
"""

import functools

import flax.linen as nn
import jax
import optax

from jaxaug.methods import registry
from jaxaug.methods.base import Method, gradient_update, init_target, predict_target, require
from jaxaug.objectives import TargetLoss, softmax_cross_entropy
from jaxaug.objectives.consistency import crossnorm_consistency


def cnsn_consistency(model: nn.Module, optimizer: optax.GradientTransformation, *,
                     cn_prob: float, weight: float = 10.0,
                     target_loss: TargetLoss = softmax_cross_entropy) -> Method:
    """The method for a ``model`` (WRN or ResNet) with CrossNorm blocks; see the module docstring.
    Metrics: ``loss``, ``accuracy`` (clean pass), ``cross_entropy``, ``consistency`` (0 on tails
    steps), ``crossnorm_step`` (1 on heads steps) and ``grad_norm``."""
    require(0 <= cn_prob <= 1, "cnsn_consistency", "cn_prob", cn_prob, "must be in [0, 1]")
    require(0 <= weight < float("inf"), "cnsn_consistency", "weight", weight,
            "must be finite and non-negative")

    def init(key, batch):
        return init_target(key, batch["image"], model, optimizer)

    def step(state, batch, key):
        k_coin, k_passes = jax.random.split(key)
        heads = jax.random.bernoulli(k_coin, cn_prob)
        state, aux, _ = gradient_update(state, crossnorm_consistency, optimizer, batch, model=model,
                                        batch_stats=state.batch_stats, key=k_passes,
                                        weight=weight, active=heads, target_loss=target_loss,
                                        keep_on_nonfinite=False)
        return state, {**aux, "crossnorm_step": heads.astype(aux["loss"].dtype)}

    return Method(init=init, step=step, predict=functools.partial(predict_target, model))


@registry.register("cnsn_consistency", defaults=registry.keyword_defaults(cnsn_consistency, "weight"))
def _from_config(settings, context: registry.Context) -> Method:
    """The coin's probability is CrossNorm's own, ``config.cnsn.cn_prob``."""
    cnsn = context.config.cnsn
    if not cnsn.crossnorm:
        raise ValueError("Invalid config.cnsn.crossnorm=False: method cnsn_consistency compares "
                         "clean and CrossNorm passes: enable CrossNorm")
    return cnsn_consistency(context.model, context.optimizer, cn_prob=cnsn.cn_prob,
                            weight=settings.weight, target_loss=context.target_loss)
