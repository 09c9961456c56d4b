"""Convolution, classifier head and pooling shared by the models, with PyTorch-reference init.

Parameters are always float32; ``dtype`` is the compute dtype of the matmul/convolution.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn


def conv_kernel_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """Kaiming normal, fan_out mode: w ~ N(0, 2 / (kh·kw·out)) for a (kh, kw, in, out) kernel.

    What the WRN, Shake-Shake and torchvision ResNet references use for convolutions. Drawn as a flat
    vector and reshaped because XLA:CPU compiles threefry sampling of 4-D shapes several times more
    slowly; this halves a CPU model init (WRN-28-2: ~23 s -> ~10 s).
    """
    fan_out = math.prod(shape[:-2]) * shape[-1]
    return math.sqrt(2.0 / fan_out) * jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


# PyTorch's default nn.Linear weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (variance 1/(3·fan_in)).
dense_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def conv(features: int, kernel_size: int, stride: int = 1, *, dtype: Any, name: str) -> nn.Conv:
    """Bias-free k×k convolution with PyTorch's symmetric padding (k-1)/2.

    Explicit padding rather than 'SAME' because 'SAME' pads a strided conv on even inputs
    asymmetrically (0 before, 1 after), which would shift features relative to the references.
    """
    pad = (kernel_size - 1) // 2
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=conv_kernel_init,
        name=name,
    )


def classifier(num_classes: int, *, dtype: Any, name: str = "head") -> nn.Dense:
    """Final Dense layer: logits = features · W + b, with b initialised to 0."""
    return nn.Dense(
        num_classes,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=dense_kernel_init,
        bias_init=nn.initializers.zeros,
        name=name,
    )


def global_avg_pool(x: jnp.ndarray) -> jnp.ndarray:
    """Mean over the spatial axes of NHWC, accumulated in float32 so bf16 models lose no precision."""
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))
