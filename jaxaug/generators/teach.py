"""TeachAugment's augmentation network (Suzuki, CVPR 2022, "data augmentation using neural
networks"; the reference is DensoITLab/TeachAugment, ``lib/augmentation/nn_aug.py``): a colour
network and a geometric network that share one noise vector z ~ N(0, I) per image.

Colour: per pixel and channel, x' = t((alpha * x + beta) * m) with the triangle wave
t(v) = 1 - |1 - (v mod 2)| (reflection into [0, 1]) and m the zero-padding mask (`padding_mask`).
alpha and beta come from a per-pixel branch (1x1 convolutions of the normalized image, plus the
class embedding) and a global branch (an MLP of z and the one-hot class): with s_p, b_p the
pixel and s_g, b_g the global outputs,

    alpha = 1 + c (sigmoid(s_p + s_g) - 1/2),   beta = sigmoid(b_p + b_g) - 1/2,

c the colour scale (0.8: alpha in [0.6, 1.4], beta in [-1/2, 1/2]).

Geometric: an MLP of (z, one-hot class) gives a [2, 3] matrix
A = I + g (sigmoid(o) - 1/2), g the geometric scale (0.5: every entry within 1/4 of the
identity's), in PyTorch's normalized ``affine_grid`` coordinates (align_corners=False, as the
reference's PyTorch >= 1.9 default), sampled bilinear with zeros outside (``grid_sample``).

Random application: each network has a logit per class (one without the class context), and
p = sigmoid((log u - log(1 - u) + logit) / 0.05), u ~ U(0, 1), a relaxed Bernoulli; the colour
parameters become (1 - p + p alpha, p beta) and the matrix (1 - p) I + p A.

Initialisation (the reference's ``reset``): hidden layers Kaiming-normal with slope 0.2 over
fan-out, no biases; the output layers and the logits zero, so alpha = 1, beta = 0 and A = I
whatever p: the untrained augmenter is the identity. Hidden layers use BatchNorm on the batch's
statistics always (the reference's ``track_running_stats=False``: no running statistics) and
LeakyReLU(0.2), dropout 0.8 (channel-wise on the per-pixel branch, ``Dropout2d``).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxaug.generators.astn import normalized_to_pixel
from jaxaug.ops import affine

_HIDDEN_INIT = nn.initializers.variance_scaling(2.0 / (1.0 + 0.2**2), "fan_out", "normal")
_IDENTITY = np.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)  # numpy: no backend


def triangle_wave(x: jax.Array) -> jax.Array:
    """t(x) = 1 - |1 - (x mod 2)|: x on [0, 1], reflected at 0 and 1 beyond (the reference's
    acos(cos(pi x)) / pi, whose gradient is +-1 there too)."""
    return 1.0 - jnp.abs(1.0 - jnp.mod(x, 2.0))


def padding_mask(images: jax.Array) -> jax.Array:
    """[B, H, W, 1]: 0 on the pixels of a row or column that is black (all channels 0) from end
    to end, the zero padding a random crop brings in; 1 elsewhere. Constant, no gradient."""
    black = jnp.all(images == 0, axis=-1, keepdims=True)
    row = jnp.sum(black, axis=2, keepdims=True) < images.shape[2]
    column = jnp.sum(black, axis=1, keepdims=True) < images.shape[1]
    return jax.lax.stop_gradient((row & column).astype(images.dtype))


def relaxed_bernoulli(uniform: jax.Array, logits: jax.Array, temperature: float = 0.05
                      ) -> jax.Array:
    """sigmoid((log u - log(1 - u) + logits) / temperature) for draws ``uniform`` u ~ U(0, 1)."""
    u = jnp.clip(uniform, 1e-6, 1.0 - 1e-6)
    return jax.nn.sigmoid((jnp.log(u) - jnp.log1p(-u) + logits) / temperature)


def apply_color(images: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    """t((scale * x + shift) * padding_mask(x)) on images [B, H, W, C] in [0, 1]."""
    return triangle_wave((scale * images + shift) * padding_mask(images))


def apply_geometric(images: jax.Array, theta: jax.Array) -> jax.Array:
    """Warps images [B, H, W, C] by theta [B, 2, 3] (``affine_grid`` coordinates,
    align_corners=False), bilinear, zeros outside: ``grid_sample``'s defaults."""
    height, width = images.shape[1:3]
    matrices = normalized_to_pixel(theta, height, width, align_corners=False)
    return jax.vmap(lambda x, m: affine(x, m, interpolation="bilinear", fill=0.0,
                                        padding="fill"))(images, matrices)


class _BatchNorm(nn.Module):
    """BatchNorm on the batch's statistics only (biased variance, eps 1e-5), over every axis but
    the last: PyTorch's BatchNorm with ``track_running_stats=False``."""

    @nn.compact
    def __call__(self, x):
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axes, keepdims=True)
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return (x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias


class _Block(nn.Module):
    """BN -> LeakyReLU(0.2) -> Dropout (whole channels of a feature map when ``spatial``)."""

    dropout: float
    spatial: bool = False

    @nn.compact
    def __call__(self, x, train):
        x = nn.leaky_relu(_BatchNorm()(x), 0.2)
        broadcast = (1, 2) if self.spatial else ()
        return nn.Dropout(self.dropout, broadcast_dims=broadcast, deterministic=not train)(x)


class _NoiseMLP(nn.Module):
    """Dense(width) -> block -> Dense(width) -> block -> Dense(outputs, zero kernel), no biases."""

    width: int
    outputs: int
    dropout: float

    @nn.compact
    def __call__(self, h, train):
        for _ in range(2):
            h = nn.Dense(self.width, use_bias=False, kernel_init=_HIDDEN_INIT)(h)
            h = _Block(self.dropout)(h, train)
        return nn.Dense(self.outputs, use_bias=False, kernel_init=nn.initializers.zeros)(h)


class TeachAugmenter(nn.Module):
    """The colour and geometric networks of the module docstring.

    ``__call__(images, context, train=...)``: images [B, H, W, C] as the colour branch reads them
    (the method passes the normalized images, as the reference), ``context`` [B, K] the one-hot
    (or soft) labels, or None with ``with_context=False``. Draws z and the relaxed Bernoulli
    from the ``"noise"`` stream, dropout from ``"dropout"`` (when ``train``). Returns
    ``{"scale": [B, H, W, C], "shift": [B, H, W, C], "theta": [B, 2, 3]}``; `apply_color`
    and `apply_geometric` apply them.

    Defaults are the reference's: noise_dim 128, MLP width 4 x noise_dim, colour hidden width
    128, dropout 0.8, colour scale 0.8, geometric scale 0.5, temperature 0.05.
    """

    num_classes: int = 10
    noise_dim: int = 128
    hidden: int = 128
    dropout: float = 0.8
    color_scale: float = 0.8
    geometric_scale: float = 0.5
    temperature: float = 0.05
    with_context: bool = True

    @nn.compact
    def __call__(self, images, context=None, *, train: bool = True):
        batch, channels = images.shape[0], images.shape[-1]
        # One draw per distribution: on XLA:CPU each random draw adds about a second of compiling.
        z_key, u_key = jax.random.split(self.make_rng("noise"))
        z = jax.random.normal(z_key, (batch, self.noise_dim), jnp.float32)
        u_color, u_geometric = jax.random.uniform(u_key, (2, batch), jnp.float32)
        if self.with_context:
            z = jnp.concatenate([context, z], axis=-1)

        def logit(name):
            logits = self.param(name, nn.initializers.zeros,
                                (self.num_classes if self.with_context else 1,))
            return context @ logits if self.with_context else jnp.broadcast_to(logits, (batch,))

        # Colour: per-pixel branch (1x1 convolutions are Dense layers on the channel axis).
        h = nn.Dense(self.hidden, use_bias=False, kernel_init=_HIDDEN_INIT, name="color_in")(images)
        if self.with_context:
            h = h + nn.Dense(self.hidden, use_bias=False, kernel_init=_HIDDEN_INIT,
                             name="color_context")(context)[:, None, None, :]
        h = _Block(self.dropout, spatial=True)(h, train)
        h = nn.Dense(self.hidden, use_bias=False, kernel_init=_HIDDEN_INIT, name="color_hidden")(h)
        h = _Block(self.dropout, spatial=True)(h, train)
        pixel = nn.Dense(2 * channels, use_bias=False, kernel_init=nn.initializers.zeros,
                         name="color_out")(h)
        width = 4 * self.noise_dim
        glob = _NoiseMLP(width, 2, self.dropout, name="color_global")(z, train)[:, None, None, :]
        scale = jax.nn.sigmoid(pixel[..., :channels] + glob[..., :1])
        shift = jax.nn.sigmoid(pixel[..., channels:] + glob[..., 1:]) - 0.5
        scale = self.color_scale * (scale - 0.5) + 1.0
        p = relaxed_bernoulli(u_color, logit("color_logits"), self.temperature)[:, None, None, None]
        scale, shift = 1.0 - p + p * scale, p * shift

        # Geometric.
        out = _NoiseMLP(width, 6, self.dropout, name="geometric")(z, train).reshape(batch, 2, 3)
        theta = _IDENTITY + self.geometric_scale * (jax.nn.sigmoid(out) - 0.5)
        p = relaxed_bernoulli(u_geometric, logit("geometric_logits"), self.temperature)
        p = p[:, None, None]
        theta = (1.0 - p) * _IDENTITY + p * theta
        return {"scale": scale, "shift": shift, "theta": theta}
