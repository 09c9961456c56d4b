"""Sampling for adversarial pose augmentation (ASR and AHO, Peng et al., CVPR 2018).

* ASR picks a scale bin and a rotation bin from categorical distributions, then draws each value
  from its bin's small bounded Gaussian: centre + sigma·z with z ~ N(0, 1) truncated to
  [-h / sigma, h / sigma], h the bin's half-width, so a value never leaves its bin. The bins
  spread evenly over the standard random ranges (scale 0.75-1.25, rotation +-30 degrees).
* AHO picks 1 or 2 distinct cells of a g x g grid (by sampling without replacement from the grid
  distribution) and returns a g x g mask with exactly those cells zeroed, which the pose network
  upsamples onto its bridge features at every resolution.

All functions are pure: arrays and a PRNG key in, arrays out, and work under jit and vmap.
`PoseAdversary` is the network that produces the three distributions.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxaug.models.cunet import upsample2
from jaxaug.models.hourglass import Residual


def bin_centres(low: float, high: float, num_bins: int) -> np.ndarray:
    """Centres of ``num_bins`` equal bins tiling [low, high]."""
    if num_bins < 1 or not high > low:
        raise ValueError(f"bin_centres: need num_bins >= 1 and high > low, got {num_bins}, "
                         f"[{low}, {high}]")
    width = (high - low) / num_bins
    return low + width * (np.arange(num_bins) + 0.5)


def sample_binned(key: jax.Array, logits: jax.Array, low: float, high: float,
                  sigma_fraction: float = 0.5) -> tuple[jax.Array, jax.Array]:
    """(bin index, value) from categorical ``logits`` [..., k] over k equal bins of [low, high];
    the value is the bin centre plus a Gaussian of std ``sigma_fraction`` x half-width truncated
    to the bin."""
    k = logits.shape[-1]
    centres = jnp.asarray(bin_centres(low, high, k), jnp.float32)
    half = (high - low) / (2 * k)
    sigma = sigma_fraction * half
    pick_key, value_key = jax.random.split(key)
    index = jax.random.categorical(pick_key, logits)
    z = jax.random.truncated_normal(value_key, -half / sigma, half / sigma, index.shape)
    return index, centres[index] + sigma * z


def occlusion_mask(key: jax.Array, grid_logits: jax.Array, num_cells: jax.Array) -> tuple[
        jax.Array, jax.Array]:
    """(mask [g, g] with ``num_cells`` (1 or 2, may be traced) distinct cells zeroed, the two
    sampled cell indices [2] in sampling order) from ``grid_logits`` [g, g]. Sampling without
    replacement uses the Gumbel top-2 trick, so the first index is distributed as the grid
    distribution itself."""
    g = grid_logits.shape[-1]
    if grid_logits.shape != (g, g):
        raise ValueError(f"occlusion_mask: grid_logits must be square [g, g], got "
                         f"{grid_logits.shape}")
    flat = grid_logits.reshape(-1) + jax.random.gumbel(key, (g * g,))
    cells = jax.lax.top_k(flat, 2)[1]
    keep_second = jnp.asarray(num_cells) >= 2
    drop = jax.nn.one_hot(cells[0], g * g) + keep_second * jax.nn.one_hot(cells[1], g * g)
    return (1.0 - drop).reshape(g, g), cells


class PoseAdversary(nn.Module):
    """The augmentation network G: the top-down half of an hourglass over the pose network's
    skip and bridge features, with ASR and AHO heads.

    Input: ``features`` = [skip features, highest resolution first, ..., bridge] as returned by a
    pose model with ``return_features=True``. From the bridge up, each resolution has one residual
    module: x = Residual(upsample2(x) + Conv1x1(skip)). Outputs logits:
    ``scale`` [N, num_scales], ``rotation`` [N, num_rotations] (from the globally pooled top
    features) and ``occlusion`` [N, g, g] (the top features average-pooled to g x g, then a 1x1
    conv to one channel).
    """

    width: int = 64
    num_scales: int = 7
    num_rotations: int = 9
    grid: int = 4

    @nn.compact
    def __call__(self, features, train: bool):
        *skips, bridge = features
        x = Residual(self.width, train, None, jnp.float32, name="bridge")(bridge)
        for level in reversed(range(len(skips))):
            skip = nn.Conv(self.width, (1, 1), name=f"lateral{level}")(skips[level])
            x = Residual(self.width, train, None, jnp.float32, name=f"up{level}")(
                upsample2(x) + skip)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                 name="top_bn")(x))
        pooled = jnp.mean(x, axis=(1, 2))
        n, h, w, c = x.shape
        if h % self.grid or w % self.grid:
            raise ValueError(f"PoseAdversary: feature size {h}x{w} is not divisible by the "
                             f"occlusion grid {self.grid}")
        cells = x.reshape(n, self.grid, h // self.grid, self.grid, w // self.grid, c).mean((2, 4))
        return {
            "scale": nn.Dense(self.num_scales, name="scale")(pooled),
            "rotation": nn.Dense(self.num_rotations, name="rotation")(pooled),
            "occlusion": nn.Conv(1, (1, 1), name="occlusion")(cells)[..., 0],
        }
