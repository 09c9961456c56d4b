"""The MAML-style meta (generalization) loss of OnlineAugment, differentiable w.r.t. the generator.

The target's parameters theta take K plain gradient steps on generated training batches, with the
generator's parameters phi inside the training loss,

    theta_0 = theta,    theta_{k+1} = theta_k - lr * grad_theta L_tr(theta_k, phi; batch_k),

and the meta loss is the target's loss on a validation batch after those steps,

    L_meta(phi) = L_val(theta_K; val_batch).

Its gradient w.r.t. phi runs back through every inner update. With g_k = grad_theta L_tr(theta_k,
phi), H_k = d g_k / d theta and B_k = d g_k / d phi, and v = grad L_val(theta_K):

    d theta_{k+1} / d phi = (I - lr H_k) d theta_k / d phi - lr B_k,
    d L_meta / d phi      = v^T d theta_K / d phi.

`meta_loss` returns L_meta as ``(loss, aux)``; take ``jax.grad`` of it w.r.t. phi. ``mode`` sets
which gradient that yields (the value is L_val(theta_K) in every mode):

* ``"exact"``: the formula above, second order, by differentiating through the update
  (``jax.grad`` through ``jax.grad``, the K steps unrolled, or a ``lax.scan`` with
  ``scan=True``). Costs about two extra
  forward-backward passes of the target per inner step.
* ``"first_order"``: drops the theta-Hessian terms, i.e. takes d theta_{k+1} / d phi =
  d theta_k / d phi - lr B_k, so d L_meta / d phi = -lr v^T sum_k B_k. For K = 1 this *is* the
  exact gradient (phi enters theta_1 only through B_0); for K >= 2 it omits the products with
  (I - lr H_k). Implemented by evaluating each inner gradient at stop_gradient(theta_k).
* ``"darts"`` (K = 1 only): DARTS' finite-difference estimate of the mixed second derivative,
  d L_meta / d phi ~= -lr [grad_phi L_tr(theta + e v, phi) - grad_phi L_tr(theta - e v, phi)]
  / (2 e), with e = darts_eps / ||v||: two extra gradient evaluations instead of a
  second-order pass. It is the exact gradient up to O(e^2).

``theta`` is held constant: the meta loss is an objective of the generator; the target is
updated by its own loss.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

MODES = ("exact", "first_order", "darts")


def _sgd_step(inner_loss, lr, phi, stop_theta):
    """One inner update theta <- theta - lr * grad_theta L_tr(theta, phi; batch)."""

    def step(theta, batch):
        at = jax.lax.stop_gradient(theta) if stop_theta else theta
        (loss, aux), grads = jax.value_and_grad(inner_loss, has_aux=True)(at, phi, batch)
        new_theta = jax.tree.map(lambda p, g: p - lr * g, theta, grads)
        return new_theta, (loss, aux)

    return step


def unroll(theta: Any, phi: Any, train_batches: Any, *, inner_loss: Callable, lr: float,
           stop_theta: bool = False, scan: bool = False) -> tuple[Any, tuple[jax.Array, Any]]:
    """theta_K after K inner steps, one per leading-axis slice of ``train_batches`` (a pytree of
    arrays with a leading K axis), and the stacked ``(loss, aux)`` of ``inner_loss`` at each
    step.

    ``scan=True`` runs the steps as a ``lax.scan`` (one traced step: compile time and program size
    independent of K); the default unrolls them at trace time, because on CPU a scan over these
    steps made the exact meta step of OnlineAugment about 3x slower (WRN-16-1, batch 32: 5.15 s
    against 1.63 s per iteration; XLA optimizes convolutions inside a loop body less well)."""
    step = _sgd_step(inner_loss, lr, phi, stop_theta)
    if scan:
        return jax.lax.scan(step, theta, train_batches)
    num_steps = jax.tree.leaves(train_batches)[0].shape[0]
    outputs = []
    for k in range(num_steps):
        theta, output = step(theta, jax.tree.map(lambda x, k=k: x[k], train_batches))
        outputs.append(output)
    return theta, jax.tree.map(lambda *xs: jnp.stack(xs), *outputs)


def _darts_surrogate(phi, theta, batch, v, *, inner_loss, lr, darts_eps):
    """A function of phi whose gradient is the DARTS estimate -lr * (d/dphi) <grad_theta L_tr, v>."""
    v = jax.lax.stop_gradient(v)
    scale = darts_eps / (optax.global_norm(v) + 1e-12)
    theta = jax.lax.stop_gradient(theta)
    plus = jax.tree.map(lambda p, d: p + scale * d, theta, v)
    minus = jax.tree.map(lambda p, d: p - scale * d, theta, v)
    loss_plus = inner_loss(plus, phi, batch)[0]
    loss_minus = inner_loss(minus, phi, batch)[0]
    return -lr * (loss_plus - loss_minus) / (2.0 * scale)


def meta_loss(
    phi: Any,
    theta: Any,
    train_batches: Any,
    val_batch: Any,
    *,
    inner_loss: Callable,
    outer_loss: Callable,
    lr: float,
    mode: str = "exact",
    darts_eps: float = 0.01,
    scan: bool = False,
) -> tuple[jax.Array, dict[str, Any]]:
    """L_val(theta_K) after K inner steps on ``train_batches`` (see the module docstring).

    Args:
      phi: generator parameters (the argument to differentiate).
      theta: target parameters before the inner steps (held constant).
      train_batches: pytree of arrays with a leading axis of K >= 1 inner batches.
      val_batch: the validation batch of the outer loss.
      inner_loss: ``(theta, phi, batch) -> (loss, aux)``, the target's loss on the generated batch.
      outer_loss: ``(theta, batch) -> (loss, aux)``, the target's loss on clean data.
      lr: the inner learning rate (the target's current learning rate, in the papers).
      mode: ``"exact"``, ``"first_order"`` or ``"darts"``.
      darts_eps: DARTS' step e = darts_eps / ||v||.
      scan: run the K inner steps as a ``lax.scan`` instead of unrolled (see `unroll`).

    Returns:
      ``(loss, aux)``: aux holds ``inner_losses`` [K] (the inner objective at each step),
      ``inner`` (its stacked aux), ``val`` (the outer aux) and ``theta`` (theta_K, without
      gradient).
    """
    if mode not in MODES:
        raise ValueError(f"meta_loss: unknown mode {mode!r}; valid modes are {', '.join(MODES)}")
    steps = {jnp.shape(x)[0] for x in jax.tree.leaves(train_batches)}
    if len(steps) != 1:
        raise ValueError(f"meta_loss: train_batches need one leading K axis, got sizes {steps}")
    num_steps = steps.pop()
    if mode == "darts" and num_steps != 1:
        raise ValueError(f"meta_loss: mode 'darts' takes K = 1 inner step, got K = {num_steps}")
    theta = jax.lax.stop_gradient(theta)
    if mode == "darts":
        phi_free = jax.lax.stop_gradient(phi)
        theta_k, (inner_losses, inner_aux) = unroll(theta, phi_free, train_batches,
                                                    inner_loss=inner_loss, lr=lr, scan=scan)
        (val, val_aux), v = jax.value_and_grad(outer_loss, has_aux=True)(theta_k, val_batch)
        first = jax.tree.map(lambda x: x[0], train_batches)
        surrogate = _darts_surrogate(phi, theta, first, v, inner_loss=inner_loss, lr=lr,
                                     darts_eps=darts_eps)
        loss = jax.lax.stop_gradient(val - surrogate) + surrogate
    else:
        theta_k, (inner_losses, inner_aux) = unroll(theta, phi, train_batches,
                                                    inner_loss=inner_loss, lr=lr,
                                                    stop_theta=mode == "first_order",
                                                    scan=scan)
        loss, val_aux = outer_loss(theta_k, val_batch)
    aux = {"inner_losses": inner_losses, "inner": inner_aux, "val": val_aux,
           "theta": jax.lax.stop_gradient(theta_k)}
    return loss, aux
