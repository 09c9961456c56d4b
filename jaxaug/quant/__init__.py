"""Low-bit quantization: quantizers with custom (straight-through) gradients and bit packing."""

from jaxaug.quant.packing import (
           pack_binary,
           pack_ternary,
           unpack_binary,
           unpack_ternary,
)
from jaxaug.quant.quantizers import (
           binarize,
           quantize,
           sigma,
           ternarize,
           ternary_threshold,
)

__all__ = ["binarize", "pack_binary", "pack_ternary", "quantize", "sigma", "ternarize",
           "ternary_threshold", "unpack_binary", "unpack_ternary"]
