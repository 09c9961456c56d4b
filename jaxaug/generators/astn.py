"""A-STN, OnlineAugment's global affine generator, and helpers to apply its transforms.

The network predicts theta [B, 2, 3], an affine map in NORMALISED coordinates: x and y run over
[-1, 1] across the image, and theta maps an OUTPUT point (x, y, 1) to the INPUT point it samples,
as PyTorch's ``affine_grid`` does. The reference (PyTorch 1.2) calls ``affine_grid`` and
``grid_sample`` with their defaults of that version: bilinear, padding_mode="zeros" and the
pre-1.3 align_corners=True convention (+-1 are the centres of the corner pixels), which is the
default here too (align_corners=False puts +-1 on the outer pixel edges, PyTorch's default since
1.3). ``normalized_to_pixel`` converts theta to the pixel convention of ``jaxaug.ops.affine``; the
images are warped with ``padding="fill"``, fill 0: grid_sample's zeros padding, continuous in
theta, so the cycle regulariser's gradient is the derivative of the loss that is descended.
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


def normalized_to_pixel(theta, height: int, width: int, *, align_corners: bool = True):
    """The normalised map theta [..., 2, 3] as a pixel matrix [..., 3, 3] for ``jaxaug.ops.affine``.

    The normalised coordinate of PIL pixel coordinate p is n = N p (pixel centre j + 0.5 ->
    (2j + 1) / size - 1 with align_corners=False; j + 0.5 -> 2j / (size - 1) - 1, corner centres
    at +-1, with align_corners=True), N = [[sx, 0, ox], [0, sy, oy], [0, 0, 1]]. Output pixel ->
    output normalised -> input normalised -> input pixel gives M = N^-1 [theta; 0 0 1] N. Hence
    ``affine(img, normalized_to_pixel(theta, H, W, align_corners=a), fill=0, padding="fill")``
    equals ``grid_sample(img, affine_grid(theta, align_corners=a), align_corners=a)`` (bilinear,
    zeros padding).
    """
    _check_theta("normalized_to_pixel", theta)
    theta = jnp.asarray(theta, jnp.result_type(theta, jnp.float32))
    dtype = theta.dtype
    if align_corners:
        if height < 2 or width < 2:
            raise ValueError(f"normalized_to_pixel: align_corners=True needs height and width of "
                             f"at least 2, got {height} x {width}")
        # n = 2 (p - 1/2) / (size - 1) - 1
        sx, sy = 2.0 / (width - 1), 2.0 / (height - 1)
        ox, oy = -1.0 - sx / 2.0, -1.0 - sy / 2.0
    else:
        # n = 2 p / size - 1
        sx, sy, ox, oy = 2.0 / width, 2.0 / height, -1.0, -1.0
    to_norm = jnp.asarray([[sx, 0.0, ox], [0.0, sy, oy], [0.0, 0.0, 1.0]], dtype)
    to_pixel = jnp.asarray([[1.0 / sx, 0.0, -ox / sx], [0.0, 1.0 / sy, -oy / sy], [0.0, 0.0, 1.0]],
                           dtype)
    return to_pixel @ _pad(theta) @ to_norm


def _warp(images, matrices, interpolation, fill, padding):
    def one(img, m):
        return affine(img, m, interpolation=interpolation, fill=fill, padding=padding)

    return jax.vmap(one)(images, matrices)


def apply_astn(images, theta, *, interpolation="bilinear", fill=0.0, labels=None, masks=None,
               mask_fill=0, align_corners: bool = True):
    """OnlineAugment's doubled batch: concat([T(x), T^-1(x)]) for theta [B, 2, 3] from ``ASTN``.

    Each half is one resampling of the original images (T^-1 is ``invert(theta)``, not a warp of
    T(x)), with ``padding="fill"``: bilinear with fill=0 is the reference's ``grid_sample``
    default (zeros padding), continuous in theta. Returns (images [2B, H, W, C], labels
    [2B, ...] or None, masks [2B, H, W, K] or None): labels are repeated as concat([labels,
    labels]); masks (e.g. segmentation maps [B, H, W, 1], int or float) are warped on the same
    sampling grids with nearest sampling, so they keep their value set, and out-of-frame points
    get ``mask_fill``. ``align_corners``: the convention of theta (see ``normalized_to_pixel``).
    """
    _check_images("apply_astn", images)
    batch, height, width, _ = images.shape
    if tuple(jnp.shape(theta)) != (batch, 2, 3):
        raise ValueError(f"apply_astn: theta must have shape {(batch, 2, 3)}, got {jnp.shape(theta)}")
    both = jnp.concatenate([theta, invert(theta)], axis=0)
    matrices = normalized_to_pixel(both, height, width, align_corners=align_corners)
    out = _warp(jnp.concatenate([images, images]), matrices, interpolation, fill, "fill")
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
        warped = _warp(jnp.concatenate([masks, masks]).astype(jnp.float32), matrices, "nearest",
                       mask_fill, "pil")
        masks = warped.astype(masks.dtype)
    return out, labels, masks


def cycle_images(aug, theta, *, fill=0.0, align_corners: bool = True):
    """T^-1(T(x)) and T(T^-1(x)) from the doubled batch aug = [T(x), T^-1(x)] of ``apply_astn``
    (theta [B, 2, 3]), each one more resampling as in the reference's double cycle (its
    ``tf_func`` of x_tf by theta^-1 and of x_tf_inv by theta): bilinear, ``padding="fill"``, so
    ``objectives.stn_cycle_consistency(x, *cycle_images(aug, theta))`` is continuous in theta."""
    _check_images("cycle_images", aug)
    batch, height, width, _ = aug.shape
    if batch % 2 or tuple(jnp.shape(theta)) != (batch // 2, 2, 3):
        raise ValueError(f"cycle_images: theta must have shape {(batch // 2, 2, 3)} for the doubled "
                         f"batch aug of {batch}, got {jnp.shape(theta)}")
    both = jnp.concatenate([invert(theta), theta], axis=0)
    matrices = normalized_to_pixel(both, height, width, align_corners=align_corners)
    return tuple(jnp.split(_warp(aug, matrices, "bilinear", fill, "fill"), 2))
