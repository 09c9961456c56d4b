"""Static (shape/dtype) validation shared by the ops; never inspects traced values."""

import operator

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def check_image(op: str, img: jax.Array, channels: int | None = None) -> None:
    """Raise ValueError naming `op` unless `img` is a float HWC image (optionally with `channels`).

    Only the static shape and dtype are read, so this is safe under jit/vmap/grad.
    """
    shape = getattr(img, "shape", None)
    dtype = getattr(img, "dtype", None)
    if shape is None or len(shape) != 3:
        raise ValueError(
            f"{op}: img must be a float HWC image, got shape {shape}; batch images with jax.vmap"
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"{op}: img must be a float HWC image in [0, 1], got dtype {dtype}; "
            "call jaxaug.ops.to_float first"
        )
    if channels is not None and shape[-1] != channels:
        raise ValueError(f"{op}: img must have {channels} channels, got shape {tuple(shape)}")


def check_shape(op: str, name: str, value: ArrayLike, allowed: tuple[tuple[int, ...], ...]) -> None:
    """Raise ValueError naming `op` and the argument `name` unless its static shape is allowed."""
    shape = tuple(jnp.shape(value))
    if shape not in allowed:
        raise ValueError(f"{op}: {name} must have shape in {allowed}, got {shape}")


def check_size(op: str, name: str, size: tuple[int, int]) -> tuple[int, int]:
    """(H, W) as two positive Python ints: sizes set array shapes, so they must be static."""
    try:
        h, w = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: {name} must be a pair of ints (H, W), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{op}: {name} must be positive, got {size!r}")
    return h, w
