"""timm's augmentation strings (``timm/data/auto_augment.py``, pytorch-image-models commit
aa4b5850): ``rand-m9-n2-mstd0.5-inc1`` (RandAugment), ``augmix-m5-w4-d2`` (AugMix),
``trivialaugment``.

**RandAugment** (timm ``rand_augment_transform``). Tokens after ``rand``, in any order:
``m`` magnitude (int, default 10), ``n`` ops per image (int, default 2), ``p`` probability that
each drawn op is applied (float, default 0.5), ``mstd`` magnitude noise (float, default 0; above
100 means infinity), ``mmax`` the magnitude's upper clip (int, default 10), ``inc`` 1 for the
"increasing" table. Per image, ``n`` ops are drawn uniformly with replacement; each is applied
with probability ``p`` at its own magnitude ``M``: ``m`` (mstd 0), ``m + mstd N(0, 1)`` (mstd > 0)
or ``U(0, m)`` (mstd infinite), clipped to ``[0, mmax]``. At ``M`` (continuous, ``f = M / 10``):

==========================  ===================================  ================================
op                          default table                        increasing table (``inc1``)
==========================  ===================================  ================================
rotate                      +/- 30 f degrees                     same
shear_x, shear_y            +/- 0.3 f                            same
translate_x, translate_y    +/- 0.45 f x image side (``Rel``)    same
posterize                   ``int(4 f)`` bits (weaker as M       ``4 - int(4 f)`` bits
                            grows)
solarize                    8-bit threshold ``min(256,           ``256 -`` that
                            int(256 f))`` (weaker as M grows)
color, contrast,            factor ``1.8 f + 0.1``               ``max(0.1, 1 +/- 0.9 f)``
brightness, sharpness
auto_contrast, equalize,    no magnitude                         same
invert
==========================  ===================================  ================================

(our posterize / solarize levels of :mod:`jaxaug.policies.levels` are the increasing direction.)
Signs are drawn with probability 1/2.

Departures from timm, all because of our op vocabulary or to make bad strings fail loudly:

* ``SolarizeAdd`` (add ``int(110 f)`` to pixels below 128) has no op here, so both tables have
  14 ops instead of 15: each op is drawn with probability 1/14 instead of 1/15.
* Geometric ops resample bilinearly with a grey (0.5) fill; timm picks bilinear or bicubic at
  random and fills with the dataset mean when ``create_transform`` passes it (grey otherwise).
  Policy options (``interpolation=``, ``fill=``, ``fuse=``) change this.
* ``translate_x`` and ``translate_y`` are fractions of the longer side, max(H, W) (policies
  sample with one image side); timm takes the width for x and the height for y. The two agree
  on square images, the usual case after a resized crop.
* timm reads ``inc`` as ``bool(string)``, so ``inc0`` also selects the increasing table; here
  ``inc0`` selects the default one.
* timm skips tokens without a digit and the transform-set token ``t...``; here every token must
  be known, ``t`` (weighted / 3-augment op sets) is not supported, and a bad token raises a
  ``ValueError`` that names it.

**AugMix** (timm ``augment_and_mix_transform``): ``m`` severity (default 3), ``w`` width (3),
``d`` depth (-1: random in 1-3), ``a`` alpha (1.0), ``b`` blended (0). It maps onto
:func:`jaxaug.policies.augmix` with ``all_ops=True``, timm's op set (the AugMix
reference's ``--all-ops`` list). Departures: levels are the AugMix reference's (``U(0.1,
severity)`` per op, its level functions), not timm's (``U(0, severity)``, its increasing
table above); ``b`` is accepted and changes nothing: timm's blended mode composes the same convex
combination by successive blends, which differ only by 8-bit rounding, and we mix in float;
``mstd`` is not supported for AugMix.

**trivialaugment** is :func:`jaxaug.policies.policy.trivial_augment_wide` (torchvision's
TrivialAugment-Wide ranges).
"""

import math
import re
from typing import Any

import jax
import jax.numpy as jnp

from jaxaug.policies import augmix_policy as augmix_lib
from jaxaug.policies.policy import Policy, trivial_augment_wide

#: timm's ``_RAND_TRANSFORMS`` (and ``_RAND_INCREASING_TRANSFORMS``) in our names, without
#: ``SolarizeAdd``.
TIMM_RAND_OPS = ("auto_contrast", "equalize", "invert", "rotate", "posterize", "solarize",
                 "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y",
                 "translate_x", "translate_y")
_ENHANCE = ("color", "contrast", "brightness", "sharpness")
#: timm's ``_LEVEL_DENOM``: magnitude 10 is an op's full strength.
LEVEL_DENOM = 10.0


def _values(magnitude, negate, increasing, image_size):
    """Each op's parameter in our units at continuous magnitudes, signs applied."""
    f = magnitude / LEVEL_DENOM
    sign = jnp.where(negate, -1.0, 1.0)
    posterize = jnp.floor(4 * f)
    solarize = jnp.minimum(256.0, jnp.floor(256 * f))
    if increasing:
        posterize, solarize = 4 - posterize, 256 - solarize
        enhance = jnp.maximum(0.1, 1.0 + sign * 0.9 * f)
    else:
        enhance = 1.8 * f + 0.1
    zero = jnp.zeros_like(f)
    values = {"auto_contrast": zero, "equalize": zero, "invert": zero,
              "rotate": sign * 30 * f, "shear_x": sign * 0.3 * f, "shear_y": sign * 0.3 * f,
              "translate_x": sign * 0.45 * f * image_size,
              "translate_y": sign * 0.45 * f * image_size,
              "posterize": posterize, "solarize": solarize / 255}
    return {**values, **{n: enhance for n in _ENHANCE}}


def noisy_magnitude(u1: jax.Array, u2: jax.Array, magnitude: float, magnitude_std: float,
                    magnitude_max: float) -> jax.Array:
    """timm ``AugmentOp``'s magnitude per op application from two independent U[0, 1) arrays:
    ``magnitude`` (std 0), Gaussian around it (std > 0; Box-Muller) or uniform in
    [0, magnitude] (std infinite), clipped to [0, magnitude_max]."""
    if magnitude_std == math.inf:
        m = magnitude * u1
    elif magnitude_std > 0:
        normal = jnp.sqrt(-2 * jnp.log1p(-u1)) * jnp.cos(2 * jnp.pi * u2)
        m = magnitude + magnitude_std * normal
    else:
        m = jnp.full(u1.shape, float(magnitude))
    return jnp.clip(m, 0.0, magnitude_max)


def rand_augment(magnitude: int = 10, num_ops: int = 2, *, prob: float = 0.5,
                 magnitude_std: float = 0.0, magnitude_max: int | None = None,
                 increasing: bool = False, **options: Any) -> Policy:
    """timm's RandAugment (see the module docstring); ``options`` are :class:`Policy` fields.
    The result's ``hparams`` records every setting."""
    def bad(field, value, why):
        raise ValueError(f"timm rand_augment: {field} {why}, got {value!r}")

    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 1:
        bad("num_ops", num_ops, "must be a positive integer")
    if not 0 <= magnitude < math.inf:
        bad("magnitude", magnitude, "must be finite and non-negative")
    if not 0 <= prob <= 1:
        bad("prob", prob, "must be in [0, 1]")
    if not magnitude_std >= 0:
        bad("magnitude_std", magnitude_std, "must be non-negative")
    # timm: `magnitude_max or _LEVEL_DENOM`, so an absent or zero bound is 10.
    upper = float(magnitude_max or LEVEL_DENOM)
    increasing = bool(increasing)

    def sampler(key, image_size):
        # One array of uniforms for every choice: each separate `jax.random` draw costs a
        # fraction of a second of compilation on CPU.
        u_op, u_applied, u_sign, u1, u2 = jax.random.uniform(key, (5, num_ops))
        n = len(TIMM_RAND_OPS)
        op_index = jnp.minimum(jnp.floor(u_op * n), n - 1).astype(jnp.int32)
        m = noisy_magnitude(u1, u2, magnitude, magnitude_std, upper)
        table = _values(m, u_sign < 0.5, increasing, image_size)
        value = jnp.stack([table[name] for name in TIMM_RAND_OPS])  # [ops, num_ops]
        return op_index, jnp.take_along_axis(value, op_index[None], axis=0)[0], u_applied < prob

    hparams = (("magnitude", magnitude), ("num_ops", num_ops), ("prob", prob),
               ("magnitude_std", magnitude_std), ("magnitude_max", upper),
               ("increasing", increasing))
    options = {"interpolation": "bilinear", **options}
    return Policy("timm_rand", TIMM_RAND_OPS, sampler, hparams=hparams, **options)


def _tokens(spec, keys):
    """``{key: value string}`` of the tokens after the first, each a known key + a number."""
    head, *tokens = spec.split("-")
    found = {}
    for token in tokens:
        match = re.fullmatch(r"([a-z]+)(\d.*)", token)
        if match is None or match[1] not in keys:
            raise ValueError(f"policy {spec!r}: bad token {token!r}; {head} tokens are "
                             f"{', '.join(k + '<number>' for k in keys)}")
        if match[1] in found:
            raise ValueError(f"policy {spec!r}: token {token!r} repeats {match[1]!r}")
        found[match[1]] = (token, match[2])
    return found


def _number(spec, token, text, kind):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"policy {spec!r}: bad token {token!r}: {text!r} is not "
                         f"{'an integer' if kind is int else 'a number'}") from None


def is_timm_string(name: str) -> bool:
    """Whether ``name`` is in timm's string syntax (``rand...``, ``augmix...``,
    ``trivialaugment``)."""
    return (name == "trivialaugment" or name.split("-")[0] in ("rand", "augmix"))


def _build(spec, found, kinds, fields, build):
    """``build(**arguments)`` from the parsed tokens; a ValueError names the token at fault."""
    args = {fields[key]: _number(spec, token, text, kinds[key])
            for key, (token, text) in found.items()}
    try:
        return build(**args)
    except ValueError as err:
        culprit = [found[k][0] for k in found if f" {fields[k]} " in f" {err} "]
        where = f"bad token {culprit[0]!r}: " if culprit else ""
        raise ValueError(f"policy {spec!r}: {where}{err}") from None


def _rand(magnitude=int(LEVEL_DENOM), num_ops=2, magnitude_std=0.0, increasing=0, **options):
    # timm: a noise above 100 means uniform sampling.
    return rand_augment(magnitude, num_ops, increasing=bool(increasing),
                        magnitude_std=math.inf if magnitude_std > 100 else magnitude_std,
                        **options)


def parse(spec: str, **options: Any) -> Policy | augmix_lib.AugMix:
    """The policy of timm string ``spec`` (see the module docstring); ``options`` are the
    policy's fields (``fuse``, ...). A bad token raises a ValueError that names it."""
    head = spec.split("-")[0]
    if spec == "trivialaugment":
        return trivial_augment_wide(**options)
    if head == "rand":
        kinds = {"m": int, "n": int, "p": float, "mstd": float, "mmax": int, "inc": int}
        fields = {"m": "magnitude", "n": "num_ops", "p": "prob", "mstd": "magnitude_std",
                  "mmax": "magnitude_max", "inc": "increasing"}
        return _build(spec, _tokens(spec, tuple(kinds)), kinds, fields,
                      lambda **args: _rand(**args, **options))
    if head == "augmix":
        kinds = {"m": int, "w": int, "d": int, "a": float, "b": int}
        fields = {"m": "severity", "w": "width", "d": "depth", "a": "alpha", "b": "blended"}

        def build(blended=0, **args):
            del blended  # the same mix in float (module docstring)
            return augmix_lib.augmix(**args, all_ops=True, **options)
        return _build(spec, _tokens(spec, tuple(kinds)), kinds, fields, build)
    raise ValueError(f"policy {spec!r}: not a timm string (rand-..., augmix-..., "
                     "trivialaugment)")
