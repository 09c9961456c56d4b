"""MixUp, CutMix and timm's switch between them, on a batch mixed with its flip."""

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
from jax import lax

from jaxaug.mix.beta import beta_from_uniforms
from jaxaug.mix.targets import check_labels, check_num_classes, mix_targets

MODES = ("batch", "pair", "elem")


def _check_alpha(fn: str, name: str, value: float, *, allow_zero: bool) -> None:
    """Static check that a Beta concentration is > 0 (or >= 0 where 0 switches the mix off)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)  # NaN fails both comparisons
    if not ok:
        bound = ">= 0 (0: off)" if allow_zero else "> 0"
        raise ValueError(f"{fn}: {name} must be a number {bound}, got {value!r}")


def _check_unit(fn: str, name: str, value: float, upper_open: bool = False) -> None:
    """Static check that a probability-like argument lies in [0, 1] (or [0, 1))."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (
        0 <= value < 1 if upper_open else 0 <= value <= 1)
    if not ok:
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{fn}: {name} must be in {interval}, got {value!r}")


def _check_minmax(fn: str, name: str, minmax) -> tuple[float, float] | None:
    """Static check of CutMix's box side ratios (lo, hi), 0 <= lo < hi <= 1; returns floats."""
    if minmax is None:
        return None
    try:
        lo, hi = (float(x) for x in minmax)
    except (TypeError, ValueError):
        lo = hi = math.nan  # fails the comparison below
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"{fn}: {name} must be a pair (lo, hi) with 0 <= lo < hi <= 1, "
                         f"got {minmax!r}")
    return lo, hi


def _check_common(fn: str, mode: str, label_smoothing: float) -> None:
    if mode not in MODES:
        raise ValueError(f"{fn}: mode must be one of {MODES}, got {mode!r}")
    _check_unit(fn, "label_smoothing", label_smoothing, upper_open=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mixup:
    """timm's `Mixup`: per batch, pair or element, MixUp or CutMix with the flipped batch.

    Calling it, ``mix(key, images, labels) -> (images, targets)``, maps float images
    [B, H, W, C] and int labels [B] or soft labels [B, num_classes] to the mixed images and soft
    targets [B, num_classes] (float32). Sample i is mixed with its partner j = B - 1 - i:

    - with probability `prob` it is mixed, else left alone (lam = 1);
    - if both `mixup_alpha` and `cutmix_alpha` are > 0, CutMix is chosen with probability
      `switch_prob`, MixUp otherwise; with one of them 0 the other is always used;
    - MixUp: lam ~ Beta(mixup_alpha, mixup_alpha), x_i <- lam x_i + (1 - lam) x_j;
    - CutMix: lam ~ Beta(cutmix_alpha, cutmix_alpha), a box of side floor(H sqrt(1 - lam)) by
      floor(W sqrt(1 - lam)) centred at a uniform pixel (rows [cy - h//2, cy + h//2), clipped to
      the image) is pasted from x_j; with `cutmix_minmax = (lo, hi)` the box sides are instead
      uniform integers in [floor(H lo), floor(H hi)) and [floor(W lo), floor(W hi)) and the box
      lies inside the image. With `correct_lam` (always with `cutmix_minmax`) lam becomes
      1 - box area / (H W), the fraction of x_i's own pixels;
    - targets t_i = lam_i q_i + (1 - lam_i) q_j with q = (1 - eps) onehot + eps / K
      (eps = `label_smoothing`; soft labels take the place of the one-hot).

    `mode`: "batch" draws one (lam, MixUp/CutMix, box) for the whole batch, "elem" one per
    sample, "pair" one per pair (i, B - 1 - i), which both members share (B must be even).

    Images in [0, 1] or normalized give the same result up to that normalization: blends with
    weights summing to 1 and pasted pixels commute with a per-channel affine map, so the mix may
    run before or after `jaxaug.data.augment.standard`'s normalization.

    Every field is static (a Python value); the call is pure in the key and the arrays and works
    under jit and vmap. Differences from timm: `label_smoothing` defaults to 0 (timm's class: 0.1)
    because the trainer's loss applies the configured smoothing; "batch" and "elem" accept an odd
    batch, whose middle sample is then its own partner (timm asserts an even batch in every
    mode); soft input labels are accepted; lam and the box are drawn in float32 from JAX's PRNG,
    lam by `beta_from_uniforms` (exact in distribution, loop-free) rather than numpy's Beta
    sampler.
    """

    num_classes: int
    mixup_alpha: float = 1.0
    cutmix_alpha: float = 0.0
    cutmix_minmax: tuple[float, float] | None = None
    prob: float = 1.0
    switch_prob: float = 0.5
    mode: str = "batch"
    correct_lam: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self):
        fn = "Mixup"
        _check_common(fn, self.mode, self.label_smoothing)
        _check_alpha(fn, "mixup_alpha", self.mixup_alpha, allow_zero=True)
        _check_alpha(fn, "cutmix_alpha", self.cutmix_alpha, allow_zero=True)
        minmax = _check_minmax(fn, "cutmix_minmax", self.cutmix_minmax)
        object.__setattr__(self, "cutmix_minmax", minmax)  # a hashable tuple of floats
        if minmax is not None and not self.cutmix_alpha:
            # timm forces cutmix_alpha = 1 with a min-max box: lam is then the box's area anyway.
            object.__setattr__(self, "cutmix_alpha", 1.0)
        if not (self.mixup_alpha or self.cutmix_alpha):
            raise ValueError(f"{fn}: mixup_alpha or cutmix_alpha must be > 0 (or cutmix_minmax "
                             f"set), got mixup_alpha={self.mixup_alpha!r}, "
                             f"cutmix_alpha={self.cutmix_alpha!r}")
        _check_unit(fn, "prob", self.prob)
        _check_unit(fn, "switch_prob", self.switch_prob)
        check_num_classes(fn, self.num_classes)

    def __call__(self, key: jax.Array, images: jax.Array,
                 labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        fn = "Mixup"
        shape = tuple(jnp.shape(images))
        if len(shape) != 4 or not jnp.issubdtype(jnp.result_type(images), jnp.floating):
            raise ValueError(f"{fn}: images must be a float batch [B, H, W, C], got shape {shape} "
                             f"and dtype {jnp.result_type(images)}")
        b, h, w, _ = shape
        if self.mode == "pair" and b % 2:
            raise ValueError(f"{fn}: mode='pair' needs an even batch size (images.shape[0]), "
                             f"got {b}")
        check_labels(fn, labels, b, self.num_classes)
        if self.cutmix_minmax is not None:
            lo, hi = self.cutmix_minmax
            if int(h * lo) >= int(h * hi) or int(w * lo) >= int(w * hi):
                raise ValueError(f"{fn}: cutmix_minmax (cutmix's minmax) {self.cutmix_minmax} "
                                 f"leaves no box side to draw for {h}x{w} images (need "
                                 f"int(size lo) < int(size hi))")
        n = {"batch": 1, "pair": b // 2, "elem": b}[self.mode]
        lam, cut, box = self._sample(key, n, h, w)
        if self.mode == "batch":
            lam, cut, box = (jnp.broadcast_to(a, (b,) + a.shape[1:]) for a in (lam, cut, box))
        elif self.mode == "pair":
            lam, cut, box = (jnp.concatenate([a, a[::-1]]) for a in (lam, cut, box))
        mixed = _paste_or_blend(images, lam, cut, box)
        targets = mix_targets(labels, lam, num_classes=self.num_classes,
                              label_smoothing=self.label_smoothing)
        return mixed, targets

    def _sample(self, key: jax.Array, n: int, h: int,
                w: int) -> tuple[jax.Array, jax.Array, jax.Array]:
        """n draws of (lam [n] float32, CutMix or not [n] bool, box [n, 4] int32 (top, bottom,
        left, right)); lam is area-corrected where CutMix applies and `correct_lam` asks.

        Every draw comes from one uniform array (one random-bits program to compile)."""
        u = dict(zip(("apply", "switch", "mixup_radius", "mixup_angle", "cutmix_radius",
                      "cutmix_angle", "y_size", "y_start", "x_size", "x_start"),
                     jax.random.uniform(key, (10, n))))
        applied = u["apply"] < self.prob
        if self.mixup_alpha and self.cutmix_alpha:
            use_cutmix = u["switch"] < self.switch_prob
        else:
            use_cutmix = jnp.full((n,), bool(self.cutmix_alpha))
        lam = jnp.ones((n,), jnp.float32)
        if self.mixup_alpha:
            mixup_lam = beta_from_uniforms(u["mixup_radius"], u["mixup_angle"], self.mixup_alpha)
            lam = jnp.where(use_cutmix, lam, mixup_lam)
        if self.cutmix_alpha:
            cutmix_lam = beta_from_uniforms(u["cutmix_radius"], u["cutmix_angle"],
                                            self.cutmix_alpha)
            lam = jnp.where(use_cutmix, cutmix_lam, lam)
        lam = jnp.where(applied, lam, 1.0)
        cut = use_cutmix & applied
        box = jnp.stack([*self._side(u["y_size"], u["y_start"], lam, h),
                         *self._side(u["x_size"], u["x_start"], lam, w)], axis=1)
        if self.correct_lam or self.cutmix_minmax is not None:
            area = (box[:, 1] - box[:, 0]) * (box[:, 3] - box[:, 2])
            lam = jnp.where(cut, 1.0 - area / (h * w), lam)
        return lam, cut, box

    def _side(self, u_size: jax.Array, u_start: jax.Array, lam: jax.Array,
              size: int) -> tuple[jax.Array, jax.Array]:
        """[start, end) of the CutMix box along an axis of `size` pixels: timm's rand_bbox (half
        side floor(size sqrt(1 - lam)) // 2 each way from a uniform centre, clipped) or, with
        `cutmix_minmax`, rand_bbox_minmax (side uniform in [int(size lo), int(size hi)), start
        uniform in [0, size - side))."""
        if self.cutmix_minmax is None:
            half = jnp.floor(size * jnp.sqrt(1.0 - lam)).astype(jnp.int32) // 2
            centre = _uniform_int(u_start, 0, size)
            return jnp.clip(centre - half, 0, size), jnp.clip(centre + half, 0, size)
        lo, hi = self.cutmix_minmax
        length = _uniform_int(u_size, int(size * lo), int(size * hi))
        start = _uniform_int(u_start, 0, size - length)
        return start, start + length


def _uniform_int(u: jax.Array, low: int | jax.Array, high: int | jax.Array) -> jax.Array:
    """An integer uniform in [low, high) from u ~ U[0, 1) (high > low)."""
    return jnp.minimum(low + jnp.floor(u * (high - low)).astype(jnp.int32), high - 1)


def _paste_or_blend(images: jax.Array, lam: jax.Array, cut: jax.Array,
                    box: jax.Array) -> jax.Array:
    """x_i pasted with x_{B-1-i} inside box_i where cut_i, else lam_i x_i + (1 - lam_i) x_{B-1-i};
    the box is a mask of iota comparisons, so its size may be traced."""
    partner = images[::-1]
    _, h, w, _ = images.shape
    rows = lax.broadcasted_iota(jnp.int32, (1, h, w), 1)
    cols = lax.broadcasted_iota(jnp.int32, (1, h, w), 2)
    top, bottom, left, right = (box[:, k, None, None] for k in range(4))
    inside = cut[:, None, None] & (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    weight = lam.astype(images.dtype)[:, None, None, None]
    blended = images * weight + partner * (1 - weight)
    own = jnp.where(cut[:, None, None, None], images, blended)
    return jnp.where(inside[..., None], partner, own)


def mixup(key: jax.Array, images: jax.Array, labels: jax.Array, *, alpha: float,
          num_classes: int, label_smoothing: float = 0.0,
          mode: str = "batch") -> tuple[jax.Array, jax.Array]:
    """MixUp (Zhang et al. 2018) of a batch with its flip: lam ~ Beta(alpha, alpha),
    x_i <- lam x_i + (1 - lam) x_{B-1-i}, targets lam q_i + (1 - lam) q_{B-1-i}; one lam per
    batch, pair or element (`mode`). `Mixup(mixup_alpha=alpha, cutmix_alpha=0)` with prob 1."""
    _check_common("mixup", mode, label_smoothing)
    _check_alpha("mixup", "alpha", alpha, allow_zero=False)
    mix = Mixup(num_classes=num_classes, mixup_alpha=alpha, cutmix_alpha=0.0, mode=mode,
                label_smoothing=label_smoothing)
    return mix(key, images, labels)


def cutmix(key: jax.Array, images: jax.Array, labels: jax.Array, *, alpha: float,
           num_classes: int, label_smoothing: float = 0.0, mode: str = "batch",
           minmax: tuple[float, float] | None = None,
           correct_lam: bool = True) -> tuple[jax.Array, jax.Array]:
    """CutMix (Yun et al. 2019) of a batch with its flip: lam ~ Beta(alpha, alpha), a box of
    side ratio sqrt(1 - lam) (or of sides drawn from `minmax`, then alpha is unused) pasted from
    x_{B-1-i}, lam corrected to 1 - box area / image area (`correct_lam`), targets
    lam q_i + (1 - lam) q_{B-1-i}. `Mixup(mixup_alpha=0, cutmix_alpha=alpha)` with prob 1."""
    _check_common("cutmix", mode, label_smoothing)
    _check_minmax("cutmix", "minmax", minmax)
    if minmax is None:
        _check_alpha("cutmix", "alpha", alpha, allow_zero=False)
    mix = Mixup(num_classes=num_classes, mixup_alpha=0.0, cutmix_alpha=alpha if minmax is None
                else 1.0, cutmix_minmax=minmax, mode=mode, correct_lam=correct_lam,
                label_smoothing=label_smoothing)
    return mix(key, images, labels)
