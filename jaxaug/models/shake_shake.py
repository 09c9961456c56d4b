"""Shake-Shake regularized ResNet for 32×32 inputs (Gastaldi 2017), as in the AutoAugment code.

Shake-Shake d 2×wd: a 3×3 conv with 16 filters + BN, three stages of n = (d-2)/6 residual blocks
with widths w, 2w, 4w and strides 1, 2, 2, then ReLU, global average pooling and a Dense classifier.
Each block adds two branches mixed by random per-image weights (see `shake_shake_combine`).
With 10 classes, 26 2x32d has 2,923,162 parameters and 26 2x96d 26,192,922 (the 2.9M and 26.2M
reported by Gastaldi 2017 and AutoAugment).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxaug.models.batchnorm import BnSet, MultiBatchNorm
from jaxaug.models.layers import classifier, conv, global_avg_pool


def shake_shake_combine(b1: jnp.ndarray, b2: jnp.ndarray, alpha, beta) -> jnp.ndarray:
    """Returns α·b1 + (1-α)·b2 in the forward pass, with gradient β (for b1) and 1-β (for b2).

    Written as  β·b1 + (1-β)·b2 + stop_gradient((α-β)·b1 - (α-β)·b2):  the stopped term turns the
    β-mix into the α-mix in value but contributes no gradient. Unlike a custom_vjp this composes with
    every JAX transformation (jvp, Hessian-vector products for meta-gradients). α and β are cast to
    the branches' dtype so a bf16 model stays bf16.
    """
    alpha = jnp.asarray(alpha, b1.dtype)
    beta = jnp.asarray(beta, b1.dtype)
    backward = beta * b1 + (1 - beta) * b2
    return backward + jax.lax.stop_gradient(alpha * b1 + (1 - alpha) * b2 - backward)


class ShakeBranch(nn.Module):
    """ReLU - conv3x3(stride) - BN - ReLU - conv3x3 - BN."""

    features: int
    stride: int
    num_bn_sets: int
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet) -> jnp.ndarray:
        bn = functools.partial(MultiBatchNorm, num_sets=self.num_bn_sets, dtype=self.dtype)
        x = conv(self.features, 3, self.stride, dtype=self.dtype, name="conv1")(nn.relu(x))
        x = nn.relu(bn(name="bn1")(x, train=train, bn_set=bn_set))
        x = conv(self.features, 3, dtype=self.dtype, name="conv2")(x)
        return bn(name="bn2")(x, train=train, bn_set=bn_set)


class ShakeShortcut(nn.Module):
    """Shortcut for a change of shape: BN(concat(conv1x1(a[::s, ::s]), conv1x1(a'[::s, ::s]))).

    a = ReLU(x), and a' is a shifted by one pixel (a'[i, j] = a[i+1, j+1], zero past the edge), so
    the two halves see the pixels a strided 1×1 average pool would otherwise drop.
    """

    features: int
    stride: int
    num_bn_sets: int
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet) -> jnp.ndarray:
        s = self.stride
        a = nn.relu(x)
        shifted = jnp.pad(a[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))
        # A 1×1 average pool with stride s is plain subsampling.
        path1 = conv(self.features // 2, 1, dtype=self.dtype, name="path1_conv")(a[:, ::s, ::s, :])
        path2 = conv(self.features // 2, 1, dtype=self.dtype, name="path2_conv")(shifted[:, ::s, ::s, :])
        bn = MultiBatchNorm(num_sets=self.num_bn_sets, dtype=self.dtype, name="bn")
        return bn(jnp.concatenate([path1, path2], axis=-1), train=train, bn_set=bn_set)


class ShakeShakeBlock(nn.Module):
    """out = shortcut(x) + shake_shake_combine(branch_0(x), branch_1(x), α, β).

    Training draws α, β ~ U(0, 1) independently per image from the 'shake' rng; evaluation uses
    α = β = 0.5, the expectation.
    """

    features: int
    stride: int
    num_bn_sets: int
    dtype: Any

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet) -> jnp.ndarray:
        args = (self.features, self.stride, self.num_bn_sets, self.dtype)
        b1 = ShakeBranch(*args, name="branch_0")(x, train, bn_set)
        b2 = ShakeBranch(*args, name="branch_1")(x, train, bn_set)
        if train:
            alpha_key, beta_key = jax.random.split(self.make_rng("shake"))
            per_image = (x.shape[0], 1, 1, 1)
            alpha = jax.random.uniform(alpha_key, per_image)
            beta = jax.random.uniform(beta_key, per_image)
        else:
            alpha = beta = 0.5
        if x.shape[-1] == self.features and self.stride == 1:
            shortcut = x
        else:
            shortcut = ShakeShortcut(*args, name="shortcut")(x, train, bn_set)
        return shortcut + shake_shake_combine(b1, b2, alpha, beta)


class ShakeShake(nn.Module):
    """Shake-Shake ``depth`` 2×``width``d; needs (depth - 2) % 6 == 0, depth ≥ 8 and an even width.

    Called as ``model(x, train, bn_set=0)`` on normalized NHWC images; returns float32 logits.
    Training needs a 'shake' rng.
    """

    depth: int = 26
    width: int = 32
    num_classes: int = 10
    num_bn_sets: int = 1
    dtype: Any = jnp.float32

    def __post_init__(self):
        super().__post_init__()
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"Shake-Shake depth must be 6n+2 with n >= 1, got {self.depth}")
        # The shortcut concatenates two halves of width/2 channels.
        if self.width < 2 or self.width % 2:
            raise ValueError(f"Shake-Shake width must be even and >= 2, got {self.width}")

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool, bn_set: BnSet = 0) -> jnp.ndarray:
        blocks_per_stage = (self.depth - 2) // 6
        bn = functools.partial(MultiBatchNorm, num_sets=self.num_bn_sets, dtype=self.dtype)
        x = conv(16, 3, dtype=self.dtype, name="conv_init")(x)
        x = bn(name="bn_init")(x, train=train, bn_set=bn_set)
        widths = [self.width, 2 * self.width, 4 * self.width]
        for g, (width, stride) in enumerate(zip(widths, (1, 2, 2))):
            for b in range(blocks_per_stage):
                x = ShakeShakeBlock(
                    width,
                    stride if b == 0 else 1,
                    self.num_bn_sets,
                    self.dtype,
                    name=f"stage{g + 1}_block{b + 1}",
                )(x, train, bn_set)
        x = global_avg_pool(nn.relu(x))
        return classifier(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
