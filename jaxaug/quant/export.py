"""Packing a quantized model's weights into real bits, and measuring its size from the bytes.

`pack_model` runs the model once with the ``'quantized'`` collection mutable, so every binary or
ternary `QuantConv` / `QuantDense` reports the integer codes and scales it used (see
`jaxaug.quant.layers`). Those kernels are stored packed (1 bit per binary weight, 2 per ternary one)
with float32 scales; every other parameter (first and last layers, BatchNorm, biases) stays
float32. Sizes are the byte counts of the stored arrays, not formulas.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import traverse_util

from jaxaug.quant.packing import (
    pack_binary,
    pack_ternary,
    unpack_binary,
    unpack_ternary,
)

_PACKERS = {"binary": (pack_binary, unpack_binary), "ternary": (pack_ternary, unpack_ternary)}


@dataclasses.dataclass
class PackedKernel:
    kind: str  # "binary" or "ternary"
    bits: np.ndarray  # uint8, packed codes
    shape: tuple[int, ...]
    scale: np.ndarray | None  # float32 per output channel, or None without alpha

    @property
    def nbytes(self) -> int:
        return self.bits.nbytes + (0 if self.scale is None else self.scale.nbytes)

    def kernel(self) -> np.ndarray:
        """The kernel the layer computes with: codes (times alpha), float32."""
        codes = _PACKERS[self.kind][1](self.bits, self.shape).astype(np.float32)
        return codes if self.scale is None else codes * self.scale


@dataclasses.dataclass
class PackedModel:
    kernels: dict[tuple[str, ...], PackedKernel]  # parameter path -> packed kernel
    float_params: dict[tuple[str, ...], np.ndarray]  # every other parameter, float32

    @property
    def nbytes(self) -> int:
        return (sum(k.nbytes for k in self.kernels.values())
                + sum(v.nbytes for v in self.float_params.values()))

    def params(self) -> dict:
        """The parameters with each packed kernel restored to the values the layer used."""
        flat = dict(self.float_params)
        flat.update({path: packed.kernel() for path, packed in self.kernels.items()})
        return traverse_util.unflatten_dict(flat)


def pack_model(model, variables, *args, **kwargs) -> PackedModel:
    """Packs ``variables['params']`` of ``model`` after one ``model.apply(variables, *args,
    **kwargs)`` that collects the layers' codes (kwargs go to apply, e.g. ``train=False``)."""
    inputs = {name: v for name, v in variables.items() if name != "quantized"}
    _, state = model.apply(inputs, *args, mutable=["quantized"], **kwargs)
    sown = traverse_util.flatten_dict(jax.device_get(state.get("quantized", {})))
    params = {path: np.asarray(v, np.float32)
              for path, v in traverse_util.flatten_dict(jax.device_get(variables["params"])).items()}
    kernels = {}
    for path, calls in sown.items():
        kind = path[-1].removesuffix("_codes")
        if kind not in _PACKERS:
            continue
        layer = path[:-1]
        codes = _one_value(calls, path)
        scale = sown.get(layer + ("scale",))
        kernels[layer + ("kernel",)] = PackedKernel(
            kind, _PACKERS[kind][0](np.asarray(codes)), tuple(codes.shape),
            None if scale is None else np.asarray(_one_value(scale, layer + ("scale",)),
                                                  np.float32))
    missing = [p for p in kernels if p not in params]
    if missing:
        raise ValueError(f"pack_model: sown codes without a matching kernel parameter: {missing}")
    floats = {path: v for path, v in params.items() if path not in kernels}
    return PackedModel(kernels, floats)


def _one_value(calls: tuple, path: tuple[str, ...]) -> np.ndarray:
    """The value a layer sowed, once per call: a layer called several times in one pass (the
    CU-Net's shared convolutions under iterative refinement) sows the same codes and scales each
    time, as they are functions of its kernel alone."""
    first = np.asarray(calls[0])
    if any(not np.array_equal(first, np.asarray(other)) for other in calls[1:]):
        raise ValueError(f"pack_model: {'/'.join(path)} sowed different values in its "
                         f"{len(calls)} calls; a kernel's codes must not depend on the input")
    return first


def float_nbytes(params) -> int:
    """Bytes of ``params`` stored as float32."""
    return sum(np.asarray(v).size * 4 for v in jax.tree_util.tree_leaves(params))
