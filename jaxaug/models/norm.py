"""SelfNorm and CrossNorm (Tang et al., ICCV 2021): augmentation and recalibration of the
per-instance channel statistics of feature maps.

For features A [N, H, W, C], the instance statistics of channel c of instance n are
mu = mean_{h,w} A and sigma = sqrt(var_{h,w} A + eps) (the unbiased variance, as the reference).

* SelfNorm (training and test): A -> sigma' (A - mu) / sigma + mu' with mu' = f(mu, sigma) mu and
  sigma' = g(mu, sigma) sigma, where f and g are per-channel attention units: a channel-wise fully
  connected layer from (mu_c, sigma_c) to one value (2 weights per channel, no bias), BatchNorm and
  a sigmoid, O(C) parameters. With ``recalibrate_mean=False`` only g is learnt (f = g, the
  reference's default), i.e. A -> g A.
* CrossNorm (training only): A -> sigma_s (A - mu) / sigma + mu_s, the statistics (mu_s, sigma_s)
  taken from another instance's same channel ("2-instance": instances permuted at random) or from
  another channel of the same instance ("1-instance": channels permuted at random). Optionally the
  style statistics come from a random box ("style" crop), the exchange applies only inside a random
  box ("content" crop), or both; a box covers a fraction r ~ U(t, 1) of the map (t =
  ``min_area``, 0.1), with its aspect equal to the map's and its position uniform among those
  that keep it inside (the reference draws r ~ U(0, 1) and rejects boxes below t after clipping;
  drawing inside [t, 1] gives the same guarantee without a data-dependent loop). Boxes are masks,
  so shapes stay static under jit.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

CROPS = ("neither", "style", "content", "both")
MODES = ("2-instance", "1-instance")
POSITIONS = ("post", "pre", "residual")
SWITCHES = ("sample", "on", "off")


def instance_stats(x: jax.Array, mask: jax.Array | None = None, eps: float = 1e-5):
    """(mu, sigma) [N, 1, 1, C] of x [N, H, W, C] over H, W, or over the pixels where ``mask``
    [N, H, W] is 1 (unbiased variance plus ``eps``, then the square root)."""
    if mask is None:
        mask = jnp.ones(x.shape[:3], x.dtype)
    weight = mask[..., None].astype(x.dtype)
    count = jnp.sum(weight, axis=(1, 2), keepdims=True)
    mu = jnp.sum(weight * x, axis=(1, 2), keepdims=True) / count
    var = jnp.sum(weight * (x - mu) ** 2, axis=(1, 2), keepdims=True) / jnp.maximum(count - 1, 1)
    return mu, jnp.sqrt(var + eps)


def self_norm(x: jax.Array, f: jax.Array, g: jax.Array, eps: float = 1e-12) -> jax.Array:
    """sigma' (x - mu) / sigma + mu' with mu' = f mu and sigma' = g sigma, for attention values f,
    g [N, 1, 1, C] (or broadcastable); f = g = 1 is the identity."""
    mu, _ = instance_stats(x, eps=eps)
    return g * (x - mu) + f * mu


def random_box(key: jax.Array, height: int, width: int, min_area: float) -> jax.Array:
    """A [height, width] 0/1 mask of a random box covering a fraction r ~ U(min_area, 1) of the
    map (up to rounding to whole pixels, never below min_area), placed uniformly inside it."""
    k_area, k_y, k_x = jax.random.split(key, 3)
    side = jnp.sqrt(jax.random.uniform(k_area, (), minval=min_area, maxval=1.0))
    box_h = jnp.clip(jnp.ceil(side * height), 1, height).astype(jnp.int32)
    box_w = jnp.clip(jnp.ceil(side * width), 1, width).astype(jnp.int32)
    top = jax.random.randint(k_y, (), 0, height - box_h + 1)
    left = jax.random.randint(k_x, (), 0, width - box_w + 1)
    rows, cols = jnp.arange(height), jnp.arange(width)
    inside_rows = (rows >= top) & (rows < top + box_h)
    inside_cols = (cols >= left) & (cols < left + box_w)
    return (inside_rows[:, None] & inside_cols[None, :]).astype(jnp.float32)


def cross_norm(key: jax.Array, x: jax.Array, mode: str = "2-instance", crop: str = "neither",
               min_area: float = 0.1, eps: float = 1e-5) -> jax.Array:
    """CrossNorm of x [N, H, W, C] (see the module docstring): each instance's channel statistics
    replaced by those of a randomly permuted instance (``mode="2-instance"``) or channel
    (``"1-instance"``), with the optional ``crop`` of the style region, the content region or
    both."""
    if mode not in MODES:
        raise ValueError(f"cross_norm: mode must be one of {MODES}, got {mode!r}")
    if crop not in CROPS:
        raise ValueError(f"cross_norm: crop must be one of {CROPS}, got {crop!r}")
    if not 0 < min_area <= 1:
        raise ValueError(f"cross_norm: min_area must be in (0, 1], got {min_area!r}")
    n, h, w, c = x.shape
    k_perm, k_style, k_content = jax.random.split(key, 3)
    everywhere = jnp.ones((n, h, w), x.dtype)
    style_mask = (jnp.broadcast_to(random_box(k_style, h, w, min_area), (n, h, w))
                  if crop in ("style", "both") else everywhere)
    content_mask = (jnp.broadcast_to(random_box(k_content, h, w, min_area), (n, h, w))
                    if crop in ("content", "both") else everywhere)
    style_mu, style_sigma = instance_stats(x, style_mask, eps)
    if mode == "2-instance":
        order = jax.random.permutation(k_perm, n)
        style_mu, style_sigma = style_mu[order], style_sigma[order]
    else:
        order = jax.random.permutation(k_perm, c)
        style_mu, style_sigma = style_mu[..., order], style_sigma[..., order]
    mu, sigma = instance_stats(x, content_mask, eps)
    mixed = style_sigma * (x - mu) / sigma + style_mu
    return jnp.where(content_mask[..., None] > 0, mixed, x)


def crossnorm_gates(key: jax.Array, num_units: int, prob: float, active: int = 0,
                    switch: str = "sample") -> jax.Array:
    """Which of a network's ``num_units`` CrossNorm units act in one training forward pass, as a
    bool [num_units].

    ``active == 0``: each unit independently with probability ``prob``. ``active = k > 0`` (the
    CNSN reference's scheme): one Bernoulli(``prob``) coin for the whole pass, and if it comes up,
    k units drawn uniformly without replacement. ``switch`` overrides the coins: ``"on"`` treats
    them as heads (every unit, or k of them), ``"off"`` returns no unit.
    """
    if switch not in SWITCHES:
        raise ValueError(f"crossnorm_gates: switch must be one of {SWITCHES}, got {switch!r}")
    if not 0 <= active <= num_units:
        raise ValueError(f"crossnorm_gates: active must be in [0, {num_units}] (the number of "
                         f"CrossNorm units), got {active!r}")
    if switch == "off":
        return jnp.zeros((num_units,), bool)
    k_coin, k_pick = jax.random.split(key)
    if active == 0:
        if switch == "on":
            return jnp.ones((num_units,), bool)
        return jax.random.bernoulli(k_coin, prob, (num_units,))
    picked = jax.random.permutation(k_pick, num_units) < active
    return picked if switch == "on" else picked & jax.random.bernoulli(k_coin, prob)


# The reference's channel-wise FC is a grouped Conv1d (groups = C, kernel 2, no bias), so each
# channel's unit has fan_in 2 and PyTorch's default init draws its weights from U(+-1/sqrt(2)).
# (lecun_normal on the [C, 2] kernel would take C as the fan-in: weights sqrt(C / 2) times smaller,
# which the BatchNorm after the unit hides in the forward pass but not in the step sizes.)
_ATTENTION_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform", in_axis=-1,
                                                   out_axis=-2)


class SelfNorm(nn.Module):
    """SelfNorm over NHWC features: ``SelfNorm()(x, train)``; BatchNorm of the attention units
    uses batch statistics when ``train`` (needs ``mutable=['batch_stats']``). The units' weights
    start as PyTorch's default for the reference's grouped Conv1d: U(-1/sqrt(2), 1/sqrt(2))."""

    recalibrate_mean: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        mu, sigma = instance_stats(x, eps=1e-12)
        stats = jnp.stack([mu[:, 0, 0], sigma[:, 0, 0]], axis=-1)  # [N, C, 2]

        def attention(name):
            kernel = self.param(f"{name}_fc", _ATTENTION_INIT,
                                (x.shape[-1], 2), jnp.float32)
            logits = jnp.sum(stats * kernel, axis=-1)  # channel-wise FC: [N, C]
            logits = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                  name=f"{name}_bn")(logits)
            return jax.nn.sigmoid(logits)[:, None, None, :].astype(x.dtype)

        g = attention("g")
        f = attention("f") if self.recalibrate_mean else g
        return self_norm(x, f, g)


class CrossNorm(nn.Module):
    """CrossNorm over NHWC features, never at evaluation. In training it acts when ``active`` (a
    bool, possibly traced: networks pass their `crossnorm_gates`), or, when ``active`` is None, with
    probability ``prob`` per call; the draws come from the ``'crossnorm'`` rng stream."""

    prob: float = 0.5
    mode: str = "2-instance"
    crop: str = "neither"
    min_area: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.prob <= 1:
            raise ValueError(f"CrossNorm: prob must be in [0, 1], got {self.prob!r}")
        if self.mode not in MODES:
            raise ValueError(f"CrossNorm: mode must be one of {MODES}, got {self.mode!r}")
        if self.crop not in CROPS:
            raise ValueError(f"CrossNorm: crop must be one of {CROPS}, got {self.crop!r}")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, active: jax.Array | None = None) -> jax.Array:
        if not train or active is False or (active is None and self.prob == 0):
            return x
        key = self.make_rng("crossnorm")
        k_on, k_op = jax.random.split(key)
        if active is None:
            active = jax.random.bernoulli(k_on, self.prob)
        mixed = cross_norm(k_op, x, self.mode, self.crop, self.min_area)
        return jnp.where(active, mixed, x)


@dataclasses.dataclass(frozen=True)
class CNSNPlacement:
    """Where and how a residual block applies CrossNorm and SelfNorm (CN before SN).

    ``position``: "post" (the block's output, after the addition), "pre" (the start of the
    residual path only: the shortcut is not scaled, as in the reference code's blocks) or
    "residual" (the end of the residual path, before the addition).
    ``cn_prob`` and ``cn_active`` choose the CrossNorm units of a training pass (see
    `crossnorm_gates`): 0 active units means each unit independently with ``cn_prob``.
    ``sn_recalibrate_mean`` is `SelfNorm`'s ``recalibrate_mean`` (False: g only, the reference
    code's CIFAR networks).
    """

    selfnorm: bool = False
    crossnorm: bool = False
    position: str = "post"
    cn_prob: float = 0.5
    cn_mode: str = "2-instance"
    cn_crop: str = "neither"
    cn_active: int = 0
    sn_recalibrate_mean: bool = True

    def __post_init__(self):
        if self.position not in POSITIONS:
            raise ValueError(f"CNSNPlacement: position must be one of {POSITIONS}, "
                             f"got {self.position!r}")
        if not (self.selfnorm or self.crossnorm):
            raise ValueError("CNSNPlacement: enable selfnorm, crossnorm or both (use None for "
                             "neither)")
        CrossNorm(self.cn_prob, self.cn_mode, self.cn_crop)  # validates the CN settings
        if isinstance(self.cn_active, bool) or not isinstance(self.cn_active, int) or (
                self.cn_active < 0):
            raise ValueError(f"CNSNPlacement: cn_active must be an int >= 0, got "
                             f"{self.cn_active!r}")


def cnsn_gates(module: nn.Module, placement: CNSNPlacement | None, num_units: int, train: bool,
               switch="sample") -> list:
    """The CrossNorm gate of each of a network's ``num_units`` blocks for one pass, drawn from
    ``module``'s 'crossnorm' stream by `crossnorm_gates`; all False when CrossNorm cannot act
    (evaluation, no CrossNorm in ``placement``, or ``switch="off"``). ``switch`` may also be a
    (traced) bool: "on" where it is true, "off" where it is false, one compiled program for both."""
    traced = not isinstance(switch, str)
    if not traced and switch not in SWITCHES:
        raise ValueError(f"crossnorm must be one of {SWITCHES} or a bool array, got {switch!r}")
    if placement is None or not (train and placement.crossnorm) or switch == "off":
        return [False] * num_units
    gates = crossnorm_gates(module.make_rng("crossnorm"), num_units, placement.cn_prob,
                            placement.cn_active, "on" if traced else switch)
    return list(gates & switch if traced else gates)


class CNSN(nn.Module):
    """CrossNorm (if enabled, training only) then SelfNorm (if enabled) per a `CNSNPlacement`;
    ``cn_gate`` as CrossNorm's ``active``."""

    placement: CNSNPlacement

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, cn_gate: jax.Array | None = None) -> jax.Array:
        p = self.placement
        if p.crossnorm:
            x = CrossNorm(p.cn_prob, p.cn_mode, p.cn_crop, name="crossnorm")(x, train, cn_gate)
        if p.selfnorm:
            x = SelfNorm(p.sn_recalibrate_mean, name="selfnorm")(x, train)
        return x
