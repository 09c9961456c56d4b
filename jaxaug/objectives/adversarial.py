"""The generator's adversarial term against the target network.

OnlineAugment trains the generator phi to maximise the target's loss L on generated samples
while the target theta minimises it. Two equivalent ways to get the generator's gradient:

* separately: minimise ``adversarial_loss(L, beta) = -beta * L`` w.r.t. phi;
* in one backward pass: feed the target ``gradient_reversal(G_phi(x), beta)`` and minimise
  ``L`` w.r.t. (theta, phi) together. The target receives +dL/dtheta, while the cotangent
  reaching the generated images is flipped to -beta * dL/dx, so phi receives
  -beta * dL/dphi, i.e. the gradient of ``adversarial_loss(L, beta)``.

Use one or the other, not both: reversing the images and also negating L cancels out.
"""

import jax
import jax.numpy as jnp


@jax.custom_vjp
def _reverse(x: jax.Array, scale: jax.Array) -> jax.Array:
    return x


def _reverse_fwd(x, scale):
    return x, scale


def _reverse_bwd(scale, g):
    # scale is a hyperparameter: it gets a zero cotangent so a traced (scheduled) weight works
    # without being trained through.
    return (-scale * g).astype(g.dtype), jnp.zeros_like(scale)


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def gradient_reversal(x: jax.Array, scale: float | jax.Array = 1.0) -> jax.Array:
    """Identity forward; the backward pass multiplies the cotangent by ``-scale``.

    y = x,   dy/dx^T v = -scale * v.

    ``scale`` is an ordinary (possibly traced) scalar argument, so it may change between steps
    under ``jit`` without recompiling; its own gradient is defined as zero.
    """
    return _reverse(x, jnp.asarray(scale, dtype=jnp.result_type(float)))


def adversarial_loss(target_loss: jax.Array, beta: float | jax.Array) -> jax.Array:
    """The generator's adversarial term, to be minimised w.r.t. the generator's parameters.

    adv = -beta * L,   so minimising adv maximises beta * L,

    where L is the target's loss on the generated samples and beta >= 0 the adversarial weight.
    """
    return -beta * target_loss


def non_saturating_loss(logits: jax.Array, labels: jax.Array, *,
                        label_smoothing: float = 0.0) -> jax.Array:
    """The augmenter's adversarial term in TeachAugment (Suzuki, CVPR 2022, its improvement
    techniques; the reference's ``NonSaturatingLoss``), to be minimised by the augmenter:

        loss = -(1 / B) sum_i sum_k q_ik log(1 - softmax(logits_i)_k + 1e-12),

    q_i = (1 - eps) onehot(y_i) + eps / K (labels int [B]) or the soft labels [B, K] smoothed
    alike. Minimising it drives the target's probability of the label down, as maximising the
    cross-entropy does (per example, d loss = -p / (1 - p) d CE for eps = 0), without the
    cross-entropy's vanishing gradient while the target is right with confidence."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    targets = labels if jnp.issubdtype(labels.dtype, jnp.floating) else jax.nn.one_hot(
        labels, logits.shape[-1])
    if label_smoothing:
        targets = (1.0 - label_smoothing) * targets + label_smoothing / logits.shape[-1]
    return -jnp.mean(jnp.sum(targets * jnp.log(1.0 - probs + 1e-12), axis=-1))
