"""ResNet-18/34/50 for 224×224 ImageNet inputs (He et al. 2016), torchvision's v1.5 layout.

Stem: 7×7/2 conv (64) - BN - ReLU - 3×3/2 max pool; four stages with widths 64, 128, 256, 512 and
strides 1, 2, 2, 2 of basic blocks (18, 34) or bottleneck blocks with expansion 4 (50), the stride
on the 3×3 conv (v1.5); global average pooling and a Dense classifier. Parameter counts equal
torchvision's: ResNet-18 11,689,512, ResNet-34 21,797,672, ResNet-50 25,557,032 (1000 classes).
"""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxaug.models.batchnorm import BnSet, MultiBatchNorm
from jaxaug.models.layers import classifier, conv, global_avg_pool
from jaxaug.models.norm import CNSN, CNSNPlacement, cnsn_gates


class _Block(nn.Module):
    """Shared fields, the projection shortcut BN(conv1x1_stride(x)) used when the shape changes,
    and CrossNorm / SelfNorm (``cnsn``) on the residual path's input ("pre"; the shortcut takes
    the unscaled x, as in the CNSN reference code, ``models/imagenet/resnet_cnsn.py``), the
    residual path's output before the addition ("residual") or the block's output ("post")."""

    features: int
    stride: int
    num_bn_sets: int
    dtype: Any
    cnsn: CNSNPlacement | None = None

    def cnsn_at(self, position: str, x: jnp.ndarray, train: bool, cn_gate) -> jnp.ndarray:
        if self.cnsn is None or self.cnsn.position != position:
            return x
        return CNSN(self.cnsn, name="cnsn")(x, train, cn_gate)

    def bn(self, name: str) -> MultiBatchNorm:
        return MultiBatchNorm(num_sets=self.num_bn_sets, dtype=self.dtype, name=name)

    def shortcut(self, x, out_features: int, train: bool, bn_set: BnSet) -> jnp.ndarray:
        if x.shape[-1] == out_features and self.stride == 1:
            return x
        y = conv(out_features, 1, self.stride, dtype=self.dtype, name="downsample_conv")(x)
        return self.bn("downsample_bn")(y, train=train, bn_set=bn_set)


class BasicBlock(_Block):
    """out = ReLU(shortcut(x) + BN(conv3x3(ReLU(BN(conv3x3_stride(x))))))."""

    expansion = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet, cn_gate=False) -> jnp.ndarray:
        y = conv(self.features, 3, self.stride, dtype=self.dtype, name="conv1")(
            self.cnsn_at("pre", x, train, cn_gate))
        y = nn.relu(self.bn("bn1")(y, train=train, bn_set=bn_set))
        y = conv(self.features, 3, dtype=self.dtype, name="conv2")(y)
        y = self.cnsn_at("residual", self.bn("bn2")(y, train=train, bn_set=bn_set), train, cn_gate)
        return self.cnsn_at("post", nn.relu(self.shortcut(x, self.features, train, bn_set) + y),
                            train, cn_gate)


class Bottleneck(_Block):
    """out = ReLU(shortcut(x) + BN(conv1x1_4f(ReLU(BN(conv3x3_stride(ReLU(BN(conv1x1_f(x)))))))))."""

    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet, cn_gate=False) -> jnp.ndarray:
        out_features = self.features * self.expansion
        y = conv(self.features, 1, dtype=self.dtype, name="conv1")(
            self.cnsn_at("pre", x, train, cn_gate))
        y = nn.relu(self.bn("bn1")(y, train=train, bn_set=bn_set))
        y = conv(self.features, 3, self.stride, dtype=self.dtype, name="conv2")(y)
        y = nn.relu(self.bn("bn2")(y, train=train, bn_set=bn_set))
        y = conv(out_features, 1, dtype=self.dtype, name="conv3")(y)
        y = self.cnsn_at("residual", self.bn("bn3")(y, train=train, bn_set=bn_set), train, cn_gate)
        return self.cnsn_at("post", nn.relu(self.shortcut(x, out_features, train, bn_set) + y),
                            train, cn_gate)


# depth -> (blocks per stage, block type)
RESNET_CONFIGS = {
    18: ((2, 2, 2, 2), BasicBlock),
    34: ((3, 4, 6, 3), BasicBlock),
    50: ((3, 4, 6, 3), Bottleneck),
}


class ResNet(nn.Module):
    """ImageNet ResNet-``depth`` (18, 34 or 50).

    Called as ``model(x, train, bn_set=0, crossnorm="sample")`` on normalized NHWC images;
    returns float32 logits. ``cnsn`` places CrossNorm / SelfNorm in every block (CrossNorm needs a
    'crossnorm' rng; ``crossnorm`` picks its blocks per pass, as in `WideResNet`).
    """

    depth: int = 50
    num_classes: int = 1000
    num_bn_sets: int = 1
    dtype: Any = jnp.float32
    cnsn: CNSNPlacement | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.depth not in RESNET_CONFIGS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_CONFIGS)}, got {self.depth}")

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet = 0,
                 crossnorm: str = "sample") -> jnp.ndarray:
        stage_sizes, block = RESNET_CONFIGS[self.depth]
        gates = iter(cnsn_gates(self, self.cnsn, sum(stage_sizes), train, crossnorm))
        x = conv(64, 7, 2, dtype=self.dtype, name="conv_init")(x)
        bn = functools.partial(MultiBatchNorm, num_sets=self.num_bn_sets, dtype=self.dtype)
        x = nn.relu(bn(name="bn_init")(x, train=train, bn_set=bn_set))
        # max_pool pads with -inf, as torch's MaxPool2d(3, 2, padding=1) does.
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        stages = zip(stage_sizes, (64, 128, 256, 512), (1, 2, 2, 2))
        for s, (num_blocks, width, stride) in enumerate(stages):
            for b in range(num_blocks):
                x = block(
                    width,
                    stride if b == 0 else 1,
                    self.num_bn_sets,
                    self.dtype,
                    self.cnsn,
                    name=f"stage{s + 1}_block{b + 1}",
                )(x, train, bn_set, next(gates))
        x = global_avg_pool(x)
        return classifier(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
