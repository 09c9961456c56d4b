"""Low-bit quantization: quantizers with custom gradients, quantized layers and bit packing.

See `quantizers` for the maths, `layers` for `QuantConv` / `QuantDense` and the named settings
(818, 818_alpha, 616, 828, 626, BW, BW-alpha, TW as the thesis defines them, and our "_r4"
variants), `optim` for clamping quantized master weights, `packing` and `export` for storing
binary / ternary kernels in real bits and measuring a model's packed size, and `residuals` for
the "+int8" settings' contraction that keeps only int8 feature codes for the backward pass.
"""

from jaxaug.quant.export import PackedKernel, PackedModel, float_nbytes, pack_model
from jaxaug.quant.layers import (
    BN_SCALE_INITS,
    SETTINGS,
    WEIGHT_MODES,
    QuantConv,
    QuantDense,
    QuantSpec,
    batchnorm_scale_init,
    get_spec,
    quantize_weights,
)
from jaxaug.quant.optim import clamp_quantized_kernels, clamp_weights, quantized_kernel_mask
from jaxaug.quant.packing import (
    pack_binary,
    pack_ternary,
    unpack_binary,
    unpack_ternary,
)
from jaxaug.quant.quantizers import (
    binarize,
    binary_scale,
    power_of_two_shift,
    quantize,
    quantize_grad,
    quantize_gradient_value,
    sigma,
    ternarize,
    ternary_scale,
    ternary_threshold,
)

__all__ = [
    "BN_SCALE_INITS", "SETTINGS", "WEIGHT_MODES", "PackedKernel", "PackedModel", "QuantConv",
    "QuantDense", "QuantSpec", "batchnorm_scale_init", "binarize", "binary_scale",
    "clamp_quantized_kernels", "clamp_weights", "float_nbytes", "get_spec", "pack_binary",
    "pack_model", "pack_ternary", "power_of_two_shift", "quantize", "quantize_grad",
    "quantize_gradient_value", "quantize_weights", "quantized_kernel_mask", "sigma", "ternarize",
    "ternary_scale", "ternary_threshold", "unpack_binary", "unpack_ternary",
]
