"""Plain supervised training: the baseline every augmentation method is compared with."""

import functools

import flax.linen as nn
import optax

from jaxaug.methods import registry
from jaxaug.methods.base import Method, gradient_update, init_target, predict_target
from jaxaug.objectives import TargetLoss, cross_entropy, softmax_cross_entropy


def supervised(
    model: nn.Module, optimizer: optax.GradientTransformation, *,
    target_loss: TargetLoss = softmax_cross_entropy,
) -> Method:
    """Minimises the mean ``target_loss`` (default: the softmax cross-entropy) of ``model`` on the
    (standard-augmented) batch."""

    def init(key, batch):
        return init_target(key, batch["image"], model, optimizer)

    def step(state, batch, key):
        state, aux, _ = gradient_update(state, cross_entropy, optimizer, batch, model=model,
                                        batch_stats=state.batch_stats, key=key,
                                        target_loss=target_loss, keep_on_nonfinite=False)
        return state, {"loss": aux["loss"], "accuracy": aux["accuracy"]}

    return Method(init=init, step=step, predict=functools.partial(predict_target, model))


@registry.register("supervised")
def _from_config(settings, context: registry.Context) -> Method:
    del settings
    return supervised(context.model, context.optimizer, target_loss=context.target_loss)
