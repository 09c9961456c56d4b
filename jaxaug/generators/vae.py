"""D-VAE and P-VAE, OnlineAugment's deformation and perturbation generators.

Both share the reference's CIFAR conv VAE. Encoder: 3x3 conv-BN-ReLU stages with channels
32, 64 (stride 2), 64, 128 (stride 2), 128 (H x W -> H/4 x W/4), flatten, Dense(512)-BN-ReLU, then
Dense heads to the latent mean and log-variance. Decoder: Dense(512)-BN-ReLU, Dense to
128 x H/4 x W/4, 3x3 transposed conv-BN-ReLU stages 128, 64 (stride 2), 64, 32 (stride 2), 32, and
a zero-initialised 1x1 conv head. The latent is z = mean + exp(logvar / 2) * eps with
eps ~ N(0, I) from ``self.make_rng("noise")`` when sampling (the default when ``train``), else
z = mean. Call as ``model.apply(variables, images, train=..., rngs={"noise": key},
mutable=["batch_stats"])``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxaug.generators.astn import _check_images
from jaxaug.models.batchnorm import MultiBatchNorm
from jaxaug.models.layers import conv, dense_kernel_init
from jaxaug.ops import deform

# (channels, stride) of the encoder; the decoder mirrors it.
_ENCODER = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1))
_DECODER = ((128, 1), (64, 2), (64, 1), (32, 2), (32, 1))

# PyTorch's default ConvTranspose2d init, U(+-1/sqrt(out * kh * kw)): torch counts a transposed
# kernel's output channels as its fan-in. With transpose_kernel=True flax stores the kernel as
# (kh, kw, out, in), so that is flax's "fan_in" of this layout.
_deconv_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class _ConvVAE(nn.Module):
    """Shared encoder / decoder; returns (decoder features [B, H, W, 32], mean, logvar)."""

    latent_dim: int
    features: int = 512

    def _bn_relu(self, x, train, name):
        return nn.relu(MultiBatchNorm(name=name)(x, train=train))

    @nn.compact
    def __call__(self, images, *, train: bool, sample: bool):
        batch, height, width, _ = images.shape
        x = images
        for i, (ch, stride) in enumerate(_ENCODER):
            x = conv(ch, 3, stride, dtype=jnp.float32, name=f"enc_conv{i}")(x)
            x = self._bn_relu(x, train, f"enc_bn{i}")
        x = nn.Dense(self.features, kernel_init=dense_kernel_init, name="enc_fc")(
            x.reshape(batch, -1))
        x = self._bn_relu(x, train, "enc_fc_bn")
        mean = nn.Dense(self.latent_dim, kernel_init=dense_kernel_init, name="mean")(x)
        logvar = nn.Dense(self.latent_dim, kernel_init=dense_kernel_init, name="logvar")(x)

        z = mean
        if sample:
            eps = jax.random.normal(self.make_rng("noise"), mean.shape, mean.dtype)
            z = mean + jnp.exp(0.5 * logvar) * eps

        y = nn.Dense(self.features, kernel_init=dense_kernel_init, name="dec_fc0")(z)
        y = self._bn_relu(y, train, "dec_fc0_bn")
        grid = (height // 4, width // 4, _ENCODER[-1][0])
        y = nn.Dense(grid[0] * grid[1] * grid[2], kernel_init=dense_kernel_init, name="dec_fc1")(y)
        y = y.reshape((batch,) + grid)
        for i, (ch, stride) in enumerate(_DECODER):
            # PyTorch's padding=1, output_padding=stride-1 on the dilated input: exact 2x upsampling
            # with the same alignment as the reference.
            pad = ((1, stride), (1, stride))
            y = nn.ConvTranspose(ch, (3, 3), strides=(stride, stride), padding=pad, use_bias=False,
                                 transpose_kernel=True, kernel_init=_deconv_init,
                                 name=f"dec_conv{i}")(y)
            y = self._bn_relu(y, train, f"dec_bn{i}")
        return y, mean, logvar


def _check_vae_input(where, images):
    _check_images(where, images)
    if images.shape[1] % 4 or images.shape[2] % 4:
        raise ValueError(f"{where}: images height and width must be multiples of 4 (two stride-2 "
                         f"stages), got shape {images.shape}")


class DeformVAE(nn.Module):
    """D-VAE: a VAE whose decoder outputs a dense deformation of the input image.

    The 1x1 head (zero kernel and bias, so it starts as the identity) predicts ``grid_offset``
    [B, H, W, 2]: the reference's offset added to the identity ``affine_grid`` in normalised
    coordinates (channel 0 is x), sampled by ``grid_sample(..., mode="bilinear",
    padding_mode="border")`` under PyTorch 1.2, i.e. align_corners=True (+-1 the corner pixel
    centres; the default here): flow = grid_offset * ((W - 1) / 2, (H - 1) / 2) pixels, or
    grid_offset * (W / 2, H / 2) with align_corners=False. With padding="border" (default, the
    reference) the sample points are clamped to the outer pixel centres, which is exactly border
    padding (continuous in the offsets, constant beyond the border), and ``flow`` is the clamped
    field; padding="zeros" is grid_sample's zeros padding (``ops.deform`` with padding="fill",
    fill 0: every bilinear neighbour outside reads 0, continuous in the offsets).

    Returns a dict: ``flow`` [B, H, W, 2] (pixels, flow[..., 0] along x; ``images`` is
    ``ops.deform(x, flow, fill=0, padding="fill")`` per image), ``grid_offset`` (unclamped, normalised), ``images``
    (deformed, one resampling), ``mean`` and ``logvar`` [B, latent_dim].

    The reference has no image reconstruction for the D-VAE: its "reconstruction" term is
    mean(grid_offset ** 2) (the deformation against the identity grid), plus the KL term
    -0.5 * sum(1 + logvar - mean**2 - exp(logvar)) / B and a smoothness term on grid_offset.
    """

    latent_dim: int = 32
    features: int = 512
    padding: str = "border"
    align_corners: bool = True

    @nn.compact
    def __call__(self, images, *, train: bool, sample: bool | None = None):
        _check_vae_input("DeformVAE", images)
        if self.padding not in ("border", "zeros"):
            raise ValueError(f"DeformVAE: padding must be 'border' or 'zeros', got {self.padding!r}")
        _, height, width, _ = images.shape
        h, mean, logvar = _ConvVAE(self.latent_dim, self.features, name="vae")(
            images, train=train, sample=train if sample is None else sample)
        offset = nn.Conv(2, (1, 1), kernel_init=nn.initializers.zeros, name="head")(h)
        span = (width - 1, height - 1) if self.align_corners else (width, height)
        half = jnp.asarray([span[0] / 2.0, span[1] / 2.0], offset.dtype)
        flow = offset * half
        if self.padding == "border":
            # PIL coordinates of pixel centres; clamping the sample point to [0.5, size - 0.5]
            # makes every out-of-frame point read the nearest border pixel.
            xs = jnp.arange(width, dtype=flow.dtype)[None, :] + 0.5
            ys = jnp.arange(height, dtype=flow.dtype)[:, None] + 0.5
            fx = jnp.clip(xs + flow[..., 0], 0.5, width - 0.5) - xs
            fy = jnp.clip(ys + flow[..., 1], 0.5, height - 0.5) - ys
            flow = jnp.stack([fx, fy], axis=-1)
        out = jax.vmap(lambda img, f: deform(img, f, fill=0.0, padding="fill"))(
            images, flow.astype(images.dtype))
        return {"flow": flow, "grid_offset": offset, "images": out, "mean": mean, "logvar": logvar}


class PerturbVAE(nn.Module):
    """P-VAE: a VAE whose decoder outputs an additive, image-sized perturbation.

    As in the reference the 1x1 head has no bias and a zero kernel and is followed by a sigmoid, so
    ``perturbation`` [B, H, W, C] lies in (0, 1) and starts at 0.5 everywhere; ``images`` =
    x + perturbation, not clipped (the reference works on mean/std-normalised inputs).

    Returns a dict: ``perturbation``, ``images``, ``reconstruction`` (the same array as
    ``images``: the reference's VAE reconstruction is x + perturbation, scored against the input x
    as sum((reconstruction - x) ** 2) / B plus the KL term), ``mean`` and ``logvar``
    [B, latent_dim].
    """

    latent_dim: int = 8
    features: int = 512

    @nn.compact
    def __call__(self, images, *, train: bool, sample: bool | None = None):
        _check_vae_input("PerturbVAE", images)
        h, mean, logvar = _ConvVAE(self.latent_dim, self.features, name="vae")(
            images, train=train, sample=train if sample is None else sample)
        logits = nn.Conv(images.shape[-1], (1, 1), use_bias=False,
                         kernel_init=nn.initializers.zeros, name="head")(h)
        perturbation = nn.sigmoid(logits).astype(images.dtype)
        out = images + perturbation
        return {"perturbation": perturbation, "images": out, "reconstruction": out,
                "mean": mean, "logvar": logvar}
