"""A quantized contraction (conv or dense) that keeps int8 feature codes for its backward pass.

The thesis's memory claim (Tang thesis, sec. 5.1 and 5.3.5: about 4x less training memory from
8-bit dataflow) needs the stored activations to be 8-bit. A simulated quantized layer computes
y = Q_A(x) * W in float and, through plain autodiff, keeps the float32 Q_A(x) for the weight
gradient. `int8_residual_contract` keeps instead the integer codes

    c = clip(round(x / (R sigma)), -q, q),   q = 2^(k-1) - 1,  sigma = 2^(1 - k),

as int8 (k <= 8 feature bits on the range [-R, R]), and dequantizes them in the backward pass:
Q_A(x) = c · sigma · R exactly (R and sigma are powers of two), so the weight gradient is the
float layer's. The input gradient is the clipped straight-through estimate with its mask taken
from the code: it passes where |c| < q. WAGE's STE passes on |x| <= R (1 - sigma), i.e. also
where x rounds to the saturated code from inside the range; the two masks differ only for x in
the half step R sigma (q - 1/2) <= |x| <= R sigma q below each clip limit, which a rounded code
cannot tell apart from a saturated input. The quantized kernel is kept as it is (it is small,
and recomputed from the master kernel under `codes_policy`).

The codes carry the name `CODES_NAME`, so that a `jax.checkpoint` with `codes_policy()` saves
only them and recomputes everything else (BN-ReLU, and the float conv outputs from the codes)
in the backward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

CODES_NAME = "quant_codes"


def codes_policy():
    """The `jax.checkpoint` policy that saves only the int8 feature codes (`CODES_NAME`)."""
    return jax.checkpoint_policies.save_only_these_names(CODES_NAME)


def feature_codes(x: jax.Array, bits: int, feature_range: float) -> jax.Array:
    """int8 codes clip(round(x / (R sigma)), -q, q) of WAGE's k-bit quantizer on [-R, R]."""
    step = feature_range * 2.0 ** (1 - bits)
    limit = 2 ** (bits - 1) - 1
    return jnp.clip(jnp.round(x / step), -limit, limit).astype(jnp.int8)


def int8_residual_contract(contract: Callable[[jax.Array, jax.Array], jax.Array], x: jax.Array,
                           kernel: jax.Array, bits: int, feature_range: float) -> jax.Array:
    """contract(Q_A(x), kernel) in the kernel's dtype, through a `jax.custom_vjp` whose residuals
    are the int8 codes of x and the kernel (module docstring); its input gradient is in x's
    dtype. ``bits`` <= 8."""
    if not 2 <= bits <= 8:
        raise ValueError(f"int8 residuals need 2 to 8 feature bits, got {bits!r}")
    step = feature_range * 2.0 ** (1 - bits)
    limit = 2 ** (bits - 1) - 1
    x_dtype, dtype = x.dtype, kernel.dtype

    def dequantize(codes):
        return codes.astype(dtype) * jnp.asarray(step, dtype)

    def forward(x, kernel):
        codes = checkpoint_name(feature_codes(x, bits, feature_range), CODES_NAME)
        return contract(dequantize(codes), kernel), (codes, kernel)

    def backward(residuals, g):
        codes, kernel = residuals
        _, vjp = jax.vjp(contract, dequantize(codes), kernel)
        dx, dkernel = vjp(g)
        dx = jnp.where(jnp.abs(codes) < limit, dx, jnp.zeros_like(dx))
        return dx.astype(x_dtype), dkernel

    @jax.custom_vjp
    def contracted(x, kernel):
        return forward(x, kernel)[0]

    contracted.defvjp(forward, backward)
    return contracted(x, kernel)
