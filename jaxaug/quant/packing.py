"""Real storage for binary and ternary weights: 1 bit per binary weight, 2 bits per ternary one,
packed into uint8 with an exact round trip (host-side numpy; sizes are these arrays' bytes)."""

import numpy as np


def pack_binary(signs) -> np.ndarray:
    """{-1, +1} values (any shape) to uint8, 8 per byte (+1 -> bit 1), in C order."""
    signs = np.asarray(signs)
    if not np.all(np.isin(signs, (-1, 1))):
        raise ValueError("pack_binary: values must all be -1 or +1")
    return np.packbits(signs.reshape(-1) > 0)


def _check_packed(packed, shape, per_byte: int, what: str) -> np.ndarray:
    """``packed`` as a flat uint8 array, which must hold exactly the bytes ``shape`` needs at
    ``per_byte`` values a byte: a shorter one would unpack into made-up values."""
    packed = np.asarray(packed)
    if packed.dtype != np.uint8:
        raise ValueError(f"{what}: packed must be uint8, got dtype {packed.dtype}")
    need = -(-int(np.prod(shape)) // per_byte)
    if packed.size != need:
        raise ValueError(f"{what}: shape {tuple(shape)} needs {need} packed bytes, got "
                         f"{packed.size}")
    return packed.reshape(-1)


def unpack_binary(packed: np.ndarray, shape) -> np.ndarray:
    """The inverse of `pack_binary`: int8 {-1, +1} of ``shape``; ``ValueError`` unless
    ``packed`` is uint8 of exactly ceil(size / 8) bytes."""
    count = int(np.prod(shape))
    bits = np.unpackbits(_check_packed(packed, shape, 8, "unpack_binary"), count=count)
    return np.where(bits == 1, 1, -1).astype(np.int8).reshape(shape)


def pack_ternary(values) -> np.ndarray:
    """{-1, 0, +1} values (any shape) to uint8, 4 per byte, 2 bits each (0 -> 00, +1 -> 01,
    -1 -> 10), in C order."""
    values = np.asarray(values)
    if not np.all(np.isin(values, (-1, 0, 1))):
        raise ValueError("pack_ternary: values must all be -1, 0 or +1")
    codes = np.select([values.reshape(-1) == 1, values.reshape(-1) == -1], [1, 2], 0)
    codes = np.pad(codes, (0, -len(codes) % 4)).reshape(-1, 4).astype(np.uint8)
    return (codes[:, 0] | codes[:, 1] << 2 | codes[:, 2] << 4 | codes[:, 3] << 6).astype(np.uint8)


def unpack_ternary(packed: np.ndarray, shape) -> np.ndarray:
    """The inverse of `pack_ternary`: int8 {-1, 0, +1} of ``shape``; ``ValueError`` unless
    ``packed`` is uint8 of exactly ceil(size / 4) bytes whose codes are all 00, 01 or 10 (11 is
    no value: a damaged file)."""
    packed = _check_packed(packed, shape, 4, "unpack_ternary")
    codes = np.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], axis=1).reshape(-1)
    codes = codes[:int(np.prod(shape))]
    if np.any(codes == 3):
        raise ValueError(f"unpack_ternary: {int(np.sum(codes == 3))} code(s) 11, which "
                         "pack_ternary never writes")
    return np.select([codes == 1, codes == 2], [1, -1], 0).astype(np.int8).reshape(shape)
