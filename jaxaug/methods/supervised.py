"""Plain supervised training: the baseline every augmentation method is compared with."""

import functools

import flax.linen as nn
import jax
import optax

from jaxaug.methods import registry
from jaxaug.methods.base import Method, init_target, predict_target
from jaxaug.objectives import cross_entropy


def supervised(
    model: nn.Module, optimizer: optax.GradientTransformation, label_smoothing: float = 0.0
) -> Method:
    """Minimises the cross-entropy of ``model`` on the (standard-augmented) batch."""

    def init(key, batch):
        return init_target(key, batch["image"], model, optimizer)

    def step(state, batch, key):
        objective = functools.partial(
            cross_entropy,
            model=model,
            batch_stats=state.batch_stats,
            key=key,
            label_smoothing=label_smoothing,
        )
        grads, aux = jax.grad(objective, has_aux=True)(state.params, batch)
        state = state.apply_gradients(grads, aux["batch_stats"], optimizer)
        return state, {"loss": aux["loss"], "accuracy": aux["accuracy"]}

    return Method(init=init, step=step, predict=functools.partial(predict_target, model))


@registry.register("supervised")
def _from_config(settings, context: registry.Context) -> Method:
    del settings
    return supervised(context.model, context.optimizer,
                      label_smoothing=context.config.label_smoothing)
