"""The meta-gradient: exact against central finite differences, first-order against the exact one
minus its missing term written out, DARTS against the exact one. Float64 on a tiny model."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug.objectives import meta

LR = 0.3


def _batch(key, n=6):
    kx, ky = jax.random.split(key)
    return {"x": jax.random.normal(kx, (n, 3)), "y": jax.random.randint(ky, (n,), 0, 2)}


def _ce(theta, x, y):
    logits = x @ theta["w"] + theta["b"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def inner_loss(theta, phi, batch):
    """The target's loss on a 'generated' batch: phi scales and shifts the inputs nonlinearly."""
    x = batch["x"] * (1.0 + jnp.tanh(phi["a"])) + phi["c"]
    loss = _ce(theta, x, batch["y"])
    return loss, {"loss": loss}


def outer_loss(theta, batch):
    loss = _ce(theta, batch["x"], batch["y"])
    return loss, {"loss": loss}


def _problem(num_steps):
    keys = jax.random.split(jax.random.key(0), num_steps + 4)
    theta = {"w": jax.random.normal(keys[0], (3, 2)), "b": jax.random.normal(keys[1], (2,))}
    phi = {"a": 0.3 * jax.random.normal(keys[2], (3,)), "c": 0.2 * jax.random.normal(keys[3], (3,))}
    train = jax.tree.map(lambda *b: jnp.stack(b), *[_batch(k) for k in keys[4:]])
    val = _batch(jax.random.key(99), 8)
    return phi, theta, train, val


def _loss(mode, num_steps, **kw):
    phi, theta, train, val = _problem(num_steps)

    def f(p):
        return meta.meta_loss(p, theta, train, val, inner_loss=inner_loss, outer_loss=outer_loss,
                              lr=LR, mode=mode, **kw)
    return f, phi


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])


@pytest.mark.parametrize("num_steps", [1, 2, 3])
def test_exact_meta_gradient_matches_central_differences(num_steps):
    with jax.enable_x64(True):
        f, phi = _loss("exact", num_steps)
        f = jax.jit(f)
        grad = _flat(jax.jit(jax.grad(lambda p: f(p)[0]))(phi))
        flat, unravel = jax.flatten_util.ravel_pytree(phi)
        eps = 1e-5
        numeric = np.array([
            (f(unravel(flat.at[i].add(eps)))[0] - f(unravel(flat.at[i].add(-eps)))[0]) / (2 * eps)
            for i in range(flat.size)])
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
        assert np.abs(grad).max() > 1e-3  # phi really matters


@pytest.mark.parametrize("mode", ["exact", "first_order"])
def test_scan_and_unrolled_inner_steps_agree(mode):
    """The lax.scan and the trace-time unrolled K = 3 inner loops compute the same value and
    gradient, inner losses included."""
    with jax.enable_x64(True):
        results = []
        for scan in (False, True):
            f, phi = _loss(mode, 3, scan=scan)
            (value, aux), grad = jax.jit(jax.value_and_grad(f, has_aux=True))(phi)
            results.append((value, aux["inner_losses"], _flat(grad)))
        for unrolled, scanned in zip(*results):
            np.testing.assert_allclose(unrolled, scanned, rtol=1e-12)


def test_first_order_equals_exact_for_one_step():
    with jax.enable_x64(True):
        exact, phi = _loss("exact", 1)
        first, _ = _loss("first_order", 1)
        np.testing.assert_allclose(_flat(jax.jit(jax.grad(lambda p: first(p)[0]))(phi)),
                                   _flat(jax.jit(jax.grad(lambda p: exact(p)[0]))(phi)),
                                   rtol=1e-12)


def test_first_order_misses_exactly_the_hessian_term_for_two_steps():
    """exact - first_order = v^T lr^2 H_1 B_0, with H_1 = d g / d theta at theta_1,
    B_0 = d g / d phi at theta_0, v = grad L_val(theta_2)."""
    with jax.enable_x64(True):
        phi, theta, train, val = _problem(2)
        exact, _ = _loss("exact", 2)
        first, _ = _loss("first_order", 2)

        @jax.jit
        def difference_and_missing(phi, theta):
            def flat_grad(loss):
                return jax.flatten_util.ravel_pytree(jax.grad(lambda p: loss(p)[0])(phi))[0]

            difference = flat_grad(exact) - flat_grad(first)
            theta_flat, unravel_theta = jax.flatten_util.ravel_pytree(theta)
            phi_flat, unravel_phi = jax.flatten_util.ravel_pytree(phi)
            b0, b1 = (jax.tree.map(lambda x, k=k: x[k], train) for k in range(2))

            def g(t, p, batch):  # flat grad_theta L_tr
                return jax.flatten_util.ravel_pytree(jax.grad(
                    lambda tt: inner_loss(tt, unravel_phi(p), batch)[0])(unravel_theta(t)))[0]

            theta_1 = theta_flat - LR * g(theta_flat, phi_flat, b0)
            theta_2 = theta_1 - LR * g(theta_1, phi_flat, b1)
            v = jax.flatten_util.ravel_pytree(
                jax.grad(lambda t: outer_loss(unravel_theta(t), val)[0])(theta_2))[0]
            hessian_1 = jax.jacfwd(g, argnums=0)(theta_1, phi_flat, b1)
            mixed_0 = jax.jacfwd(g, argnums=1)(theta_flat, phi_flat, b0)
            return difference, v @ (LR**2 * hessian_1 @ mixed_0)

        difference, missing = difference_and_missing(phi, theta)
        np.testing.assert_allclose(difference, np.asarray(missing), rtol=1e-9, atol=1e-12)
        assert np.abs(missing).max() > 1e-4


def test_darts_approximates_the_exact_gradient():
    with jax.enable_x64(True):
        exact, phi = _loss("exact", 1)
        darts, _ = _loss("darts", 1, darts_eps=1e-4)
        want = _flat(jax.jit(jax.grad(lambda p: exact(p)[0]))(phi))
        got = _flat(jax.jit(jax.grad(lambda p: darts(p)[0]))(phi))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("mode", meta.MODES)
def test_value_is_the_validation_loss_after_the_inner_steps(mode):
    num_steps = 1 if mode == "darts" else 2
    f, phi = _loss(mode, num_steps)
    _, theta, train, val = _problem(num_steps)

    @jax.jit
    def inner_steps(theta_k):
        for k in range(num_steps):
            batch = jax.tree.map(lambda x, k=k: x[k], train)
            grads = jax.grad(lambda t, batch=batch: inner_loss(t, phi, batch)[0])(theta_k)
            theta_k = jax.tree.map(lambda p, g: p - LR * g, theta_k, grads)
        return theta_k, outer_loss(theta_k, val)[0]

    theta_k, val_loss = inner_steps(theta)
    loss, aux = jax.jit(f)(phi)
    np.testing.assert_allclose(float(loss), float(val_loss), rtol=1e-5)
    assert aux["inner_losses"].shape == (num_steps,)
    np.testing.assert_allclose(_flat(aux["theta"]), _flat(theta_k), rtol=1e-5, atol=1e-6)


def test_theta_gets_no_meta_gradient():
    phi, theta, train, val = _problem(1)
    grad = jax.jit(jax.grad(lambda t: meta.meta_loss(
        phi, t, train, val, inner_loss=inner_loss, outer_loss=outer_loss, lr=LR)[0]))(theta)
    assert np.all(_flat(grad) == 0)


def test_bad_options_are_named():
    phi, theta, train, val = _problem(2)
    kwargs = {"inner_loss": inner_loss, "outer_loss": outer_loss, "lr": LR}
    with pytest.raises(ValueError, match="second_order"):
        meta.meta_loss(phi, theta, train, val, mode="second_order", **kwargs)
    with pytest.raises(ValueError, match="darts.*K = 2"):
        meta.meta_loss(phi, theta, train, val, mode="darts", **kwargs)
    ragged = {"x": train["x"], "y": train["y"][:1]}
    with pytest.raises(ValueError, match="leading K axis"):
        meta.meta_loss(phi, theta, ragged, val, **kwargs)
