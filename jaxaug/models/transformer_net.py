"""AdaTransform's transformer network T (Tang's thesis, sec. 3.6.1): a policy over image actions."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

class TransformerNet(nn.Module):
    """T: logits over the actions from the current (normalized) image and ``extra`` features
    [N, E] (the box centre; E = 0 for ``"transform"``). ResNet-18-like, as in the thesis
    (sec. 3.6.1): a 3x3 stem, four stages of two basic blocks of width w, 2w, 4w, 8w (stride 1,
    2, 2, 2; w = 64 is ResNet-18), global average pooling, one linear layer; dropout of rate
    ``dropout`` after every 3x3 convolution and before the linear layer (sec. 3.6.1). GroupNorm
    stands in for BatchNorm, so that T keeps no running statistics: the rollout, the re-scoring
    of its actions and the greedy test-time pass normalize each image alike. The output layer
    starts at zero, so the initial policy is exactly uniform. ``train`` draws dropout from the
    ``"dropout"`` stream."""

    num_actions: int
    width: int = 64
    dropout: float = 0.3

    @nn.compact
    def __call__(self, images: jax.Array, extra: jax.Array, train: bool = False) -> jax.Array:
        def conv(x, channels, strides=1):
            x = nn.Conv(channels, (3, 3), strides=strides, use_bias=False)(x)
            return nn.Dropout(self.dropout, deterministic=not train)(x)

        def norm(x):  # groups of at most 32, dividing the channels
            return nn.GroupNorm(num_groups=math.gcd(x.shape[-1], 32))(x)

        x = nn.relu(norm(conv(images, self.width)))
        for stage in range(4):
            channels = self.width * 2 ** stage
            for block in range(2):
                strides = 2 if stage > 0 and block == 0 else 1
                y = nn.relu(norm(conv(x, channels, strides)))
                y = norm(conv(y, channels))
                if strides != 1 or x.shape[-1] != channels:
                    x = norm(nn.Conv(channels, (1, 1), strides=strides, use_bias=False)(x))
                x = nn.relu(x + y)
        x = jnp.concatenate([jnp.mean(x, axis=(1, 2)), extra], axis=-1)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)(x)
