"""Low-bit quantizers as pure functions with custom gradients (quantized CU-Net, WAGE, TWN).

Forward quantizers are `jax.custom_vjp` functions with a clipped straight-through estimator
(STE): the backward pass treats the rounding as the identity inside the clip range and as a
constant outside it,

    d q(x) / dx := 1{lo <= x <= hi}.

* `binarize(w)`: sign(clip(w, -1, 1)) in {-1, +1} (0 maps to +1); STE range [-1, 1].
* `ternarize(w)`: TWN's {-1, 0, +1} with threshold t = 0.7 mean|w|; STE range [-1, 1].
* ``scaled=True`` multiplies by alpha per output channel (the last axis of a Flax kernel):
  alpha = mean|w| for binary weights (XNOR-Net), and the mean of |w| over |w| > t for ternary
  ones (TWN). alpha is an ordinary function of w, so its own gradient flows too.
* `quantize(x, bits)`: WAGE's k-bit dataflow quantizer with sigma(k) = 2^(1 - k),
  Q(x, k) = clip(sigma round(x / sigma), -1 + sigma, 1 - sigma); STE range [-1 + sigma, 1 - sigma].
All work under jit, vmap and grad.
"""

import jax
import jax.numpy as jnp


def sigma(bits: int) -> float:
    """WAGE's resolution of a k-bit signed fixed-point number: 2^(1 - k)."""
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 2:
        raise ValueError(f"quantizer bits must be an integer >= 2, got {bits!r}")
    return 2.0 ** (1 - bits)


def _clipped_ste(fn, lo, hi):
    """``fn`` as a `jax.custom_vjp` whose backward pass is the clipped STE on [lo, hi]."""
    @jax.custom_vjp
    def quantizer(x):
        return fn(x)

    def forward(x):
        return fn(x), x

    def backward(x, g):
        return (jnp.where((x >= lo) & (x <= hi), g, jnp.zeros_like(g)),)

    quantizer.defvjp(forward, backward)
    return quantizer


def _channel_mean(values, mask=None):
    """Mean over every axis but the last (per output channel), of ``values`` where ``mask``."""
    axes = tuple(range(values.ndim - 1))
    if mask is None:
        return jnp.mean(values, axis=axes)
    count = jnp.maximum(jnp.sum(mask, axis=axes), 1)
    return jnp.sum(jnp.where(mask, values, 0.0), axis=axes) / count


def binarize(w: jax.Array, scaled: bool = False) -> jax.Array:
    """sign(clip(w, -1, 1)) with the clipped STE; times alpha = mean|w| per output channel if
    ``scaled``."""
    out = _clipped_ste(lambda v: jnp.where(jnp.clip(v, -1.0, 1.0) >= 0, 1.0, -1.0).astype(v.dtype),
                       -1.0, 1.0)(w)
    return out * _channel_mean(jnp.abs(w)) if scaled else out


def ternary_threshold(w: jax.Array) -> jax.Array:
    """TWN's threshold t = 0.7 mean|w| per output channel."""
    return 0.7 * _channel_mean(jnp.abs(w))


def ternarize(w: jax.Array, scaled: bool = True) -> jax.Array:
    """TWN: +1 where w > t, -1 where w < -t, else 0 (t = `ternary_threshold`), clipped STE;
    times alpha = mean of |w| over |w| > t per output channel if ``scaled``."""
    t = jax.lax.stop_gradient(ternary_threshold(w))
    out = _clipped_ste(
        lambda v: (jnp.where(v > t, 1.0, 0.0) - jnp.where(v < -t, 1.0, 0.0)).astype(v.dtype),
        -1.0, 1.0)(w)
    return out * _channel_mean(jnp.abs(w), jnp.abs(w) > t) if scaled else out


def quantize(x: jax.Array, bits: int) -> jax.Array:
    """WAGE's Q(x, k) = clip(sigma round(x / sigma), -1 + sigma, 1 - sigma), clipped STE."""
    s = sigma(bits)
    return _clipped_ste(lambda v: jnp.clip(s * jnp.round(v / s), -1.0 + s, 1.0 - s),
                        -1.0 + s, 1.0 - s)(x)
