"""A-STN, OnlineAugment's global affine generator, and helpers to apply its transforms.

The network predicts theta [B, 2, 3], an affine map in NORMALISED coordinates: x and y run over
[-1, 1] across the image, pixel edges at +-1 (PyTorch's ``affine_grid`` with align_corners=False),
and theta maps an OUTPUT point (x, y, 1) to the INPUT point it samples, as ``affine_grid`` does.
``normalized_to_pixel`` converts it to the pixel convention of ``jaxaug.ops.affine``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxaug.models.batchnorm import MultiBatchNorm
from jaxaug.models.layers import dense_kernel_init
from jaxaug.ops import affine

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _check_images(where: str, images) -> None:
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(
            f"{where}: images must be a float NHWC batch [B, H, W, C], got shape {shape} and "
            f"dtype {getattr(images, 'dtype', None)}"
        )


def _check_theta(where: str, theta) -> None:
    shape = tuple(jnp.shape(theta))
    if len(shape) < 2 or shape[-2:] != (2, 3):
        raise ValueError(f"{where}: theta must have shape [..., 2, 3], got {shape}")


class _Layer(nn.Module):
    """Dense -> BatchNorm -> ReLU -> Dropout, the reference's unit of the localisation MLP."""

    width: int
    dropout: float

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Dense(self.width, kernel_init=dense_kernel_init, name="dense")(x)
        x = MultiBatchNorm(name="bn")(x, train=train)
        x = nn.relu(x)
        return nn.Dropout(self.dropout, deterministic=not train)(x)


class ASTN(nn.Module):
    """Noise-conditioned MLP that outputs one affine transform per image, theta [B, 2, 3].

    Architecture (the reference's ``STN`` with its CIFAR settings, noise_dim=1, width=8):
    ``input``: Dense(in -> width)-BN-ReLU-Dropout; ``stage_k`` (k = 0, 1):
    y = L2(L1(h)), h <- h + y, where each L is Dense-BN-ReLU-Dropout (the skip is added after the
    second dropout); ``output``: Dense(width -> 6), zero kernel and bias (1, 0, 0, 0, 1, 0), so
    the untrained generator is exactly the identity. Six Dense layers in all. BatchNorm is the
    PyTorch-parity ``MultiBatchNorm`` (one set).

    Input: z ~ N(0, I) of size ``noise_dim`` per image from ``self.make_rng("noise")``. With
    ``conditioning="features"`` the per-channel spatial mean of the images is concatenated to z,
    so the transform may depend on the image (the paper's A-STN is noise-only; this is an
    extension, kept parameter-free on the image side so the generator stays tiny).

    Call as ``model.apply(variables, images, train=..., rngs={"noise": k1, "dropout": k2},
    mutable=["batch_stats"])``; dropout and batch statistics are used when ``train``.
    """

    noise_dim: int = 1
    width: int = 8
    num_stages: int = 2
    dropout: float = 0.5
    conditioning: str = "noise"

    @nn.compact
    def __call__(self, images, *, train: bool):
        _check_images("ASTN", images)
        if self.conditioning not in ("noise", "features"):
            raise ValueError(
                f"ASTN: conditioning must be 'noise' or 'features', got {self.conditioning!r}"
            )
        batch = images.shape[0]
        h = jax.random.normal(self.make_rng("noise"), (batch, self.noise_dim), jnp.float32)
        if self.conditioning == "features":
            h = jnp.concatenate([h, jnp.mean(images.astype(jnp.float32), axis=(1, 2))], axis=-1)
        h = _Layer(self.width, self.dropout, name="input")(h, train=train)
        for k in range(self.num_stages):
            y = _Layer(self.width, self.dropout, name=f"stage{k}_a")(h, train=train)
            y = _Layer(self.width, self.dropout, name=f"stage{k}_b")(y, train=train)
            h = h + y
        theta = nn.Dense(
            6,
            kernel_init=nn.initializers.zeros,
            bias_init=lambda *_: jnp.asarray(_IDENTITY, jnp.float32),
            name="output",
        )(h)
        return theta.reshape(batch, 2, 3)


def _pad(theta):
    """[..., 2, 3] -> [..., 3, 3] with last row (0, 0, 1)."""
    row = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 1.0], theta.dtype), theta.shape[:-2] + (1, 3))
    return jnp.concatenate([theta, row], axis=-2)


def invert(theta):
    """Inverse affine map [..., 2, 3] of theta [..., 2, 3] (top rows of the inverse 3x3 matrix).

    Warping by theta and then by invert(theta) restores the image up to interpolation and what
    left the frame.
    """
    _check_theta("invert", theta)
    theta = jnp.asarray(theta, jnp.result_type(theta, jnp.float32))
    return jnp.linalg.inv(_pad(theta))[..., :2, :]


def normalized_to_pixel(theta, height: int, width: int):
    """The normalised map theta [..., 2, 3] as a pixel matrix [..., 3, 3] for ``jaxaug.ops.affine``.

    With align_corners=False the normalised coordinate of PIL pixel coordinate p is
    n = 2 p / size - 1 (pixel centre j + 0.5 -> (2j + 1) / size - 1), i.e. n = N p with
    N = [[2/W, 0, -1], [0, 2/H, -1], [0, 0, 1]]. Output pixel -> output normalised -> input
    normalised -> input pixel gives M = N^-1 [theta; 0 0 1] N. Hence
    ``affine(img, normalized_to_pixel(theta, H, W), interpolation="bilinear", fill=0)`` equals
    ``grid_sample(img, affine_grid(theta), align_corners=False)`` (zeros padding) except within
    half a pixel of the border, where torch blends with zeros and ops.affine clamps.
    """
    _check_theta("normalized_to_pixel", theta)
    theta = jnp.asarray(theta, jnp.result_type(theta, jnp.float32))
    dtype = theta.dtype
    to_norm = jnp.asarray([[2.0 / width, 0.0, -1.0], [0.0, 2.0 / height, -1.0], [0.0, 0.0, 1.0]],
                          dtype)
    to_pixel = jnp.asarray([[width / 2.0, 0.0, width / 2.0], [0.0, height / 2.0, height / 2.0],
                            [0.0, 0.0, 1.0]], dtype)
    return to_pixel @ _pad(theta) @ to_norm


def apply_astn(images, theta, *, interpolation="bilinear", fill=0.0, labels=None, masks=None,
               mask_fill=0):
    """OnlineAugment's doubled batch: concat([T(x), T^-1(x)]) for theta [B, 2, 3] from ``ASTN``.

    Each half is one resampling of the original images (T^-1 is ``invert(theta)``, not a warp of
    T(x)). fill=0 with bilinear sampling is the reference's ``grid_sample`` default. Returns
    (images [2B, H, W, C], labels [2B, ...] or None, masks [2B, H, W, K] or None): labels are
    repeated as concat([labels, labels]); masks (e.g. segmentation maps [B, H, W, 1], int or float)
    are warped on the same sampling grids with nearest sampling, so they keep their value set,
    and out-of-frame points get ``mask_fill``.
    """
    _check_images("apply_astn", images)
    batch, height, width, _ = images.shape
    if tuple(jnp.shape(theta)) != (batch, 2, 3):
        raise ValueError(f"apply_astn: theta must have shape {(batch, 2, 3)}, got {jnp.shape(theta)}")
    both = jnp.concatenate([theta, invert(theta)], axis=0)
    matrices = normalized_to_pixel(both, height, width)

    def warp(x, kind, value):
        def one(img, m):
            return affine(img, m, interpolation=kind, fill=value)

        return jax.vmap(one)(jnp.concatenate([x, x], axis=0), matrices)

    out = warp(images, interpolation, fill)
    if labels is not None:
        if jnp.shape(labels)[:1] != (batch,):
            raise ValueError(f"apply_astn: labels must have leading size {batch}, got "
                             f"shape {jnp.shape(labels)}")
        labels = jnp.concatenate([labels, labels], axis=0)
    if masks is not None:
        if jnp.ndim(masks) != 4 or jnp.shape(masks)[:3] != (batch, height, width):
            raise ValueError(f"apply_astn: masks must have shape [{batch}, {height}, {width}, K], "
                             f"got {jnp.shape(masks)}")
        masks = jnp.asarray(masks)
        # ops.affine wants float images; float32 holds label ids exactly up to 2**24.
        warped = warp(masks.astype(jnp.float32), "nearest", mask_fill)
        masks = warped.astype(masks.dtype)
    return out, labels, masks
