"""A DCGAN-style discriminator (Radford et al., 2016) for small images.

Strided 4x4 convolutions double the channels while halving the resolution, with LeakyReLU(0.2)
and BatchNorm on every layer but the first, down to 4x4 (or smaller), then one linear logit:
``D(x) = sigmoid(logit)`` is the probability that ``x`` is a real (untransformed) image.
AdaTransform and TANDA train it real-vs-transformed; see `jaxaug.objectives.discriminator`.
Each convolution's output (before its BatchNorm and activation, the layers TANDA's reference
discriminator returns) is sown into the ``"intermediates"`` collection as ``"features"`` (a
tuple, first layer first), where TANDA's diversity term reads it; applying the module without
that collection mutable records nothing.

Every conv and the linear layer start from N(0, 0.02^2) weights and zero biases, DCGAN's
initialization (Radford et al., sec. 4: every weight zero-mean normal, std 0.02), which TANDA's
reference discriminator uses too (``dcnn.py``) and the AdaTransform thesis implies (sec. 3.6.1:
its discriminator is DCGAN's); BatchNorm starts at gamma 1, beta 0.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

#: DCGAN's weight init (Radford et al., sec. 4).
DCGAN_INIT = nn.initializers.normal(0.02)


class Discriminator(nn.Module):
    """``apply(variables, images [B, H, W, C], train) -> logits [B]``."""

    width: int = 32
    min_size: int = 4

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = True) -> jax.Array:
        x = images.astype(jnp.float32)
        channels, layer = self.width, 0
        while min(x.shape[1:3]) > self.min_size:
            x = nn.Conv(channels, (4, 4), strides=2, padding=1, use_bias=layer == 0,
                        kernel_init=DCGAN_INIT)(x)
            self.sow("intermediates", "features", x)
            if layer > 0:
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            x = nn.leaky_relu(x, 0.2)
            channels, layer = channels * 2, layer + 1
        return nn.Dense(1, kernel_init=DCGAN_INIT)(x.reshape(x.shape[0], -1))[:, 0]
