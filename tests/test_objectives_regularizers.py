"""The adversarial term and the generator regularisers: values, reductions and gradient signs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug.objectives import (
    adversarial_loss,
    deformation_magnitude,
    deformation_smoothness,
    gaussian_kl,
    gradient_reversal,
    perturbation_l2,
    reconstruction_loss,
    stn_cycle_consistency,
    total_generator_loss,
)

MEAN = jnp.array([[0.5, -1.0, 0.0], [1.5, 0.2, -0.3]])
LOGVAR = jnp.array([[0.0, -0.5, 0.4], [0.3, -1.2, 0.0]])


def test_gaussian_kl_closed_form():
    expected = -0.5 * np.sum(1 + LOGVAR - MEAN**2 - np.exp(LOGVAR)) / 2
    np.testing.assert_allclose(gaussian_kl(MEAN, LOGVAR), expected, rtol=1e-6)


def test_gaussian_kl_is_zero_at_the_prior():
    assert float(gaussian_kl(jnp.zeros((4, 8)), jnp.zeros((4, 8)))) == 0.0


def test_gaussian_kl_matches_monte_carlo():
    # KL = E_q[log q(z) - log p(z)], summed over latent dims and averaged over the batch.
    n = 200_000
    std = jnp.exp(0.5 * LOGVAR)
    eps = jax.random.normal(jax.random.key(0), (n,) + MEAN.shape)
    z = MEAN + std * eps
    log_q = -0.5 * (eps**2 + LOGVAR + jnp.log(2 * jnp.pi))
    log_p = -0.5 * (z**2 + jnp.log(2 * jnp.pi))
    estimate = jnp.mean(jnp.sum(log_q - log_p, axis=(1, 2))) / MEAN.shape[0]
    np.testing.assert_allclose(gaussian_kl(MEAN, LOGVAR), estimate, atol=2e-2)


def test_gradient_reversal_forward_is_identity_and_backward_is_negated():
    x = jnp.arange(6.0).reshape(2, 3)
    w = jnp.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    np.testing.assert_array_equal(gradient_reversal(x, 0.7), x)
    for s in (1.0, 0.7):
        grad = jax.grad(lambda x, s=s: jnp.sum(w * gradient_reversal(x, s)))(x)
        np.testing.assert_allclose(grad, -s * w, rtol=1e-6)


def test_gradient_reversal_under_jit_and_vmap_with_traced_scale():
    x = jnp.arange(6.0).reshape(2, 3)
    w = jnp.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])

    def objective(x, s):
        return jnp.sum(w * gradient_reversal(x, s))

    grad_x, grad_s = jax.jit(jax.grad(objective, argnums=(0, 1)))(x, 2.5)
    np.testing.assert_allclose(grad_x, -2.5 * w, rtol=1e-6)
    assert float(grad_s) == 0.0  # the weight is not trained through

    scales = jnp.array([1.0, 3.0])
    per_row = jax.vmap(jax.grad(lambda xi, wi, s: jnp.sum(wi * gradient_reversal(xi, s))))
    np.testing.assert_allclose(per_row(x, w, scales), -scales[:, None] * w, rtol=1e-6)


def _generate(generator_scale):
    """A toy 'generator': it scales a fixed input."""
    return generator_scale * jnp.array([1.0, -2.0, 0.5])


def _target_loss(images, w):
    """A toy quadratic target loss with target parameter ``w``."""
    return jnp.mean((w * images - 1.0) ** 2)


def test_adversarial_step_increases_the_target_loss():
    w, a, beta, lr = 0.8, 1.2, 0.5, 0.1

    def target_loss(a):
        return _target_loss(_generate(a), w)

    grad = jax.grad(lambda a: adversarial_loss(target_loss(a), beta))(a)
    assert float(target_loss(a - lr * grad)) > float(target_loss(a))


def test_one_pass_reversal_equals_the_adversarial_gradient():
    w, a, beta = 0.8, 1.2, 0.5

    def reversed_pass(w, a):
        return _target_loss(gradient_reversal(_generate(a), beta), w)

    def plain(w, a):
        return _target_loss(_generate(a), w)

    grad_w, grad_a = jax.grad(reversed_pass, argnums=(0, 1))(w, a)
    np.testing.assert_allclose(grad_w, jax.grad(plain, argnums=0)(w, a), rtol=1e-6)
    expected_a = jax.grad(lambda a: adversarial_loss(plain(w, a), beta))(a)
    np.testing.assert_allclose(grad_a, expected_a, rtol=1e-6)


def test_total_generator_loss_sign_convention():
    total = total_generator_loss(jnp.array(1.0), jnp.array(2.0), jnp.array(3.0), lam=0.5, beta=0.1)
    np.testing.assert_allclose(total, 1.0 + 0.5 * 2.0 - 0.1 * 3.0, rtol=1e-6)


def test_deformation_smoothness_constant_flow_is_zero():
    flow = jnp.full((2, 4, 5, 2), 0.3)
    assert float(deformation_smoothness(flow)) == 0.0


def test_deformation_smoothness_on_a_ramp():
    # u_x = w, u_y = 2h on a 2x3 grid: horizontal diffs (1, 0) over 8 entries -> mean 0.5;
    # vertical diffs (0, 2) over 6 entries -> mean 2; loss = (0.5 + 2) / 2.
    h, w = jnp.meshgrid(jnp.arange(2.0), jnp.arange(3.0), indexing="ij")
    flow = jnp.stack([w, 2 * h], axis=-1)[None]
    np.testing.assert_allclose(deformation_smoothness(flow), 1.25, rtol=1e-6)


def test_deformation_magnitude():
    flow = jnp.zeros((1, 2, 2, 2)).at[0, 0, 0, 0].set(2.0)
    np.testing.assert_allclose(deformation_magnitude(flow), 4.0 / 8, rtol=1e-6)


def test_perturbation_l2_and_reconstruction():
    delta = jnp.array([[[1.0, 2.0]], [[0.0, 3.0]]])
    np.testing.assert_allclose(perturbation_l2(delta), (1 + 4 + 9) / 2, rtol=1e-6)
    x = jnp.ones_like(delta)
    np.testing.assert_allclose(reconstruction_loss(x + delta, x), perturbation_l2(delta), rtol=1e-6)
    np.testing.assert_allclose(
        reconstruction_loss(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.zeros((2, 2))), 15.0
    )


def test_stn_cycle_consistency():
    images = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    assert float(stn_cycle_consistency(images, images, images)) == 0.0
    # One round trip off by 1 everywhere, the other exact: mean squared error 1.
    np.testing.assert_allclose(stn_cycle_consistency(images, images + 1.0, images), 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: gaussian_kl(jnp.zeros((2, 3)), jnp.zeros((2, 4))), "logvar"),
        (lambda: gaussian_kl(jnp.zeros(3), jnp.zeros(3)), "mean"),
        (lambda: reconstruction_loss(jnp.zeros((2, 3)), jnp.zeros((3, 2))), "target"),
        (lambda: perturbation_l2(jnp.zeros(3)), "perturbation"),
        (lambda: deformation_smoothness(jnp.zeros((2, 4, 4, 3))), "flow"),
        (lambda: deformation_smoothness(jnp.zeros((2, 1, 4, 2))), "flow"),
        (lambda: deformation_magnitude(jnp.zeros((4, 4, 2))), "flow"),
        (
            lambda: stn_cycle_consistency(jnp.zeros((2, 4)), jnp.zeros((2, 5)), jnp.zeros((2, 4))),
            "forward_then_inverse",
        ),
        (
            lambda: stn_cycle_consistency(jnp.zeros((2, 4)), jnp.zeros((2, 4)), jnp.zeros((1, 4))),
            "inverse_then_forward",
        ),
    ],
)
def test_bad_shapes_raise_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
