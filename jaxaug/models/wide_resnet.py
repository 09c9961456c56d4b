"""Wide-ResNet WRN-d-k for 32×32 inputs (Zagoruyko & Komodakis 2016).

The CIFAR variant of the PyTorch reference used by AutoAugment and OnlineAugment: a 3×3 conv with
16 filters, three groups of n = (d-4)/6 pre-activation basic blocks with widths 16k, 32k, 64k and
strides 1, 2, 2, then BN-ReLU, global average pooling and a Dense classifier. WRN-28-10 has
36,479,194 parameters with 10 classes.

The block layout and init follow AutoAugment's (TensorFlow) WRN: the stride on a block's first
conv, convs without bias, Kaiming-normal fan-out kernels; BatchNorm keeps 0.9 of its running
statistics per step (PyTorch's default momentum 0.1). The PyTorch WRN that OnlineAugment, TeachAugment and DADA
(Fast AutoAugment's) train (``models/wideresnet.py`` there, all one file) differs in all four:
the stride on the second conv, convs with biases, PyTorch's default init (its ``conv_init`` is
never applied: kernels U(+-1/sqrt(fan_in)), std 1/sqrt(3 fan_in)) and
``BatchNorm2d(momentum=0.9)``, which keeps only 0.1 of the running statistics per step (its
evaluation statistics are about the last batch's). Its smaller kernels (ours are 2.2x / 2.4x larger
in weight-averaged std for WRN-10-1 / WRN-28-10) make SGD's steps on the kernels behind a
BatchNorm, which sees only their direction, about 5x / 6x larger relative to them (the square).
"""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxaug.models.batchnorm import BnSet, MultiBatchNorm
from jaxaug.models.layers import classifier, conv, global_avg_pool
from jaxaug.models.norm import CNSN, CNSNPlacement, cnsn_gates


class WideBasicBlock(nn.Module):
    """out = shortcut + conv3x3(dropout(ReLU(BN(conv3x3_stride(a))))), with a = ReLU(BN(x)).

    shortcut is x when the shape is unchanged, else a 1×1 strided conv of the pre-activated a.
    With ``cnsn``, CrossNorm / SelfNorm act on the residual path's input ("pre"), on its output
    ("residual") or on out ("post"). "pre" leaves the shortcut alone, as in the CNSN reference
    code (``models/cifar/wideresnet_cnsn.py``): on x before BN-ReLU when the shape is unchanged
    (the shortcut is the unscaled x), on a when it changes (the shortcut conv sees a unscaled).
    """

    features: int
    stride: int
    dropout_rate: float
    num_bn_sets: int
    dtype: Any
    cnsn: CNSNPlacement | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet, cn_gate=False) -> jnp.ndarray:
        def cnsn_at(position, value):
            if self.cnsn is None or self.cnsn.position != position:
                return value
            return CNSN(self.cnsn, name="cnsn")(value, train, cn_gate)

        bn = functools.partial(MultiBatchNorm, num_sets=self.num_bn_sets, dtype=self.dtype)
        identity = x.shape[-1] == self.features and self.stride == 1
        if identity:
            preact = nn.relu(bn(name="bn1")(cnsn_at("pre", x), train=train, bn_set=bn_set))
            branch = preact
        else:
            preact = nn.relu(bn(name="bn1")(x, train=train, bn_set=bn_set))
            branch = cnsn_at("pre", preact)
        y = conv(self.features, 3, self.stride, dtype=self.dtype, name="conv1")(branch)
        y = nn.relu(bn(name="bn2")(y, train=train, bn_set=bn_set))
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        y = cnsn_at("residual", conv(self.features, 3, dtype=self.dtype, name="conv2")(y))
        if identity:
            return cnsn_at("post", x + y)
        shortcut = conv(self.features, 1, self.stride, dtype=self.dtype, name="shortcut")(preact)
        return cnsn_at("post", shortcut + y)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor``; ``depth`` must satisfy (depth - 4) % 6 == 0 and be ≥ 10.

    Called as ``model(x, train, bn_set=0, crossnorm="sample")`` on normalized NHWC images;
    returns float32 logits. With ``dropout_rate`` > 0, training needs a 'dropout' rng; with
    ``cnsn`` (a `CNSNPlacement` for every block) and CrossNorm enabled, a 'crossnorm' rng, and
    ``crossnorm`` ("sample", "on" or "off", see `crossnorm_gates`) picks the blocks where
    CrossNorm acts in this training pass.
    """

    depth: int = 28
    widen_factor: int = 10
    num_classes: int = 10
    num_bn_sets: int = 1
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    cnsn: CNSNPlacement | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4 with n >= 1, got {self.depth}")
        if self.widen_factor < 1:
            raise ValueError(f"WRN widen_factor must be >= 1, got {self.widen_factor}")

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet = 0,
                 crossnorm: str = "sample") -> jnp.ndarray:
        blocks_per_group = (self.depth - 4) // 6
        gates = iter(cnsn_gates(self, self.cnsn, 3 * blocks_per_group, train, crossnorm))
        x = conv(16, 3, dtype=self.dtype, name="conv_init")(x)
        widths = [16 * self.widen_factor, 32 * self.widen_factor, 64 * self.widen_factor]
        for g, (width, stride) in enumerate(zip(widths, (1, 2, 2))):
            for b in range(blocks_per_group):
                x = WideBasicBlock(
                    width,
                    stride if b == 0 else 1,
                    self.dropout_rate,
                    self.num_bn_sets,
                    self.dtype,
                    self.cnsn,
                    name=f"group{g + 1}_block{b + 1}",
                )(x, train, bn_set, next(gates))
        bn = MultiBatchNorm(num_sets=self.num_bn_sets, dtype=self.dtype, name="bn_final")
        x = global_avg_pool(nn.relu(bn(x, train=train, bn_set=bn_set)))
        return classifier(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
