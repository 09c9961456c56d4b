"""Low-bit quantization: quantizers with custom gradients, quantized layers and bit packing.

See `quantizers` for the maths, `layers` for `QuantConv` / `QuantDense` and the named settings
(818, 616, 828, 626, BW, BW-alpha, TW), and `export` for measuring a model's packed size.
"""

from jaxaug.quant.export import PackedKernel, PackedModel, float_nbytes, pack_model
from jaxaug.quant.layers import (
    SETTINGS,
    WEIGHT_MODES,
    QuantConv,
    QuantDense,
    QuantSpec,
    get_spec,
    quantize_weights,
)
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
    "SETTINGS", "WEIGHT_MODES", "PackedKernel", "PackedModel", "QuantConv", "QuantDense",
    "QuantSpec", "binarize", "binary_scale", "float_nbytes", "get_spec", "pack_binary",
    "pack_model", "pack_ternary", "power_of_two_shift", "quantize", "quantize_grad",
    "quantize_gradient_value", "quantize_weights", "sigma", "ternarize", "ternary_scale",
    "ternary_threshold", "unpack_binary", "unpack_ternary",
]
