"""Loop-free exact sampling of the symmetric Beta(alpha, alpha) distribution."""

import jax
import jax.numpy as jnp


def beta_from_uniforms(u_radius: jax.Array, u_angle: jax.Array,
                       alpha: float | jax.Array) -> jax.Array:
    """lam ~ Beta(alpha, alpha) from two independent U[0, 1) arrays, exactly in distribution.

    A symmetric Beta is a rescaled Student t: T ~ t_nu with nu = 2 alpha gives
    lam = 1/2 + T / (2 sqrt(nu + T^2)). Bailey's polar method (Math. Comp. 62, 1994) makes
    T = cos(theta) sqrt(nu (W^(-2/nu) - 1)) from W ~ U(0, 1] and theta ~ U[0, 2 pi), so with
    E = W^(-1/alpha) - 1 and c = cos(theta)

        lam = 1/2 (1 + c / b),   b = sqrt(c^2 + 1/E),

    and the side nearer 0 is computed as 1/2 (1/E) / (b (b + |c|)), free of cancellation.
    """
    w = 1.0 - u_radius  # in (0, 1]: log w is finite
    c = jnp.cos(2 * jnp.pi * u_angle)
    inv_e = 1.0 / jnp.expm1(-jnp.log(w) / alpha)  # 1/E; inf at w = 1 gives lam = 1/2
    b = jnp.sqrt(c * c + inv_e)
    near_zero = 0.5 * inv_e / jnp.maximum(b * (b + jnp.abs(c)), jnp.finfo(jnp.float32).tiny)
    return jnp.where(c < 0, near_zero, 1.0 - near_zero)


def symmetric_beta(key: jax.Array, alpha: float | jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """lam ~ Beta(alpha, alpha) in float32 by `beta_from_uniforms`, without a rejection loop:
    `jax.random.beta` draws two Gamma variates in while loops, which XLA takes seconds to
    compile on CPU; this is one uniform draw and a few elementwise ops."""
    u = jax.random.uniform(key, (2, *shape))
    return beta_from_uniforms(u[0], u[1], alpha)
