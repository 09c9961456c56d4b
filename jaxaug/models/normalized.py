"""Input normalization as a network's first operation.

Images stay in [0, 1] (the ``ops`` contract) everywhere a method touches them; a network maps them
to the dataset's normalized space itself: ``Normalized(network, Normalization(mean, std))`` applies
``network((x - mean) / std)``. It shares the network's variable scope, so its variables (and
checkpoints) are the bare network's.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Normalization:
    """A per-channel normalization, ``mean`` and ``std`` in [0, 1] units (one entry per channel,
    or one for all). Calling it maps images in [0, 1] to ``(x - mean) / std``; ``invert`` maps
    back. Hashable, so it can be a Flax module attribute."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        mean = tuple(float(m) for m in np.ravel(self.mean))
        std = tuple(float(s) for s in np.ravel(self.std))
        if not mean or not std or (len(mean) > 1 and len(std) > 1 and len(mean) != len(std)):
            raise ValueError(f"Normalization: mean and std must be scalars or per-channel vectors "
                             f"of one length, got mean={mean!r}, std={std!r}")
        if not all(np.isfinite(mean)) or not all(s > 0 and np.isfinite(s) for s in std):
            raise ValueError(f"Normalization: mean must be finite and std positive and finite, "
                             f"got mean={mean!r}, std={std!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def __call__(self, images: jax.Array) -> jax.Array:
        if not jnp.issubdtype(images.dtype, jnp.floating):
            raise ValueError(f"Normalization: images must be floats in [0, 1] (ops.to_float "
                             f"converts 8-bit levels), got dtype {images.dtype}")
        return (images - jnp.asarray(self.mean, images.dtype)) / jnp.asarray(self.std, images.dtype)

    def invert(self, normalized: jax.Array) -> jax.Array:
        dtype = normalized.dtype
        return normalized * jnp.asarray(self.std, dtype) + jnp.asarray(self.mean, dtype)


class Normalized(nn.Module):
    """``network(normalization(images), ...)``: called and initialised as ``network`` is, on images
    in [0, 1], with the same variables."""

    network: nn.Module
    normalization: Normalization

    def setup(self):
        nn.share_scope(self, self.network)

    def __call__(self, images: jax.Array, *args: Any, **kwargs: Any) -> Any:
        return self.network(self.normalization(images), *args, **kwargs)
