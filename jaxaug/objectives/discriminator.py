"""The GAN terms of AdaTransform and TANDA: a discriminator D separates real images from
transformed ones, and the transformation policy is rewarded for fooling it.

With logits s (D = sigmoid(s)), the discriminator minimises the binary cross-entropy

    L_D = mean_real softplus(-s) + mean_fake softplus(s) = -E log D(x) - E log(1 - D(T(x))),

so its gradient raises the logits of real images and lowers those of transformed ones. The
policy's reward for a transformed image is log D(T(x)) = -softplus(-s), highest when D takes it
for real (AdaTransform's competitive term lambda * log D(x); TANDA's generator reward).
`discriminator_objective` is L_D as a function of D's parameters, as both methods train it.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array
                       ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(L_D, aux)``: the real-vs-fake binary cross-entropy above; ``aux`` holds the mean
    D on each side and the accuracy of the 0.5 threshold."""
    loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
    accuracy = 0.5 * (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0))
    aux = {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
           "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)), "d_accuracy": accuracy}
    return loss, aux


def log_realness(logits: jax.Array) -> jax.Array:
    """log D(x) = log sigmoid(s), per image: the reward for looking real."""
    return jax.nn.log_sigmoid(logits)


def discriminator_objective(params: Any, batch_stats: Any, real: jax.Array, fake: jax.Array, *,
                            discriminator: nn.Module) -> tuple[jax.Array, dict[str, Any]]:
    """``(L_D, aux)`` of `discriminator_loss` on D's logits of [real, fake], run as one batch in
    training mode (so D's BatchNorm sees both); ``aux`` adds ``fake_logits`` and the updated
    ``batch_stats``."""
    logits, updates = discriminator.apply({"params": params, "batch_stats": batch_stats},
                                          jnp.concatenate([real, fake]), train=True,
                                          mutable=["batch_stats"])
    real_logits, fake_logits = jnp.split(logits, 2)
    loss, aux = discriminator_loss(real_logits, fake_logits)
    return loss, {**aux, "fake_logits": fake_logits, "batch_stats": updates["batch_stats"]}
