"""Stacked hourglass networks (Newell et al., ECCV 2016), the baseline of CU-Net.

With width C (``features``, 256) and ``depth`` d (4):

* Residual module (pre-activation bottleneck): BN-ReLU-Conv1x1 (C/2) - BN-ReLU-Conv3x3 (C/2) -
  BN-ReLU-Conv1x1 (C), plus the input, through a 1x1 conv when its channel count is not C.
* Stem: 7x7 conv to C/4 (stride 2; 1 when ``stem_stride`` is 1) - BN - ReLU - Residual (C/2) -
  2x2 max pool (only when ``stem_stride`` is 4) - Residual (C/2) - Residual (C); 64 and 128
  channels for C = 256 as in the paper.
* Hourglass of depth d: at each level a skip Residual at the current resolution and, after 2x2 max
  pooling, a Residual whose output goes one level down; at the bottom one more Residual (the
  bridge); going back up each level applies a Residual, upsamples x2 (nearest) and adds the skip.
* After stack s: Residual - Conv1x1-BN-ReLU (C) = f, heatmaps = Conv1x1(f) to ``num_joints``
  (intermediate supervision). The next stack's input is the stack input + Conv1x1(f) +
  Conv1x1(heatmaps).

Every conv has a bias, as in the paper's Torch code (except in dense blocks, below).

With ``block="dense"`` (default ``"residual"``), every Residual above (the stem's three, the
hourglasses' skip, down, bridge and up modules, and the one after each hourglass) is replaced by the
dense block of CU-Net (`jaxaug.models.cunet.DenseBlock` with one output, not rematerialized, and
growth n = ``growth``, 32): input - BN-ReLU-Conv1x1 (4n) - BN-ReLU-Conv3x3 (n) = new;
[input, new] - BN-ReLU-Conv1x1 to the module's width (C/2 or C as above). Its convs have no bias
(as in CU-Net) and there is no shortcut. The modules keep their names (``stem_residual1``,
``skip0``, ``residual0``, ...), which name positions; everything else (7x7 stem conv, 1x1
linear/head/remap convs and their biases, BN) is the same for both blocks.

The output format and the ``stem_stride``, ``quant``, ``occlusion`` and ``return_features`` options
are those of `jaxaug.models.cunet.CUNet` (skip features are the skip modules' outputs, the bridge
feature the bottom module's), with S = ``num_stacks`` heatmap sets; they work the same with both
blocks. With ``quant``, every conv is quantized (the dense blocks' too) except the stem's 7x7 conv
and the heads giving heatmaps; the spec's ``bn_scale_init`` (the quantized CU-Net's U(0, 1) BN
init) is not applied here: every BatchNorm starts at gamma = 1.

Initialization departs from the reference code: the Torch hourglass and the PyTorch one of the
adversarial pose augmentation (zhiqiangdon/pose-adv-aug, ``models/asn_stacked_hg.py``) draw every
conv's weights and bias from U(+-1/sqrt(fan_in)) (std 1/sqrt(3 fan_in)) and every BatchNorm's
gamma from U(0, 1); here the kernels are Kaiming normal with fan-out (std sqrt(2 / fan_out)),
biases and the heads zero, gamma 1. Under RMSProp, whose first steps move every weight by about
the same amount, a kernel followed by BatchNorm then turns by a fraction inversely proportional to
its scale: with the larger kernels here, the reference's relative steps are several times larger.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxaug.models.cunet import (
    HEAD_INIT,
    BnReluConv,
    DenseBlock,
    batch_norm,
    check_common,
    check_inputs,
    check_int,
    max_pool2,
    occlude,
    upsample2,
)
from jaxaug.quant.layers import QuantConv, QuantSpec, get_spec, kaiming_fan_out


class Residual(nn.Module):
    """Pre-activation bottleneck: x + BN-ReLU-Conv1x1(C/2)-BN-ReLU-Conv3x3(C/2)-BN-ReLU-Conv1x1(C),
    with x through a 1x1 conv when it does not have C channels."""

    features: int
    train: bool
    spec: QuantSpec | None
    dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        common = {"train": self.train, "spec": self.spec, "use_bias": True, "dtype": self.dtype}
        y = BnReluConv(self.features // 2, 1, name="unit1", **common)([x])
        y = BnReluConv(self.features // 2, 3, name="unit2", **common)([y])
        y = BnReluConv(self.features, 1, name="unit3", **common)([y])
        if x.shape[-1] != self.features:
            x = QuantConv(features=self.features, kernel_size=1, spec=self.spec, dtype=self.dtype,
                          name="shortcut")(x)
        # Biases are float32, so cast back to keep bfloat16 models in bfloat16.
        return (x + y).astype(self.dtype)


BLOCKS = ("residual", "dense")


def make_module(block: str, features: int, growth: int, train: bool, spec: QuantSpec | None,
                dtype: Any, name: str):
    """A `Residual` (``block="residual"``) or a one-output `DenseBlock` of growth ``growth``
    (``block="dense"``) named ``name``, as a function x -> [N, H, W, features]. Call it inside a
    compact method: the module is a child of the module being called."""
    if block == "residual":
        return Residual(features, train, spec, dtype, name=name)
    if block != "dense":
        raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
    dense = DenseBlock(features, growth, 1, train, spec, False, dtype, name=name)
    return lambda x: dense([x])[1][0].astype(dtype)


class Hourglass(nn.Module):
    """One hourglass; returns (output, [skip features highest resolution first, bridge]), those
    features multiplied by the occlusion mask. ``block`` and ``growth`` as in `StackedHourglass`."""

    depth: int
    features: int
    train: bool
    spec: QuantSpec | None
    dtype: Any
    block: str = "residual"
    growth: int = 32

    @nn.compact
    def __call__(self, x: jax.Array, occlusion: jax.Array | None):
        def residual(name):
            return make_module(self.block, self.features, self.growth, self.train, self.spec,
                               self.dtype, name)

        skips = []
        for level in range(self.depth):
            skips.append(occlude(residual(f"skip{level}")(x), occlusion))
            x = residual(f"down{level}")(max_pool2(x))
        x = occlude(residual("bridge")(x), occlusion)
        bridge = x
        for level in reversed(range(self.depth)):
            x = skips[level] + upsample2(residual(f"up{level}")(x))
        return x, [*skips, bridge]


class StackedHourglass(nn.Module):
    """Stacked hourglass network (see the module docstring); called like `CUNet`:
    ``model.apply(variables, images, train, occlusion=None, return_features=False)``."""

    num_joints: int = 16
    num_stacks: int = 8
    depth: int = 4
    features: int = 256
    stem_stride: int = 4
    quant: str | QuantSpec | None = None
    dtype: Any = jnp.float32
    block: str = "residual"  # one of BLOCKS: "residual" or "dense" (see the module docstring)
    growth: int = 32  # the dense blocks' growth n (unused with block="residual")

    def __post_init__(self):
        super().__post_init__()
        check_common("StackedHourglass", self)
        check_int("StackedHourglass", "num_stacks", self.num_stacks, 1)
        if not isinstance(self.block, str) or self.block not in BLOCKS:
            raise ValueError(f"StackedHourglass: block must be one of {BLOCKS}, "
                             f"got {self.block!r}")
        check_int("StackedHourglass", "growth", self.growth, 1)
        check_int("StackedHourglass", "features", self.features, 4)
        if self.features % 4:
            # The stem's first conv has C/4 channels and the bottlenecks C/2.
            raise ValueError(f"StackedHourglass: features must be a multiple of 4, "
                             f"got {self.features}")

    @nn.compact
    def __call__(self, images: jax.Array, train: bool, occlusion: jax.Array | None = None,
                 return_features: bool = False):
        check_inputs("StackedHourglass", images, occlusion, self.stem_stride, self.depth)
        spec = get_spec(self.quant)

        def conv1x1(features, name, conv_spec, kernel_init=kaiming_fan_out):
            return QuantConv(features=features, kernel_size=1, spec=conv_spec, dtype=self.dtype,
                             kernel_init=kernel_init, name=name)

        x = self._stem(images, train, spec)
        heatmaps, first_features = [], None
        for s in range(self.num_stacks):
            hourglass = Hourglass(self.depth, self.features, train, spec, self.dtype, self.block,
                                  self.growth, name=f"hourglass{s}")
            y, skip_features = hourglass(x, occlusion)
            first_features = first_features or skip_features
            y = make_module(self.block, self.features, self.growth, train, spec, self.dtype,
                            f"residual{s}")(y)
            y = conv1x1(self.features, f"linear{s}", spec)(y)
            y = nn.relu(batch_norm(train, self.dtype, f"linear{s}_bn")(y))
            maps = conv1x1(self.num_joints, f"head{s}", None, HEAD_INIT)(y)
            heatmaps.append(maps.astype(jnp.float32))
            if s + 1 < self.num_stacks:
                x = (x + conv1x1(self.features, f"remap_features{s}", spec)(y)
                     + conv1x1(self.features, f"remap_heatmaps{s}", spec)(maps)).astype(self.dtype)
        heatmaps = jnp.stack(heatmaps)
        return (heatmaps, first_features) if return_features else heatmaps

    def _stem(self, images: jax.Array, train: bool, spec: QuantSpec | None) -> jax.Array:
        """7x7 conv (full precision) - BN - ReLU - module - max pool - module - module, the modules
        Residuals or dense blocks (``block``)."""
        def residual(features, name):
            return make_module(self.block, features, self.growth, train, spec, self.dtype, name)

        x = QuantConv(features=self.features // 4, kernel_size=7,
                      strides=min(self.stem_stride, 2), dtype=self.dtype, name="stem_conv")(images)
        x = nn.relu(batch_norm(train, self.dtype, "stem_bn")(x))
        x = residual(self.features // 2, "stem_residual1")(x)
        if self.stem_stride == 4:
            x = max_pool2(x)
        x = residual(self.features // 2, "stem_residual2")(x)
        return residual(self.features, "stem_residual3")(x)
