"""8-bit point ops, exact after quantization against PIL `ImageOps`.

Each op quantizes the float image to levels v = round(img * 255) in {0..255}, maps every channel
through a 256-entry lookup table built in JAX (per image, per channel where the table depends on
the histogram), and returns lut[v] / 255. With `straight_through=True` the forward value is the
same but the gradient w.r.t. img is the identity: img + stop_gradient(op(img) - img).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxaug.ops.fusion import materialize
from jaxaug.ops.validate import check_image

# numpy, not jnp: a JAX array built at import would start the backend before
# jax.distributed.initialize can run.
_LEVELS = np.arange(256, dtype=np.int32)


def to_float(img: jax.Array) -> jax.Array:
    """8-bit levels (uint8 or another integer dtype) -> float32 in [0, 1]: x / 255. Elementwise,
    so one image or a batch of any shape. A float input raises: it is already a float image, and
    dividing it again by 255 would darken it silently."""
    img = jnp.asarray(img)
    if not jnp.issubdtype(img.dtype, jnp.integer):
        raise ValueError(f"to_float: img must hold 8-bit levels (uint8), got dtype {img.dtype}; "
                         "a float image is already in [0, 1]")
    return img.astype(jnp.float32) / 255.0


def to_uint8(img: jax.Array) -> jax.Array:
    """float image in [0, 1] -> uint8: round(x * 255) clipped to [0, 255]. Elementwise, so one
    image or a batch of any shape. An integer input raises: it already holds levels, and
    scaling it by 255 would saturate it silently."""
    img = jnp.asarray(img)
    if not jnp.issubdtype(img.dtype, jnp.floating):
        raise ValueError(f"to_uint8: img must be a float image in [0, 1], got dtype {img.dtype}; "
                         "it already holds 8-bit levels")
    return jnp.clip(jnp.round(img * 255.0), 0, 255).astype(jnp.uint8)


def to_levels(img: jax.Array) -> jax.Array:
    """float image in [0, 1] -> int32 8-bit levels round(img * 255) clipped to 0..255."""
    return jnp.clip(jnp.round(img * 255.0), 0, 255).astype(jnp.int32)


def lookup(v: jax.Array, luts: jax.Array) -> jax.Array:
    """Levels through per-channel tables: v [H, W, C], luts [C, 256] -> luts[c][v[..., c]]. One
    gather from the flattened
    tables (under vmap three times faster than take_along_axis when two lookups are chained)."""
    channels = v.shape[-1]
    return materialize(luts.reshape(-1))[v + 256 * jnp.arange(channels)]


@jax.custom_batching.custom_vmap
def _histograms(v):
    """Per-channel 256-bin histograms [C, 256] of levels v [H, W, C], by one scatter-add (a
    one-hot count is 80x slower on CPU)."""
    channels = v.shape[-1]
    bins = (v.reshape(-1, channels) + 256 * jnp.arange(channels)).reshape(-1)
    return jnp.zeros((channels * 256,), jnp.int32).at[bins].add(1).reshape(channels, 256)


@_histograms.def_vmap
def _histograms_batched(axis_size, in_batched, v):
    # One flat scatter over the whole batch, with per-image bin offsets: a scatter with batch
    # dimensions, what plain vmap makes, is 1.5-3x slower on CPU.
    del in_batched
    channels = v.shape[-1]
    offsets = 256 * jnp.arange(channels) + 256 * channels * jnp.arange(axis_size)[:, None, None]
    bins = (v.reshape(axis_size, -1, channels) + offsets).reshape(-1)
    counts = jnp.zeros((axis_size * channels * 256,), jnp.int32).at[bins].add(1)
    return counts.reshape(axis_size, channels, 256), True


def apply_luts(img: jax.Array, luts: jax.Array, *, straight_through: bool = False) -> jax.Array:
    """Map every channel c of `img` through its 256-entry table luts[c] (luts: [C, 256] or [256]
    ints in 0..255): out = luts[c][round(img * 255)] / 255."""
    v = to_levels(img)
    luts = jnp.broadcast_to(luts, (img.shape[-1], 256))
    return from_levels(img, lookup(v, luts), straight_through=straight_through)


def from_levels(img: jax.Array, out_levels: jax.Array, *, straight_through: bool = False
                ) -> jax.Array:
    """The float image of 8-bit `out_levels` computed from `img`: out_levels / 255, with no
    gradient, or with the identity gradient w.r.t. img if `straight_through`."""
    out = (out_levels.astype(img.dtype) / 255.0).astype(img.dtype)
    if straight_through:
        return img + jax.lax.stop_gradient(out - img)
    return jax.lax.stop_gradient(out)


# The fixed 8-bit maps, elementwise on levels (no table: cheaper than a gather).
def invert_levels(v: jax.Array) -> jax.Array:
    """`invert` on levels: v -> 255 - v."""
    return 255 - v


#: Slack, in levels, of the threshold comparison: a threshold k / 255 stored in float32 may land
#: just above k when scaled back, and must still invert level k.
SOLARIZE_SLACK = 1e-3


def solarize_threshold(threshold: float | jax.Array) -> jax.Array:
    """The smallest level v with v >= threshold * 255 (up to `SOLARIZE_SLACK`): a fractional
    8-bit threshold such as TrivialAugment-Wide's 246.5 (level 1) inverts from 247 on, as
    torchvision's `solarize` (``img >= threshold``, PIL's ``i < threshold`` lut) does."""
    return jnp.ceil(jnp.asarray(threshold, jnp.float32) * 255.0 - SOLARIZE_SLACK)


def solarize_levels(v: jax.Array, threshold: float | jax.Array) -> jax.Array:
    """`solarize` on levels: v -> 255 - v if v >= threshold * 255, else v."""
    return jnp.where(v >= solarize_threshold(threshold), 255 - v, v)


def posterize_levels(v: jax.Array, bits: int | jax.Array) -> jax.Array:
    """`posterize` on levels: v -> v & ~(2**(8 - bits) - 1), bits rounded and clipped to 0..8."""
    shift = 8 - jnp.clip(jnp.round(jnp.asarray(bits)).astype(jnp.int32), 0, 8)
    return jnp.bitwise_and(v, ~(jnp.left_shift(jnp.int32(1), shift) - 1))


def invert(img: jax.Array, *, straight_through: bool = False) -> jax.Array:
    """PIL `ImageOps.invert`: v -> 255 - v."""
    check_image("invert", img)
    return from_levels(img, invert_levels(to_levels(img)), straight_through=straight_through)


def solarize(img: jax.Array, threshold: float | jax.Array, *, straight_through: bool = False
             ) -> jax.Array:
    """PIL `ImageOps.solarize(image, T)` with the 8-bit threshold T = threshold * 255: levels
    v >= T become 255 - v, others are kept (PIL's lut: i if i < T else 255 - i; torchvision's
    ``img >= T``). A fractional T (TrivialAugment-Wide's 255 - 8.5 l) inverts from ceil(T) on.
    threshold=1.0 keeps everything below 255; threshold > 1 is the identity."""
    check_image("solarize", img)
    out = solarize_levels(to_levels(img), threshold)
    return from_levels(img, out, straight_through=straight_through)


def posterize(img: jax.Array, bits: int | jax.Array, *, straight_through: bool = False
              ) -> jax.Array:
    """PIL `ImageOps.posterize(image, bits)`: keep the top `bits` (PIL: 1..8; 0 gives
    black) bits, v & ~(2**(8 - bits) - 1)."""
    check_image("posterize", img)
    out = posterize_levels(to_levels(img), bits)
    return from_levels(img, out, straight_through=straight_through)


@functools.lru_cache(maxsize=1)
def _autocontrast_corrections():
    """Bit set over the keys lo * 65536 + hi * 256 + i (uint32 words, bit `key % 32` of word
    `key // 32`, 2 MiB) of the lut entries where PIL's float64 evaluation int(i * s + (-lo * s)),
    s = 255 / (hi - lo), lands one below the exact (i - lo) * 255 // (hi - lo) (rounding just under
    an exact integer). Computed once with numpy, which rounds like Python. A bit set makes the
    lookup one gather; a binary search in the 12094 sorted keys is four times slower."""
    i = np.arange(256, dtype=np.float64)[None, :]
    keys = []
    for lo in range(255):
        hi = np.arange(lo + 1, 256)[:, None]
        s = 255.0 / (hi - lo)
        py = np.clip(np.trunc(i * s + (-lo * s)), 0, 255)
        exact = np.clip((np.arange(256)[None, :] - lo) * 255 // (hi - lo), 0, 255)
        h_idx, i_idx = np.nonzero(py != exact)
        keys.append(lo * 65536 + (lo + 1 + h_idx) * 256 + i_idx)
    keys = np.concatenate(keys)
    bits = np.zeros(2**24 // 32, np.uint32)
    np.bitwise_or.at(bits, keys // 32, np.left_shift(np.uint32(1), (keys % 32).astype(np.uint32)))
    return bits


def auto_contrast_lut(levels: jax.Array) -> jax.Array:
    """[C, 256] tables of `auto_contrast` for the 8-bit `levels` [H, W, C] of an image."""
    flat = levels.reshape(-1, levels.shape[-1])
    lo, hi = flat.min(0)[:, None], flat.max(0)[:, None]  # [C, 1]
    lut = jnp.clip((_LEVELS[None, :] - lo) * 255 // jnp.maximum(hi - lo, 1), 0, 255)
    keys = lo * 65536 + hi * 256 + _LEVELS[None, :]
    words = jnp.asarray(_autocontrast_corrections())[keys // 32]
    lut = lut - ((words >> (keys % 32).astype(jnp.uint32)) & 1).astype(jnp.int32)
    return jnp.where(hi > lo, lut, _LEVELS[None, :])


def auto_contrast(img: jax.Array, *, straight_through: bool = False) -> jax.Array:
    """PIL `ImageOps.autocontrast(image)` (cutoff 0), per channel: with lo/hi the smallest/largest
    level present, lut[i] = clip(int(i * s - lo * s), 0, 255), s = 255 / (hi - lo). Computed exactly
    in integers as (i - lo) * 255 // (hi - lo), minus one at the entries where PIL's float64
    rounding falls just below an integer (a precomputed table). A constant channel (hi <= lo) is
    left unchanged, as in PIL."""
    check_image("auto_contrast", img)
    return apply_luts(img, auto_contrast_lut(to_levels(img)), straight_through=straight_through)


def equalize_lut(levels: jax.Array) -> jax.Array:
    """[C, 256] tables of `equalize` for the 8-bit `levels` [H, W, C] of an image."""
    h = _histograms(levels)  # [C, 256]
    present = h > 0
    n_present = present.sum(1)
    top = 255 - jnp.argmax(present[:, ::-1], axis=1)
    last = jnp.take_along_axis(h, top[:, None], axis=1)[:, 0]
    step = (h.sum(1) - last) // 255
    safe = jnp.maximum(step, 1)[:, None]
    cum = jnp.cumsum(h, axis=1) - h  # exclusive
    lut = jnp.clip((safe // 2 + cum) // safe, 0, 255)
    keep = (n_present <= 1) | (step == 0)
    return jnp.where(keep[:, None], _LEVELS[None, :], lut)


def equalize(img: jax.Array, *, straight_through: bool = False) -> jax.Array:
    """PIL `ImageOps.equalize(image)`, per channel, on the histogram h: with `last` the count of
    the highest level present and step = (sum(h) - last) // 255, lut[i] = (step // 2 +
    sum(h[:i])) // step (clipped to 255 as PIL's point() does); if at most one level is present or
    step == 0 the channel is left unchanged."""
    check_image("equalize", img)
    return apply_luts(img, equalize_lut(to_levels(img)), straight_through=straight_through)
