"""Low-bit quantizers as pure functions with custom gradients (quantized CU-Net, WAGE, TWN).

Forward quantizers are `jax.custom_vjp` functions with a clipped straight-through estimator
(STE): the backward pass treats the rounding as the identity inside the clip range and as a
constant outside it,

    d q(x) / dx := 1{lo <= x <= hi}.

* `binarize(w)`: sign(clip(w, -1, 1)) in {-1, +1} (0 maps to +1); STE range [-1, 1] (Tang
  thesis, sec. 5.3.5, eq. 5.5).
* `ternarize(w)`: TWN's {-1, 0, +1} with threshold t = 0.7 mean|w| (Tang thesis, sec. 5.3.5,
  eq. 5.6); STE range [-1, 1].
* ``scaled=True`` multiplies by alpha per output channel (the last axis of a Flax kernel):
  alpha = mean|w| for binary weights (XNOR-Net), and the mean of |w| over |w| > t for ternary
  ones (TWN). alpha is an ordinary function of w, so its own gradient flows too.
* `quantize(x, bits)`: WAGE's k-bit dataflow quantizer with sigma(k) = 2^(1 - k),
  Q(x, k) = clip(sigma round(x / sigma), -1 + sigma, 1 - sigma); STE range [-1 + sigma, 1 - sigma].

`quantize_grad(x, bits)` is the identity in the forward pass and quantizes the cotangent in the
backward pass with WAGE's scaling: with the power-of-two shift S(g) = 2^round(log2 max|g|),

    g_q = S(g) · clip(sigma R(g / (S(g) sigma)), -1 + sigma, 1 - sigma),

where R is round-to-nearest, or stochastic rounding floor(v + u), u ~ U[0, 1) (unbiased:
E R(v) = v), when a uniform ``noise`` array is given. WAGE drops the factor S(g) and folds a
fixed power-of-two learning rate into its update instead; keeping S(g), a shared exponent per
tensor, leaves the gradient's magnitude intact so that any optax optimizer can follow it. Placed on
a layer's output it quantizes the error flowing back (WAGE's E); placed on a weight it quantizes
that weight's gradient (WAGE's G).
All work under jit, vmap and grad.
"""

import functools

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
        # Keep the 1-byte pass mask, not the float input, for the backward pass.
        return fn(x), (x >= lo) & (x <= hi)

    def backward(passes, g):
        return (jnp.where(passes, g, jnp.zeros_like(g)),)

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
    return out * binary_scale(w) if scaled else out


def binary_scale(w: jax.Array) -> jax.Array:
    """XNOR-Net's alpha = mean|w| per output channel."""
    return _channel_mean(jnp.abs(w))


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
    return out * ternary_scale(w) if scaled else out


def ternary_scale(w: jax.Array) -> jax.Array:
    """TWN's alpha: the mean of |w| over |w| > t per output channel (t held constant)."""
    t = jax.lax.stop_gradient(ternary_threshold(w))
    return _channel_mean(jnp.abs(w), jnp.abs(w) > t)


def quantize(x: jax.Array, bits: int) -> jax.Array:
    """WAGE's Q(x, k) = clip(sigma round(x / sigma), -1 + sigma, 1 - sigma), clipped STE."""
    s = sigma(bits)
    return _clipped_ste(lambda v: jnp.clip(s * jnp.round(v / s), -1.0 + s, 1.0 - s),
                        -1.0 + s, 1.0 - s)(x)


def power_of_two_shift(x: jax.Array) -> jax.Array:
    """WAGE's Shift(max|x|) = 2^round(log2 max|x|) (1 where x is all zero)."""
    peak = jnp.max(jnp.abs(x))
    return jnp.where(peak > 0, 2.0 ** jnp.round(jnp.log2(jnp.where(peak > 0, peak, 1.0))), 1.0)


def quantize_gradient_value(g: jax.Array, bits: int, noise: jax.Array | None = None) -> jax.Array:
    """The backward map of `quantize_grad`, applied to a gradient ``g`` directly."""
    s = sigma(bits)
    scale = power_of_two_shift(g)
    v = g / (scale * s)
    rounded = jnp.round(v) if noise is None else jnp.floor(v + noise)
    return scale * jnp.clip(s * rounded, -1.0 + s, 1.0 - s)


def _cotangent_key(g: jax.Array) -> jax.Array:
    """A PRNG key that is a pure function of a cotangent's bits (a wrapping uint32 sum)."""
    bits = jax.lax.bitcast_convert_type(g.astype(jnp.float32), jnp.uint32)
    return jax.random.fold_in(jax.random.key(0), jnp.sum(bits, dtype=jnp.uint32))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _gradient_quantizer(x, key_data, bits, rounding):
    del key_data, bits, rounding
    return x


def _gradient_quantizer_fwd(x, key_data, bits, rounding):
    del bits, rounding
    # Only the key is kept: the uniforms are drawn in the backward pass, not stored.
    return x, key_data


def _gradient_quantizer_bwd(bits, rounding, key_data, g):
    noise = None
    if rounding == "stochastic":
        key = jax.random.wrap_key_data(key_data) if key_data.ndim else _cotangent_key(g)
        noise = jax.random.uniform(key, g.shape, jnp.float32)
    return quantize_gradient_value(g.astype(jnp.float32), bits, noise).astype(g.dtype), None


_gradient_quantizer.defvjp(_gradient_quantizer_fwd, _gradient_quantizer_bwd)

ROUNDINGS = ("nearest", "stochastic")


def quantize_grad(x: jax.Array, bits: int, key: jax.Array | None = None,
                  rounding: str | None = None) -> jax.Array:
    """Identity forward; backward quantizes the cotangent to ``bits`` with WAGE's shift (module
    docstring). ``rounding`` is "nearest" or "stochastic" (default: stochastic iff a ``key`` is
    given). Stochastic rounding draws fresh uniforms per element from ``key`` or, without one,
    from a key that is a pure function of the cotangent's bits, so that a model applied without a
    ``'quant'`` rng still rounds without bias."""
    sigma(bits)
    rounding = rounding or ("nearest" if key is None else "stochastic")
    if rounding not in ROUNDINGS:
        raise ValueError(f"quantize_grad: rounding must be one of {ROUNDINGS}, got {rounding!r}")
    key_data = (jnp.zeros((), jnp.uint32) if key is None or rounding == "nearest"
                else jax.random.key_data(key))
    return _gradient_quantizer(x, key_data, bits, rounding)
