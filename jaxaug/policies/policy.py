"""Policies as pure callables ``(key, img) -> img``: AutoAugment, RandAugment, TrivialAugment.

A :class:`Policy` samples, per image, the T steps of a sub-policy as arrays (op index,
parameter value, applied flag) from constant tables built at trace time with
:func:`jaxaug.policies.levels.level_to_arg`, then runs them with
:func:`jaxaug.policies.apply.apply_steps`. Sampling and applying are pure JAX, so a policy
works under ``jit`` and ``vmap`` (batch with ``jax.vmap(policy)(keys, images)``); there is
no per-image Python loop and no ``lax.switch``.

Sampling, per image:

* **AutoAugment** (:func:`autoaugment`): a sub-policy uniformly at random; each of its steps
  applied with its probability; signed ops (rotate, shear, translate) negated with
  probability 1/2.
* **RandAugment** (:func:`randaugment`): ``num_ops`` steps, each op uniform over
  :data:`~jaxaug.policies.tables.RANDAUGMENT_OPS` (with replacement), all at level
  ``magnitude`` on the 0-10 scale of the authors' tensorflow/tpu code, always applied, random
  sign. (torchvision instead spreads its ranges over 31 bins, so its magnitude 9 is weaker.)
* **TrivialAugment-Wide** (:func:`trivial_augment_wide`): one op uniform over
  :data:`~jaxaug.policies.tables.TRIVIAL_AUGMENT_WIDE_OPS` at a level uniform over 0-30,
  always applied, random sign.
* **Random composition** (:func:`random_composition`, the copies of uncertainty-based
  sampling): ``num_ops`` steps, each op uniform over
  :data:`~jaxaug.policies.tables.RANDOM_COMPOSITION_OPS` at a level uniform over 0-10, applied
  with a probability itself drawn from U(0, 1), random sign.

The tables depend on the image size through the translate and cutout constants (see
:mod:`jaxaug.policies.levels`); the size is read from the image's static shape.

:meth:`Policy.apply_with_targets` is the label-aware call: the same image, plus segmentation
masks, keypoints and boxes moved with the image's warps (:func:`jaxaug.ops.warp_targets`).
"""

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxaug import ops
from jaxaug.ops.geometry import Interpolation
from jaxaug.ops.targets import IGNORE_LABEL
from jaxaug.ops.validate import check_image
from jaxaug.policies import apply, levels, tables

_PIVOT = {name: 1.0 for name in apply.BLEND_OPS}


@dataclasses.dataclass(frozen=True)
class Policy:
    """A policy: ``sampler(key, image_size) -> (op_index [T], value [T], applied [T])`` over
    the vocabulary ``op_names``, applied by :func:`~jaxaug.policies.apply.apply_steps` with
    the schedule options ``fuse``, ``interpolation``, ``fill``, ``straight_through``.
    ``hparams``: ``(name, value)`` pairs of the settings a constructor was given, for
    inspection (timm strings record theirs, :mod:`jaxaug.policies.timm`)."""

    name: str
    op_names: tuple[str, ...]
    sampler: Callable[[jax.Array, int], tuple[jax.Array, jax.Array, jax.Array]]
    fuse: bool = True
    interpolation: Interpolation = "nearest"
    fill: float = apply.GREY
    straight_through: bool = False
    hparams: tuple[tuple[str, Any], ...] = ()

    def sample(self, key: jax.Array, image_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
        """The sampled steps of one image of side ``image_size``: (op_index, value, applied)."""
        return self.sampler(key, image_size)

    def sample_steps(self, key: jax.Array, image_shape: tuple[int, ...]) -> dict[str, jax.Array]:
        """Every random choice ``self(key, img)`` makes for an image of shape ``image_shape``
        (static; [H, W] or [H, W, C]): {"op_index", "value", "applied"} ([T] each, `sample` on
        the first half of ``key``) and, if the vocabulary has cutout, "cutout_center" (int
        [T, 2], :func:`~jaxaug.policies.apply.cutout_centers` of the second half).
        ``self(key, img)`` is ``self.apply_sampled(img, self.sample_steps(key, img.shape))``,
        bit for bit; `jaxaug.data.host_augment` replays the same steps with Pillow."""
        height, width = image_shape[:2]
        sample_key, apply_key = jax.random.split(key)
        op_index, value, applied = self.sample(sample_key, max(height, width))
        steps = {"op_index": op_index, "value": value, "applied": applied}
        if "cutout" in self.op_names:
            steps["cutout_center"] = apply.cutout_centers(apply_key, op_index.shape[0], height,
                                                          width)
        return steps

    def apply_sampled(self, img: jax.Array, steps: dict[str, jax.Array]) -> jax.Array:
        """Apply the steps of :meth:`sample_steps` to one float image [H, W, C] in [0, 1]."""
        check_image(self.name, img)
        return apply.apply_steps(
            None, img, steps["op_index"], steps["value"], steps["applied"],
            op_names=self.op_names, fuse=self.fuse, interpolation=self.interpolation,
            fill=self.fill, straight_through=self.straight_through,
            cutout_center=steps.get("cutout_center"))

    def _steps(self, key, img):
        check_image(self.name, img)
        steps = self.sample_steps(key, img.shape)
        return self.apply_sampled(img, steps), (steps["op_index"], steps["value"],
                                                steps["applied"])

    def __call__(self, key: jax.Array, img: jax.Array) -> jax.Array:
        """Augment one float image [H, W, C] in [0, 1]."""
        return self._steps(key, img)[0]

    def apply_with_targets(self, key: jax.Array, img: jax.Array, *,
                           mask: jax.Array | None = None, keypoints: jax.Array | None = None,
                           boxes: jax.Array | None = None,
                           ignore_label: int | jax.Array = IGNORE_LABEL
                           ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Augment one image and move its labels with it: returns (image, targets).

        The image is exactly ``self(key, img)`` (the same draws, bit for bit). The labels move
        with the sampled steps' matrices (`apply.step_matrices`, those of the image's warps)
        through :func:`jaxaug.ops.warp_targets`: ``mask`` int [H, W] or [H, W, 1] (nearest at
        the image's sample points, ``ignore_label`` where the image gets ``fill``),
        ``keypoints`` [K, 2] and ``boxes`` [N, 4] (x0, y0, x1, y1) in the ops' pixel
        coordinates (pixel centres at +1/2). ``targets`` holds "mask", "keypoints" and
        "visible", "boxes" and "box_valid" for those given (see warp_targets). Colour, point
        and cutout steps leave the labels alone (cutout greys pixels but keeps their labels).
        With ``fuse=True`` and nearest sampling the image's points snap to pixel centres
        between warps and the mask's with them, while keypoints and boxes follow the exact
        composed map, so the image may lag them by up to 1/2 px per intermediate warp.
        """
        out, (op_index, value, applied) = self._steps(key, img)
        h, w, _ = img.shape
        matrices = apply.step_matrices(op_index, value, applied, op_names=self.op_names,
                                       height=h, width=w)
        # fuse=False resamples once per step: the mask is then a nearest warp per step.
        targets = ops.warp_targets(
            matrices, h, w, mask=mask, keypoints=keypoints, boxes=boxes,
            ignore_label=ignore_label, interpolation=self.interpolation if self.fuse else "nearest")
        return out, targets

    def replace(self, **changes: Any) -> "Policy":
        """A copy with some fields changed, e.g. ``policy.replace(fuse=False)``."""
        return dataclasses.replace(self, **changes)


def _signed_values(key, op_index, value, op_names, variant):
    """Negate (reflect about the identity point) each signed step's value with probability 1/2."""
    signed = jnp.asarray([levels.is_signed(n, variant=variant) for n in op_names])[op_index]
    pivot = jnp.asarray([_PIVOT.get(n, 0.0) for n in op_names], jnp.float32)[op_index]
    negate = jax.random.bernoulli(key, 0.5, op_index.shape) & signed
    return jnp.where(negate, 2.0 * pivot - value, value)


def _value_table(op_names, level_range, image_size, variant):
    """[num_ops, num_levels] float32 parameters (positive sign); 0 for magnitude-free ops."""
    def arg(name, level):
        v = levels.level_to_arg(name, level, image_size=image_size, variant=variant)
        return 0.0 if v is None else float(v)
    return np.asarray([[arg(n, lv) for lv in level_range] for n in op_names], np.float32)


def _padded(policy):
    """Sub-policies padded to equal length with steps that are never applied, and the
    vocabulary in order of first use."""
    width = max(len(sub) for sub in policy)
    padded = [list(sub) + [("identity", 0.0, 0)] * (width - len(sub)) for sub in policy]
    return padded, tuple(dict.fromkeys(op for sub in padded for op, _, _ in sub))


@functools.lru_cache(maxsize=64)
def _autoaugment_tables(policy, image_size):
    padded, vocabulary = _padded(policy)
    ops = np.asarray([[vocabulary.index(op) for op, _, _ in sub] for sub in padded], np.int32)
    probs = np.asarray([[p for _, p, _ in sub] for sub in padded], np.float32)
    values = np.asarray(
        [[_value_table((op,), (lv,), image_size, "autoaugment")[0, 0] for op, _, lv in sub]
         for sub in padded], np.float32)
    return ops, probs, values


def autoaugment(policy: str | tables.PolicyTable = "cifar10", **options: Any) -> Policy:
    """The AutoAugment policy ``policy``: ``"cifar10"``, ``"svhn"``, ``"imagenet"`` or a
    table of sub-policies ``((op_name, probability, level), ...)`` (see
    :mod:`jaxaug.policies.tables`). ``options`` are :class:`Policy` fields (``fuse``, ...)."""
    name = f"autoaugment_{policy}" if isinstance(policy, str) else "autoaugment_custom"
    if isinstance(policy, str):
        if name not in tables.POLICIES:
            raise ValueError(f"unknown AutoAugment policy {policy!r}; valid: cifar10, svhn, "
                             "imagenet, or a table of sub-policies")
        policy = tables.POLICIES[name]
    tables.validate_policy(policy)
    policy = tuple(tuple(tuple(step) for step in sub) for sub in policy)
    vocabulary = apply.check_vocabulary(_padded(policy)[1])

    def sampler(key, image_size):
        ops, probs, values = _autoaugment_tables(policy, image_size)
        sub_key, apply_key, sign_key = jax.random.split(key, 3)
        sub = jax.random.randint(sub_key, (), 0, ops.shape[0])
        op_index = jnp.asarray(ops)[sub]
        applied = jax.random.uniform(apply_key, op_index.shape) < jnp.asarray(probs)[sub]
        value = _signed_values(sign_key, op_index, jnp.asarray(values)[sub], vocabulary,
                               "autoaugment")
        return op_index, value, applied

    return Policy(name, vocabulary, sampler, **options)


def _uniform_ops_sampler(op_names, num_steps, level_range, variant, random_probability=False):
    """num_steps ops uniform over op_names, each at a level uniform over level_range; each
    applied, or with ``random_probability`` applied with a probability drawn from U(0, 1)."""
    def sampler(key, image_size):
        values = jnp.asarray(_value_table(op_names, level_range, image_size, variant))
        op_key, level_key, sign_key = jax.random.split(key, 3)
        op_index = jax.random.randint(op_key, (num_steps,), 0, len(op_names))
        level = jax.random.randint(level_key, (num_steps,), 0, len(level_range))
        value = _signed_values(sign_key, op_index, values[op_index, level], op_names, variant)
        if not random_probability:
            return op_index, value, jnp.ones((num_steps,), bool)
        prob_key, coin_key = jax.random.split(jax.random.fold_in(key, 1))
        probability = jax.random.uniform(prob_key, (num_steps,))
        return op_index, value, jax.random.uniform(coin_key, (num_steps,)) < probability
    return sampler


def _check_int(fn, arg, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{fn}: {arg} {value!r} is not an integer in [{lo}, {hi}]")


def randaugment(num_ops: int = 2, magnitude: int = 9, **options: Any) -> Policy:
    """RandAugment(N=num_ops, M=magnitude): ``num_ops`` uniformly drawn ops at level
    ``magnitude`` (0-10)."""
    _check_int("randaugment", "num_ops", num_ops, 1, 100)
    _check_int("randaugment", "magnitude", magnitude, tables.MIN_LEVEL, tables.MAX_LEVEL)
    sampler = _uniform_ops_sampler(tables.RANDAUGMENT_OPS, num_ops, (magnitude,), "randaugment")
    return Policy(f"randaugment_{num_ops}_{magnitude}", tables.RANDAUGMENT_OPS, sampler,
                  **options)


def random_composition(num_ops: int = 2, **options: Any) -> Policy:
    """The copies of uncertainty-based sampling (Wu et al. 2020, from the authors' code,
    ``dauphin/image/augment_policy.py``): ``num_ops`` ops uniform over
    :data:`~jaxaug.policies.tables.RANDOM_COMPOSITION_OPS` (with replacement), each applied with
    a probability p ~ U(0, 1) drawn per step (so with probability 1/2 overall) at a level
    uniform over 0-10, random sign, on AutoAugment's CIFAR ranges. The authors draw the level
    from [0, 1] in steps of 0.001 on ranges that are AutoAugment's except two: Posterize keeps
    ``int(4 * level)`` bits (here ``4 - int(4 * level / 10)`` of a level 0-10) and the in-policy
    Cutout's side is at most 16 px on CIFAR (here 20)."""
    _check_int("random_composition", "num_ops", num_ops, 1, 100)
    sampler = _uniform_ops_sampler(tables.RANDOM_COMPOSITION_OPS, num_ops,
                                   tuple(range(tables.MAX_LEVEL + 1)), "autoaugment",
                                   random_probability=True)
    return Policy(f"random_composition_{num_ops}", tables.RANDOM_COMPOSITION_OPS, sampler,
                  **options)


def trivial_augment_wide(**options: Any) -> Policy:
    """TrivialAugment-Wide: one uniformly drawn op at a uniformly drawn level 0-30."""
    top = levels.VARIANT_MAX_LEVEL["trivialaugment_wide"]
    sampler = _uniform_ops_sampler(tables.TRIVIAL_AUGMENT_WIDE_OPS, 1, tuple(range(top + 1)),
                                   "trivialaugment_wide")
    return Policy("trivial_augment_wide", tables.TRIVIAL_AUGMENT_WIDE_OPS, sampler, **options)


def apply_actions(key: jax.Array, img: jax.Array, actions: jax.Array, *, op_names: Sequence[str],
                  variant: str = "autoaugment", **options: Any) -> jax.Array:
    """Apply actions of a :class:`~jaxaug.policies.distribution.PolicyDistribution` (int
    ``[T, 2]`` rows of (op index into ``op_names``, level)) to one image, every step applied,
    signed ops with a random sign. ``options``: ``fuse``, ``interpolation``, ``fill``,
    ``straight_through``, ``partner`` (the image ``sample_pairing`` blends with). Levels range
    over the variant's scale (0-10, or 0-30 for ``trivialaugment_wide``)."""
    check_image("apply_actions", img)
    op_names = apply.check_vocabulary(tuple(op_names),
                                      has_partner=options.get("partner") is not None)
    level_range = tuple(range(levels.VARIANT_MAX_LEVEL[variant] + 1))
    values = jnp.asarray(_value_table(op_names, level_range, max(img.shape[:2]), variant))
    sign_key, apply_key = jax.random.split(key)
    op_index, level = actions[:, 0], actions[:, 1]
    value = _signed_values(sign_key, op_index, values[op_index, level], op_names, variant)
    applied = jnp.ones(op_index.shape, bool)
    return apply.apply_steps(apply_key, img, op_index, value, applied, op_names=op_names,
                             **options)


#: Policy constructors by name, for configs; :func:`get` also takes timm's strings.
POLICY_NAMES = ("autoaugment_cifar10", "autoaugment_svhn", "autoaugment_imagenet",
                "randaugment", "trivial_augment_wide", "augmix", "random_composition")


#: :func:`get`'s prefix of a policy table stored as JSON.
TABLE_PREFIX = "table:"


def load_table(path: str) -> tables.PolicyTable:
    """The policy table in the JSON file ``path`` (sub-policies of ``[op, probability,
    level]`` steps), validated (:func:`jaxaug.policies.validate_policy`)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"policy table {path!r}: cannot read it as JSON: {e}") from None
    if not isinstance(data, list):
        raise ValueError(f"policy table {path!r}: expected a list of sub-policies")
    table = tuple(tuple(tuple(step) if isinstance(step, list) else step for step in sub)
                  if isinstance(sub, list) else sub for sub in data)
    try:
        return tables.validate_policy(table)
    except ValueError as e:
        raise ValueError(f"policy table {path!r}: {e}") from None


def write_table(table: tables.PolicyTable, path: str) -> None:
    """``table`` (sub-policies of ``(op, probability, level)`` steps) as JSON at ``path``, what
    :func:`load_table` reads, validated first and written atomically (a temporary file renamed)."""
    from jaxaug.data.atomic import write_text_atomic  # jaxaug.data imports this package

    table = tables.validate_policy(table)
    write_text_atomic(path, json.dumps([[list(step) for step in sub] for sub in table], indent=1))


def get(name: str, *, num_ops: int = 2, magnitude: int = 9, **options: Any) -> Callable:
    """The policy called ``name``: one of :data:`POLICY_NAMES` (``num_ops`` and ``magnitude``
    are RandAugment's, ``num_ops`` also random_composition's; ``"augmix"`` is :func:`~jaxaug.policies.augmix_policy.augmix` at its
    defaults) or a timm string such as ``"rand-m9-n2-mstd0.5-inc1"``, ``"augmix-m5-w4-d2"`` or
    ``"trivialaugment"`` (:func:`jaxaug.policies.timm.parse`, which names a bad token), or
    ``"table:<path>"``, an AutoAugment table stored as JSON (``[[[op, probability, level],
    ...], ...]``, as ``python -m jaxaug.policies.export`` writes a searched policy), run by
    :func:`autoaugment`. ``options`` are the policy's fields (``fuse``, ...)."""
    # Imported here: both modules build on this one.
    from jaxaug.policies import augmix_policy, timm
    if name.startswith("autoaugment_") and name in POLICY_NAMES:
        return autoaugment(name.removeprefix("autoaugment_"), **options)
    if name == "randaugment":
        return randaugment(num_ops, magnitude, **options)
    if name == "trivial_augment_wide":
        return trivial_augment_wide(**options)
    if name == "random_composition":
        return random_composition(num_ops, **options)
    if name == "augmix":
        return augmix_policy.augmix(**options)
    if timm.is_timm_string(name):
        return timm.parse(name, **options)
    if name.startswith(TABLE_PREFIX):
        return autoaugment(load_table(name.removeprefix(TABLE_PREFIX)), **options)
    raise ValueError(f"unknown policy {name!r}; valid policies are: {', '.join(POLICY_NAMES)}, "
                     "a timm string (rand-m9-n2-mstd0.5, augmix-m3-w3, trivialaugment) or "
                     "table:<path of a JSON policy table>")


def same_on_batch(policy: Callable[[jax.Array, jax.Array], jax.Array]
                  ) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(key, images [B, H, W, C]) -> images``: ``policy`` with one draw of its random choices
    (ops, levels, signs, probabilities, Cutout centres, AugMix's chains and weights) shared by
    every image of the batch. A policy is a pure function of its key and image, so this is the
    policy with the same key for every image; what depends on the image itself (auto_contrast's
    and equalize's histograms, contrast's mean) stays per image. For
    `jaxaug.data.augment.standard`, which gives each image its own key, call this on the batch
    instead of passing ``policy=``."""
    def batched(key, images):
        return jax.vmap(policy, in_axes=(None, 0))(key, images)
    return batched
