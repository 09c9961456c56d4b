"""AugMix (Hendrycks et al., ICLR 2020, "AugMix: A Simple Data Processing Method to Improve
Robustness and Uncertainty", sec. 3 and Algorithm 1) as a pure ``(key, img) -> img`` policy.

For an image x in [0, 1]:

    w ~ Dirichlet(alpha, ..., alpha)   (``width`` weights),   m ~ Beta(alpha, alpha),
    chain_i = op_i,d o ... o op_i,1,  d uniform in {1, 2, 3} (``depth=-1``) or ``depth``,
    AugMix(x) = m x + (1 - m) sum_i w_i chain_i(x),

each op_i,j uniform over the op list (with replacement) at a level l ~ U(0.1, severity) drawn
anew for every op. This is Algorithm 1's formula; the reference code
(``google-research/augmix`` ``cifar.py``, ``aug``) and timm (``AugMixAugment``) write
``(1 - m) x + m mix`` instead, the same distribution since Beta(alpha, alpha) is symmetric.

Ops and levels follow the reference ``augmentations.py`` (``IMAGE_SIZE`` there is the image
side, 32 for CIFAR), with ``int(v)`` the truncation of its ``int_parameter``:

* ``augmentations`` (default, ``all_ops=False``): auto_contrast, equalize, posterize
  (``4 - int(l * 4 / 10)`` bits), rotate (``int(l * 30 / 10)`` degrees), solarize (8-bit threshold
  ``256 - int(l * 256 / 10)``), shear_x / shear_y (``l * 0.3 / 10``), translate_x / translate_y
  (``int(l * (size / 3) / 10)`` pixels); rotate, shear and translate get a random sign. The list
  leaves out the ops that overlap the CIFAR-10-C / ImageNet-C corruptions (sec. 3: contrast,
  color, brightness, sharpness, Cutout, noise and blur), so that the corruption benchmark measures
  robustness to unseen shifts. It is the reference's default and the setting of the paper's
  results, hence ours.
* ``augmentations_all`` (``all_ops=True``, the reference's ``--all-ops``): adds color, contrast,
  brightness and sharpness, factor ``l * 1.8 / 10 + 0.1``. timm's ``_AUGMIX_TRANSFORMS`` is this op
  set (with its own level functions, see :mod:`jaxaug.policies.timm`).

The reference resamples each geometric op bilinearly and fills with black (PIL's ``transform``
and ``rotate`` without a fill colour), so ``interpolation="bilinear"`` and ``fill=0.0`` are the
defaults here. Departures, kept as options: with ``fuse=True`` (default, as the other policies)
a chain's geometric steps are composed into one resampling (:mod:`jaxaug.policies.apply`), which
blurs less than the reference's bilinear resampling per op, and in a chain of three a histogram
op (auto_contrast, equalize) between two warps sees the image after both; ``fuse=False``
resamples per op, in order, as the reference does. Warped pixels stay in float, where the
reference rounds every op's output to 8 bits.

Sampling: m by the loop-free symmetric Beta sampler of :mod:`jaxaug.mix.beta`; w by normalised
Gamma(alpha) variates, which for the default alpha = 1 are Exp(1) variates (-log U), exact and
cheap to compile; other alphas use ``jax.random.loggamma`` (exact, but its rejection loop costs
about 1.4 s of XLA compilation on CPU, measured). The reference's CIFAR code fixes alpha = 1.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxaug.mix.beta import beta_from_uniforms
from jaxaug.ops.geometry import Interpolation
from jaxaug.ops.validate import check_image
from jaxaug.policies import apply

#: The reference's ``augmentations``: AugMix's ops, none overlapping the corruption benchmarks.
AUGMIX_OPS = ("auto_contrast", "equalize", "posterize", "rotate", "solarize", "shear_x",
              "shear_y", "translate_x", "translate_y")
#: The reference's ``augmentations_all`` (``--all-ops``).
AUGMIX_ALL_OPS = AUGMIX_OPS + ("color", "contrast", "brightness", "sharpness")

_SIGNED = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
#: Chains of ``depth=-1`` draw their depth uniformly from 1..MAX_RANDOM_DEPTH (the reference's
#: ``np.random.randint(1, 4)``).
MAX_RANDOM_DEPTH = 3


def symmetric_dirichlet(key: jax.Array, alpha: float, size: int) -> jax.Array:
    """w ~ Dirichlet(alpha, ..., alpha) of ``size`` components, Gamma(alpha) variates divided by
    their sum (a softmax of log-Gammas, so that tiny alphas do not underflow to 0/0). ``alpha``
    is a static float; for alpha = 1 use `dirichlet_one_from_uniforms`, which needs no rejection
    loop."""
    return jax.nn.softmax(jax.random.loggamma(key, alpha, (size,)))


def dirichlet_one_from_uniforms(u: jax.Array) -> jax.Array:
    """w ~ Dirichlet(1, ..., 1) from independent U[0, 1) along the last axis: Exp(1) = Gamma(1)
    variates -log(1 - u) over their sum."""
    g = -jnp.log1p(-u)
    return g / jnp.maximum(jnp.sum(g, -1, keepdims=True), jnp.finfo(g.dtype).tiny)


def _op_values(level: jax.Array, image_size: int) -> dict[str, jax.Array]:
    """Every AugMix op's parameter (positive sign, our natural units) at continuous levels."""
    def int_parameter(maxval):
        return jnp.floor(level * maxval / 10)

    enhance = level * 1.8 / 10 + 0.1
    shear = level * 0.3 / 10
    translate = int_parameter(image_size / 3)
    zero = jnp.zeros_like(level)
    return {"auto_contrast": zero, "equalize": zero, "posterize": 4 - int_parameter(4),
            "rotate": int_parameter(30), "solarize": (256 - int_parameter(256)) / 255,
            "shear_x": shear, "shear_y": shear, "translate_x": translate,
            "translate_y": translate, "color": enhance, "contrast": enhance,
            "brightness": enhance, "sharpness": enhance}


class AugMixDraw(NamedTuple):
    """The random choices of one AugMix image: ``width`` chains of up to ``depth`` steps
    (``op_index``, ``value``, ``applied`` of shape [width, depth], as
    :func:`~jaxaug.policies.apply.apply_steps` takes them), the mixing ``weights`` [width] and
    ``m`` (the weight of the original image)."""

    op_index: jax.Array
    value: jax.Array
    applied: jax.Array
    weights: jax.Array
    m: jax.Array


def _check(condition, field, value, why):
    if not condition:
        raise ValueError(f"augmix: {field} {why}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class AugMix:
    """AugMix with ``width`` chains of ``depth`` ops (-1: uniform in {1, 2, 3}) at severity
    ``severity`` (1-10), Dirichlet / Beta concentration ``alpha``; see the module docstring.
    Call it as a policy, ``augmix(key, img)``, on one float image [H, W, C] in [0, 1]."""

    severity: int = 3
    width: int = 3
    depth: int = -1
    alpha: float = 1.0
    all_ops: bool = False
    fuse: bool = True
    interpolation: Interpolation = "bilinear"
    fill: float = 0.0

    def __post_init__(self):
        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)
        _check(is_int(self.severity) and 1 <= self.severity <= 10, "severity", self.severity,
               "must be an integer in [1, 10]")
        _check(is_int(self.width) and self.width >= 1, "width", self.width,
               "must be a positive integer")
        _check(is_int(self.depth) and (self.depth == -1 or self.depth >= 1), "depth", self.depth,
               "must be -1 (random in {1, 2, 3}) or a positive integer")
        _check(isinstance(self.alpha, (int, float)) and 0 < self.alpha < float("inf"), "alpha",
               self.alpha, "must be a positive finite number")

    @property
    def name(self) -> str:
        return f"augmix_{self.severity}_{self.width}_{self.depth}"

    @property
    def op_names(self) -> tuple[str, ...]:
        return AUGMIX_ALL_OPS if self.all_ops else AUGMIX_OPS

    def sample(self, key: jax.Array, image_size: int) -> AugMixDraw:
        """The random choices for one image of side ``image_size``. They come from one array of
        uniforms (an op index as ``floor(n u)``, a sign as ``u < 1/2``, ...): each separate draw
        of `jax.random` costs a fraction of a second of compilation on CPU."""
        steps = MAX_RANDOM_DEPTH if self.depth == -1 else self.depth
        shape = (self.width, steps)
        names = self.op_names
        size = self.width * steps
        u_key, w_key = jax.random.split(key)
        u = jax.random.uniform(u_key, (4 * size + self.width + 2,))
        u_op, u_level, u_sign, u_depth = u[:4 * size].reshape(4, *shape)
        u_weights, u_m = u[4 * size:-2], u[-2:]
        op_index = jnp.minimum(jnp.floor(u_op * len(names)), len(names) - 1).astype(jnp.int32)
        level = 0.1 + (self.severity - 0.1) * u_level
        values = _op_values(level, image_size)
        value = jnp.stack([values[n] for n in names])  # [ops, width, steps]
        value = jnp.take_along_axis(value, op_index[None], axis=0)[0]
        signed = jnp.asarray([n in _SIGNED for n in names])[op_index]
        value = jnp.where(signed & (u_sign < 0.5), -value, value)
        if self.depth == -1:
            depth = 1 + jnp.floor(u_depth[:, :1] * MAX_RANDOM_DEPTH)
            applied = jnp.arange(steps)[None] < depth
        else:
            applied = jnp.ones(shape, bool)
        alpha = float(self.alpha)
        weights = (dirichlet_one_from_uniforms(u_weights) if alpha == 1.0
                   else symmetric_dirichlet(w_key, alpha, self.width))
        m = beta_from_uniforms(u_m[0], u_m[1], alpha)
        return AugMixDraw(op_index, value, applied, weights, m)

    def mix(self, key: jax.Array, img: jax.Array, draw: AugMixDraw) -> jax.Array:
        """``m img + (1 - m) sum_i w_i chain_i(img)`` for the choices ``draw``; ``key`` is
        unused by AugMix's ops but threaded to `apply_steps` (one per chain)."""
        def chain(k, op_index, value, applied):
            return apply.apply_steps(k, img, op_index, value, applied, op_names=self.op_names,
                                     fuse=self.fuse, interpolation=self.interpolation,
                                     fill=self.fill)

        chains = jax.vmap(chain)(jax.random.split(key, self.width), draw.op_index, draw.value,
                                 draw.applied)
        mixed = jnp.tensordot(draw.weights.astype(img.dtype), chains, axes=1)
        m = draw.m.astype(img.dtype)
        return m * img + (1 - m) * mixed

    def __call__(self, key: jax.Array, img: jax.Array) -> jax.Array:
        check_image(self.name, img)
        sample_key, apply_key = jax.random.split(key)
        return self.mix(apply_key, img, self.sample(sample_key, max(img.shape[:2])))

    def replace(self, **changes: Any) -> "AugMix":
        """A copy with some fields changed, e.g. ``augmix.replace(fuse=False)``."""
        return dataclasses.replace(self, **changes)


def augmix(severity: int = 3, width: int = 3, depth: int = -1, alpha: float = 1.0, *,
           all_ops: bool = False, **options: Any) -> AugMix:
    """AugMix at the reference's CIFAR defaults (severity 3, width 3, random depth 1-3,
    alpha 1); ``options`` are `AugMix` fields (``fuse``, ``interpolation``, ``fill``)."""
    return AugMix(severity, width, depth, alpha, all_ops, **options)
