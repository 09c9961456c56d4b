"""The jit-compiled functions of a run, sharded over the data-parallel mesh."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxaug import data
from jaxaug.data import augment, host_augment
from jaxaug.methods.base import ONE_STAGE, UNAUGMENTED, all_finite, keep_if
from jaxaug.ops.point import to_float
from jaxaug.train.config import mixer
from jaxaug.train.mesh import batch_sharding, replicated


class CompiledSteps(NamedTuple):
    init: Callable[[jax.Array], Any]  # key -> replicated state
    train_step: Callable  # (state, uint8 batch) -> (state, metrics); donates state
    eval_step: Callable  # (state, uint8 batch with mask) -> summed correct / loss / count
    augmented_images: Callable  # (uint8 batch, key) -> uint8 images as the network sees them


def augmentation(augment_config, cutout_fill, cutout: bool = True) -> Callable:
    """``(key, uint8 batch) -> batch`` applying ``config.augment``: crop, flip, the named policy
    (if any), Cutout filled with ``cutout_fill`` unless ``cutout`` is False; images in [0, 1] out
    (see ``jaxaug.data.augment.standard``)."""
    return functools.partial(augment.standard,
                             **augment.settings(augment_config, cutout_fill, cutout))


def train_key(seed: int, step) -> jax.Array:
    """The key of training step ``step``: ``fold_in(fold_in(key(seed), 1), step)``, split by
    `preprocessing` into the augmentation key and the method's key."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 1), step)


def augmentation_key(seed: int, step) -> jax.Array:
    """The key `preprocessing` augments step ``step``'s batch with, which the host draws with
    too (``config.augment.where = "host"``, `HostAugmentation`)."""
    return jax.random.split(train_key(seed, step))[0]


class HostAugmentation:
    """The training dataset's transform for ``config.augment.where = "host"``: batch k (this
    process's rows ``offset, ...`` of the global batch) augmented in the input pipeline's
    workers by `jaxaug.data.host_augment`, with the draws the device would make for step k
    (`augmentation_key`). Picklable: grain sends it to its workers, which build the sampler on
    first use."""

    def __init__(self, augment_config, cutout_fill, cutout: bool, seed: int,
                 global_batch_size: int, offset: int):
        self.augment_config = ml_collections.ConfigDict(augment_config)
        self.cutout_fill = np.asarray(cutout_fill, np.float32)
        self.cutout, self.seed = cutout, seed
        self.global_batch_size, self.offset = global_batch_size, offset
        self._augment = None  # built once per process, on first use (it holds jitted code)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_augment": None}

    def __call__(self, k: int, batch: dict) -> dict:
        if self._augment is None:
            self._augment = host_augment.host_augment_fn(self.augment_config, self.cutout_fill,
                                                         self.cutout)
        with jax.default_device(jax.devices("cpu")[0]):
            key = augmentation_key(self.seed, k)
        images = self._augment(key, batch["image"], offset=self.offset,
                               global_batch_size=self.global_batch_size)
        return {**batch, "image": images}


def preprocessing(method, dataset, config) -> Callable:
    """``(uint8 batch, key) -> (batch, step key)``: the standard augmentation of
    ``config.augment`` on the device, before a classification method's step; images in [0, 1],
    Cutout filled with the dataset mean, then MixUp / CutMix when ``config.augment.mixup`` is on
    (labels soft [B, classes] from there). For a method with ``applies_cutout`` the method
    applies the Cutout, after its own policy, so the standard augmentation leaves it out. A
    method with ``unaugmented_input`` also gets the images before that augmentation, as
    ``batch[UNAUGMENTED]`` (sharded as the batch), mixed with the same draws as the batch.

    The images of the method's further streams (``batch["image_<name>"]``, `StagedMethod.streams`)
    get the same standard augmentation with draws of their own, ``fold_in(augment key, 2 + i)``
    for the i-th stream, and no mixing.

    With ``config.augment.where = "host"`` the batch arrives augmented (`HostAugmentation`), so
    only the conversion to [0, 1] and the mixing run here; a method that needs the unaugmented
    images or has further streams then raises a ValueError naming it."""
    # getattr: a duck-typed method object (a notebook's, a test's) may not declare streams.
    streams = [f"image_{name}" for name in getattr(method, "streams", {})]
    if config.augment.where == "host":
        if method.unaugmented_input or streams:
            raise ValueError(
                f"config.augment.where='host' augments the main batch in the input pipeline, but "
                f"method {config.method!r} also needs the unaugmented images or its further "
                "streams augmented on the device; use config.augment.where='device'")
        standard = host_augmented
    else:
        standard = augmentation(config.augment, jnp.asarray(dataset.mean),
                                cutout=not method.applies_cutout)
    mix = mixer(config.augment.mixup, dataset.num_classes)

    def prepare(batch, key):
        augment_key, step_key = jax.random.split(key)
        mix_key = jax.random.fold_in(augment_key, 1)  # a run without mixing draws as before
        augmented = standard(augment_key, batch)
        for i, name in enumerate(streams):
            augmented[name] = standard(jax.random.fold_in(augment_key, 2 + i),
                                       {"image": batch[name]})["image"]
        if mix is not None:
            augmented["image"], augmented["label"] = mix(mix_key, augmented["image"],
                                                         augmented["label"])
        if method.unaugmented_input:
            unaugmented = to_float(batch["image"])
            if mix is not None:  # the same partners, lambdas and boxes: the labels fit it too
                unaugmented, _ = mix(mix_key, unaugmented, batch["label"])
            augmented[UNAUGMENTED] = unaugmented
        return augmented, step_key

    return prepare


def classification_sums(method) -> Callable:
    """``(state, uint8 batch with mask) -> summed correct / loss / count`` of the method's
    predictions on the images, padding masked out."""

    def eval_step(state, batch):
        logits = method.predict(state, to_float(batch["image"]))
        labels = batch["label"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        mask = batch["mask"]
        return {"correct": (correct * mask).sum(), "loss": (losses * mask).sum(), "count": mask.sum()}

    return eval_step


def compile_train_step(step: Callable, prepare: Callable, config, mesh) -> Callable:
    """One stage's ``(state, batch) -> (state, metrics)``, jit-compiled with the batch sharded and
    the state replicated (and donated), guarded by `guard_nonfinite`. Its randomness is
    ``fold_in(key(seed), 1)`` folded with ``state.step``, through ``prepare`` (the task's
    preprocessing), so a run draws the same numbers whatever the device count or the point it
    resumed from."""
    rep, shard = replicated(mesh), batch_sharding(mesh)

    def train_step(state, batch):
        batch, key = prepare(batch, train_key(config.seed, state.step))
        return step(state, batch, key)

    return jax.jit(guard_nonfinite(train_step, config.nonfinite), in_shardings=(rep, shard),
                   out_shardings=(rep, rep), donate_argnums=0)


def compile_steps(method, dataset, config, mesh) -> CompiledSteps:
    """Jit-compiles a one-stage classification method's init and step (after `preprocessing`),
    its evaluation (`classification_sums`) and the images it trains on, with the batch sharded
    and the state replicated."""
    rep, shard = replicated(mesh), batch_sharding(mesh)

    def init(key):
        return method.init(key, example_batch(dataset))

    return CompiledSteps(
        init=jax.jit(init, out_shardings=rep),
        train_step=compile_train_step(method.steps[ONE_STAGE],
                                      preprocessing(method, dataset, config), config, mesh),
        eval_step=jax.jit(classification_sums(method), in_shardings=(rep, shard),
                          out_shardings=rep),
        augmented_images=augmented_images(method, dataset, config),
    )


def example_batch(dataset) -> dict[str, jax.Array]:
    """The one-example batch a classification method's ``init`` gets."""
    return {"image": jnp.zeros((1, *dataset.image_shape), jnp.float32),
            "label": jnp.zeros((1,), jnp.int32)}


def host_augmented(key: jax.Array, batch: dict) -> dict:
    """The device's half of ``augment.where = "host"``: images already augmented, to [0, 1]."""
    del key
    return {**batch, "image": to_float(batch["image"])}


def augmented_images(method, dataset, config) -> Callable:
    """``(uint8 batch, key) -> uint8 images`` as the network sees them after the standard
    augmentation, before MixUp / CutMix (jit-compiled; with ``augment.where = "host"`` the
    batch is the training dataset's, already augmented)."""
    if config.augment.where == "host":
        standard = host_augmented
    else:
        standard = augmentation(config.augment, jnp.asarray(dataset.mean),
                                cutout=not method.applies_cutout)

    def images(batch, key):
        augmented = standard(key, batch)["image"]
        return jnp.clip(jnp.round(augmented * 255), 0, 255).astype(jnp.uint8)

    return jax.jit(images)


def guard_nonfinite(train_step: Callable, mode: str) -> Callable:
    """Adds ``metrics["nonfinite"]`` (1.0 when the step's loss or its new state has a NaN or an
    infinity) to a ``(state, batch) -> (state, metrics)`` step. With ``mode="skip"`` such a step
    keeps the old state (its step counter still advances, so the run's randomness and schedule go
    on); with ``"stop"`` the state is returned as computed and the loop stops the run on the flag."""

    def guarded(state, batch):
        new, metrics = train_step(state, batch)
        # A stage without a "loss" (pre-training an augmentation network) is checked by its state.
        finite = jnp.isfinite(metrics.get("loss", 0.0)) & all_finite(new)
        if mode == "skip":
            new = keep_if(finite, new, state.replace(step=new.step))
        return new, {**metrics, "nonfinite": (~finite).astype(jnp.float32)}

    return guarded


def evaluate_sums(eval_step, state, batches, sharding) -> dict[str, float]:
    """The sums of ``eval_step(state, batch)`` over this process's host ``batches``."""
    # Keep the per-batch sums on the device and fetch them once, so the host never waits for a
    # batch before preparing the next.
    sums = [eval_step(state, batch) for batch in data.prefetch_to_mesh(batches, sharding)]
    return {name: sum(float(s[name]) for s in jax.device_get(sums)) for name in sums[0]}


def evaluate(eval_step, state, source, batch_size: int, sharding) -> dict[str, float]:
    """Accuracy and mean loss over every example of ``source`` (padding masked out)."""
    batches = data.eval_batches(
        source, batch_size, process_index=jax.process_index(), process_count=jax.process_count()
    )
    return accuracy_and_loss(evaluate_sums(eval_step, state, batches, sharding))


def accuracy_and_loss(totals: dict[str, float]) -> dict[str, float]:
    return {"accuracy": totals["correct"] / totals["count"], "loss": totals["loss"] / totals["count"]}
