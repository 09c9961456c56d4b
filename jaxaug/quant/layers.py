"""Quantized Flax layers configured by (feature bits, weight mode, gradient bits).

A `QuantConv` / `QuantDense` computes, from its input x and float32 master kernel W,

    y = G( Q_A(x) * Q_W(G_W(W)) + b )

* Q_A = R · `quantize(. / R, feature_bits)`: the WAGE k-bit quantizer on the input features
  (skipped when ``feature_bits`` is None), on the range [-R, R] with R = ``feature_range`` (a power
  of two; 1, WAGE's and the quantized CU-Net's range, by default). Features outside
  R·[-1 + sigma, 1 - sigma] saturate and pass no gradient; after a CU-Net's BN-ReLU, R = 1
  saturates about 16% of them with BN gamma = 1 and 5% with gamma ~ U(0, 1), R = 4 about 0.1%
  (docs/results.md).
* Q_W: the weight quantizer named by ``weights``: "float" (none), "binary" (sign),
  "binary_alpha" (XNOR-Net's sign · mean|W| per output channel), "ternary" (TWN's {-1, 0, +1}) or
  "ternary_alpha" (TWN with its scale).
* G_W = `quantize_grad(., gradient_bits)`: identity forward; it quantizes the gradient of the master
  kernel (WAGE's G), with stochastic rounding by default as WAGE (``stochastic_rounding``; the
  uniforms come from the ``'quant'`` rng stream when the caller gives one, as the keypoint
  objectives do, else from a key derived from the gradient's own bits, see `quantize_grad`).
* G: the same on the error flowing back through the layer's output (WAGE's E), only with
  ``quantize_error`` (off by default: the official CU-Net code quantizes only the weight gradient,
  and on a small CU-Net 8-bit E bends the kernel gradients more than G does: median cosine
  0.988 against 0.9997, docs/results.md).
  It rounds as G_W does; WAGE rounds E to nearest.
* ``int8_residuals`` (a spec field, or the suffix ``+int8`` on a setting name, e.g. "818+int8"):
  the product Q_A(x) * W keeps the int8 codes of Q_A(x) for the backward pass instead of its
  float32 values (`jaxaug.quant.residuals`): the same forward values and weight gradient; the
  input's straight-through mask comes from the codes (it closes half a step earlier at each clip
  limit). The thesis's memory saving assumes 8-bit storage of the dataflow; with quantization
  simulated in float this option is how the stored activations become 8-bit (not in the
  thesis or WAGE).

The master kernel stays float32, as in every quantization-aware training scheme; `jaxaug.quant.export`
packs the quantized kernels into real bits for storage: each binary or ternary layer sows its
integer codes (``binary_codes`` / ``ternary_codes``) and, with alpha, its per-output-channel
``scale`` into the ``'quantized'`` collection. Sowing is a no-op unless that collection is mutable,
so training pays nothing for it (nor does `init`, which would otherwise sow).

The papers' settings are named in `SETTINGS`; the first and last layers of a network stay full
precision, which the models arrange by passing ``spec=None`` there.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxaug.quant.quantizers import (
    binarize,
    binary_scale,
    quantize,
    quantize_grad,
    sigma,
    ternarize,
    ternary_scale,
)
from jaxaug.quant.residuals import int8_residual_contract

WEIGHT_MODES = ("float", "binary", "binary_alpha", "ternary", "ternary_alpha")
# BatchNorm's scale gamma at initialisation: 1 (Flax's and PyTorch's default) or U(0, 1), as the
# official quantized CU-Net code initialises every BatchNorm (models read it through
# `batchnorm_scale_init`).
BN_SCALE_INITS = ("ones", "uniform")


@dataclasses.dataclass(frozen=True)
class QuantSpec:
    """How one layer is quantized. None bits mean full precision for that part.

    ``stochastic_rounding`` (WAGE's G; default) or rounding to nearest of the quantized
    gradients; ``quantize_error`` also quantizes the error at the layer's output (WAGE's E);
    ``feature_range`` R of the feature quantizer; ``bn_scale_init`` is read by the CU-Net for its
    BatchNorms ("ones" or "uniform", `BN_SCALE_INITS`), not by the layer.
    """

    feature_bits: int | None = None
    weights: str = "float"
    gradient_bits: int | None = None
    stochastic_rounding: bool = True
    feature_range: float = 1.0
    quantize_error: bool = False
    bn_scale_init: str = "ones"
    int8_residuals: bool = False

    def __post_init__(self):
        for field in ("feature_bits", "gradient_bits"):
            bits = getattr(self, field)
            if bits is not None:
                try:
                    sigma(bits)
                except ValueError as e:
                    raise ValueError(f"QuantSpec.{field}: {e}") from None
        if self.weights not in WEIGHT_MODES:
            raise ValueError(f"QuantSpec.weights={self.weights!r} is unknown; choose one of "
                             f"{', '.join(WEIGHT_MODES)}")
        if not (self.feature_range > 0 and math.log2(self.feature_range).is_integer()):
            raise ValueError(f"QuantSpec.feature_range must be a power of two, got "
                             f"{self.feature_range!r}")
        if self.quantize_error and self.gradient_bits is None:
            raise ValueError("QuantSpec.quantize_error needs gradient_bits")
        if self.bn_scale_init not in BN_SCALE_INITS:
            raise ValueError(f"QuantSpec.bn_scale_init={self.bn_scale_init!r} is unknown; choose "
                             f"one of {', '.join(BN_SCALE_INITS)}")
        if self.int8_residuals and (self.feature_bits is None or self.feature_bits > 8):
            raise ValueError(f"QuantSpec.int8_residuals needs feature_bits of 8 or fewer, got "
                             f"{self.feature_bits!r}")

    @property
    def is_full_precision(self) -> bool:
        return (self.feature_bits is None and self.weights == "float"
                and self.gradient_bits is None)


# The quantized CU-Net paper's settings (Tang thesis, sec. 5.3.5 and tables 5.8-5.10 of sec. 5.5.7),
# named <feature bits><weight bits><gradient bits>, and the weight-only ones, as the thesis defines
# them: features through WAGE's Q on [-1 + sigma, 1 - sigma] with no scaling (eq. 5.7), binary (BW)
# and ternary (TW) weights without alpha (the QIG/QFG rows of tables 5.9 and 5.10; table 5.8's
# BW-alpha-QIG row is "818_alpha"), BatchNorm's gamma initialised U(0, 1) as the official code
# does. Gradients: stochastic weight-gradient rounding (WAGE's G), no error quantization (as the
# official code). Before a BatchNorm, alpha changes nothing (docs/results.md), so "bw" and
# "bw_alpha" train the same CU-Net.
# The "_r4" settings are our variant, not the thesis's: features on [-4, 4] with gamma = 1, the
# weights with alpha. After BN-ReLU, [-1, 1] saturates many features and the clipped STE passes
# no gradient through them; [-4, 4] at 8 bits saturates almost none (docs/results.md).
PAPER = {"bn_scale_init": "uniform"}
RANGE_4 = {"feature_range": 4.0}
SETTINGS = {
    "fp": QuantSpec(),
    "818": QuantSpec(8, "binary", 8, **PAPER),
    "818_alpha": QuantSpec(8, "binary_alpha", 8, **PAPER),
    "616": QuantSpec(6, "binary", 6, **PAPER),
    "828": QuantSpec(8, "ternary", 8, **PAPER),
    "626": QuantSpec(6, "ternary", 6, **PAPER),
    "bw": QuantSpec(weights="binary", **PAPER),
    "bw_alpha": QuantSpec(weights="binary_alpha", **PAPER),
    "tw": QuantSpec(weights="ternary", **PAPER),
    "818_r4": QuantSpec(8, "binary_alpha", 8, **RANGE_4),
    "616_r4": QuantSpec(6, "binary_alpha", 6, **RANGE_4),
    "828_r4": QuantSpec(8, "ternary_alpha", 8, **RANGE_4),
    "626_r4": QuantSpec(6, "ternary_alpha", 6, **RANGE_4),
}


INT8_SUFFIX = "+int8"


def get_spec(setting: str | QuantSpec | None) -> QuantSpec | None:
    """A `QuantSpec` from a setting name (see `SETTINGS`; a name ending in "+int8" is that setting
    with ``int8_residuals``), a spec, or None for full precision."""
    if setting is None or isinstance(setting, QuantSpec):
        return setting
    name = setting.removesuffix(INT8_SUFFIX) if isinstance(setting, str) else setting
    if name not in SETTINGS:
        raise ValueError(f"unknown quantization setting {setting!r}; choose one of "
                         f"{', '.join(SETTINGS)}, optionally with the suffix {INT8_SUFFIX!r}")
    if name == setting:
        return SETTINGS[name]
    try:
        return dataclasses.replace(SETTINGS[name], int8_residuals=True)
    except ValueError as e:
        raise ValueError(f"quantization setting {setting!r}: {e}") from None


def batchnorm_scale_init(spec: QuantSpec | None):
    """The initializer of a quantized model's BatchNorm scales: ones, or U(0, 1) where
    ``spec.bn_scale_init`` is "uniform" (the official quantized CU-Net's init)."""
    if spec is not None and spec.bn_scale_init == "uniform":
        return nn.initializers.uniform(1.0)
    return nn.initializers.ones


def quantize_weights(kernel: jax.Array, mode: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(quantized kernel, integer codes, per-output-channel scales) for a weight mode."""
    if mode == "float":
        return kernel, kernel, jnp.ones(kernel.shape[-1], kernel.dtype)
    if mode.startswith("binary"):
        codes, scale = binarize(kernel), binary_scale(kernel)
    else:
        codes, scale = ternarize(kernel, scaled=False), ternary_scale(kernel)
    if not mode.endswith("alpha"):
        return codes, codes, jnp.ones_like(scale)
    return codes * scale, codes, scale


class _QuantLayer(nn.Module):
    """Shared quantized forward: input, kernel and error quantizers around ``self._op``."""

    spec: QuantSpec | None = None
    use_bias: bool = True
    dtype: Any = jnp.float32

    def _gradient(self, x, spec):
        """`quantize_grad` with the spec's bits and rounding (the 'quant' stream's key if given)."""
        stochastic = spec.stochastic_rounding
        key = self.make_rng("quant") if stochastic and self.has_rng("quant") else None
        return quantize_grad(x, spec.gradient_bits, key,
                             "stochastic" if stochastic else "nearest")

    def _quantized(self, x, kernel_shape, kernel_init, contract):
        spec = self.spec or QuantSpec()
        kernel = self.param("kernel", kernel_init, kernel_shape, jnp.float32)
        if spec.gradient_bits is not None:
            kernel = self._gradient(kernel, spec)
        kernel, codes, scale = quantize_weights(kernel, spec.weights)
        if spec.weights != "float" and not self.is_initializing():
            self.sow("quantized", f"{spec.weights.split('_')[0]}_codes", codes.astype(jnp.int8))
            if spec.weights.endswith("alpha"):
                self.sow("quantized", "scale", scale)
        if spec.int8_residuals:
            y = int8_residual_contract(contract, x, kernel.astype(self.dtype), spec.feature_bits,
                                       spec.feature_range)
        else:
            if spec.feature_bits is not None:
                r = spec.feature_range
                x = (quantize(x / r, spec.feature_bits) * r if r != 1
                     else quantize(x, spec.feature_bits))
            y = contract(x.astype(self.dtype), kernel.astype(self.dtype))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (kernel_shape[-1],), jnp.float32)
        if spec.quantize_error:
            y = self._gradient(y, spec)
        return y


def kaiming_fan_out(key, shape, dtype=jnp.float32):
    """Kaiming normal, fan_out mode, as `jaxaug.models.layers.conv_kernel_init` (drawn flat
    because XLA:CPU compiles 4-D threefry sampling slowly)."""
    fan_out = math.prod(shape[:-2]) * shape[-1]
    return math.sqrt(2.0 / fan_out) * jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


class QuantConv(_QuantLayer):
    """A 2-D convolution (NHWC, HWIO kernel) with symmetric padding (k - 1) / 2 per side."""

    features: int = 1
    kernel_size: int = 3
    strides: int = 1
    kernel_init: Any = kaiming_fan_out

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self.name or 'QuantConv'}: expected NHWC input, got shape {x.shape}")
        k, pad = self.kernel_size, (self.kernel_size - 1) // 2

        def contract(inputs, kernel):
            return jax.lax.conv_general_dilated(
                inputs, kernel, (self.strides, self.strides), ((pad, pad), (pad, pad)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"))

        return self._quantized(x, (k, k, x.shape[-1], self.features), self.kernel_init, contract)


class QuantDense(_QuantLayer):
    """A dense layer over the last axis."""

    features: int = 1
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        return self._quantized(x, (x.shape[-1], self.features), self.kernel_init,
                               lambda inputs, kernel: inputs @ kernel)
