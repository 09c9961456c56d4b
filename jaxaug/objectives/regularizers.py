"""Regularisers that keep OnlineAugment's generators close to the data.

Each is a plain function of arrays returning a scalar. Reductions follow the reference
implementation of OnlineAugment (Tang et al., ECCV 2020), so its loss weights carry over;
the reduction is stated in each docstring. Arrays are batch-first.
"""

import jax
import jax.numpy as jnp

from jaxaug.objectives.adversarial import adversarial_loss


def _check_batched(name: str, x: jax.Array) -> None:
    if x.ndim < 2:
        raise ValueError(f"{name} must be batched with shape [B, ...], got shape {x.shape}")


def _check_same_shape(name: str, x: jax.Array, reference_name: str, reference: jax.Array) -> None:
    if x.shape != reference.shape:
        raise ValueError(
            f"{name} must have the shape of {reference_name} {reference.shape}, got {x.shape}"
        )


def stn_cycle_consistency(
    images: jax.Array, forward_then_inverse: jax.Array, inverse_then_forward: jax.Array
) -> jax.Array:
    """Double cycle consistency of a spatial transformer T with inverse T^-1.

    loss = mean((T^-1(T(x)) - x)^2) + mean((T(T^-1(x)) - x)^2),

    each mean over every element (batch, pixels and channels), as in the reference.

    Args:
      images: the originals x, [B, ...].
      forward_then_inverse: T^-1(T(x)), same shape.
      inverse_then_forward: T(T^-1(x)), same shape.
    """
    _check_batched("images", images)
    _check_same_shape("forward_then_inverse", forward_then_inverse, "images", images)
    _check_same_shape("inverse_then_forward", inverse_then_forward, "images", images)
    return jnp.mean((forward_then_inverse - images) ** 2) + jnp.mean(
        (inverse_then_forward - images) ** 2
    )


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, diag(exp(logvar))) || N(0, I)) in closed form, per example, averaged.

    loss = (1 / B) * sum_{i,d} -0.5 * (1 + logvar_id - mean_id^2 - exp(logvar_id)),

    i.e. summed over the latent dimensions and averaged over the batch, as in the reference.
    """
    _check_batched("mean", mean)
    _check_same_shape("logvar", logvar, "mean", mean)
    return -0.5 * jnp.sum(1.0 + logvar - mean**2 - jnp.exp(logvar)) / mean.shape[0]


def reconstruction_loss(reconstruction: jax.Array, target: jax.Array) -> jax.Array:
    """Squared-error reconstruction term of the perturbation VAE.

    loss = (1 / B) * sum_{i,...} (reconstruction - target)^2,

    summed over each example's pixels and channels and averaged over the batch, as in the
    reference (a Gaussian decoder, not BCE).
    """
    _check_batched("reconstruction", reconstruction)
    _check_same_shape("target", target, "reconstruction", reconstruction)
    return jnp.sum((reconstruction - target) ** 2) / reconstruction.shape[0]


def perturbation_l2(perturbation: jax.Array) -> jax.Array:
    """Squared L2 norm of an additive perturbation, per example, averaged over the batch.

    loss = (1 / B) * sum_{i,...} delta^2.

    The reference's perturbation VAE outputs x + delta and reconstructs x, so its
    reconstruction term is exactly this: ``reconstruction_loss(x + delta, x)``.
    """
    _check_batched("perturbation", perturbation)
    return jnp.sum(perturbation**2) / perturbation.shape[0]


def _check_flow(flow: jax.Array) -> None:
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must have shape [B, H, W, 2], got {flow.shape}")


def deformation_magnitude(flow: jax.Array) -> jax.Array:
    """Mean squared displacement of a deformation field ``flow`` [B, H, W, 2].

    loss = mean(flow^2), over every element; the reference's deformation VAE uses this as its
    reconstruction term (deformed images should stay near the identity warp).
    """
    _check_flow(flow)
    return jnp.mean(flow**2)


def deformation_smoothness(flow: jax.Array) -> jax.Array:
    """Smoothness of a displacement field ``flow`` [B, H, W, 2] over the 4-neighbourhood.

    loss = 0.5 * (mean_{b,h,w,c} (u[h, w+1] - u[h, w])^2 + mean_{b,h,w,c} (u[h+1, w] - u[h, w])^2),

    each mean over its own B*H*(W-1)*2 or B*(H-1)*W*2 differences, as in the reference.
    """
    _check_flow(flow)
    if flow.shape[1] < 2 or flow.shape[2] < 2:
        raise ValueError(f"flow needs H >= 2 and W >= 2 to have neighbours, got {flow.shape}")
    horizontal = flow[:, :, 1:, :] - flow[:, :, :-1, :]
    vertical = flow[:, 1:, :, :] - flow[:, :-1, :, :]
    return 0.5 * (jnp.mean(horizontal**2) + jnp.mean(vertical**2))


def total_generator_loss(
    meta: jax.Array,
    regularizer: jax.Array,
    target_loss: jax.Array,
    *,
    lam: float | jax.Array,
    beta: float | jax.Array,
) -> jax.Array:
    """The generator's full objective, to be minimised w.r.t. its parameters.

    loss = meta + lam * regularizer - beta * target_loss,

    with ``target_loss`` the target's (un-negated) loss L on the generated samples: the last
    term is ``adversarial_loss(L, beta)``. Do not pass an already negated L, and do not use
    this objective when the generated images go through ``gradient_reversal`` (that already
    applies the -beta).
    """
    return meta + lam * regularizer + adversarial_loss(target_loss, beta)


def random_directions(key: jax.Array, channels: int, count: int = 128) -> jax.Array:
    """``count`` random unit vectors of R^channels, as columns [channels, count] (Gaussian draws
    normalised): the projections of `color_sliced_wasserstein`."""
    directions = jax.random.normal(key, (channels, count), jnp.float32)
    return directions / (jnp.linalg.norm(directions, axis=0, keepdims=True) + 1e-12)


def color_sliced_wasserstein(images: jax.Array, augmented: jax.Array, directions: jax.Array, *,
                             over: str = "batch") -> jax.Array:
    """TeachAugment's colour regularizer (Suzuki, CVPR 2022, its improvement techniques): a
    sliced Wasserstein distance between the colours of ``images`` and ``augmented`` [B, H, W, C]
    along the unit ``directions`` [C, P]. With a_bnp = <x_bn, d_p>, b_bnp = <x'_bn, d_p> (pixel
    n of image b) and sort_s sorting along axis s,

        loss = mean_{b, n, p} (sort_s(a)_bnp - sort_s(b)_bnp)^2.

    ``over="batch"`` sorts across the batch, each pixel position and direction on its own: what
    the reference code does (``slicd_Wasserstein_distance`` sorts dim 0 of [B, HW, P]), so its
    weight 10 carries over; ``over="pixels"`` sorts each image's pixels: the distance between
    the colour distributions of each image and its augmentation."""
    if over not in ("batch", "pixels"):
        raise ValueError(f"color_sliced_wasserstein: over must be 'batch' or 'pixels', "
                         f"got {over!r}")
    _check_same_shape("augmented", augmented, "images", images)
    if images.ndim != 4 or directions.shape[0] != images.shape[-1]:
        raise ValueError(f"color_sliced_wasserstein: images [B, H, W, C] and directions [C, P] "
                         f"must agree on C, got {images.shape} and {directions.shape}")
    flat = lambda x: x.reshape(x.shape[0], -1, x.shape[-1]) @ directions  # noqa: E731
    axis = 0 if over == "batch" else 1
    return jnp.mean((jnp.sort(flat(images), axis=axis) - jnp.sort(flat(augmented), axis=axis)) ** 2)
