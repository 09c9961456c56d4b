"""The jit-compiled functions of a run, sharded over the data-parallel mesh."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxaug import data, policies
from jaxaug.data import augment
from jaxaug.methods.base import UNAUGMENTED, all_finite, keep_if
from jaxaug.train.mesh import batch_sharding, replicated


class CompiledSteps(NamedTuple):
    init: Callable[[jax.Array], Any]  # key -> replicated state
    train_step: Callable  # (state, uint8 batch) -> (state, metrics); donates state
    eval_step: Callable  # (state, uint8 batch with mask) -> summed correct / loss / count
    augmented_images: Callable  # (uint8 batch, key) -> uint8 images as the network sees them


def augmentation(augment_config, mean, std, cutout: bool = True) -> Callable:
    """``(key, uint8 batch) -> batch`` applying ``config.augment``: crop, flip, the named policy
    (if any), normalization, Cutout unless ``cutout`` is False (see
    ``jaxaug.data.augment.standard``)."""
    c = augment_config
    policy = policies.get(c.policy, num_ops=c.num_ops, magnitude=c.magnitude) if c.policy else None
    return functools.partial(augment.standard, mean=mean, std=std, pad=c.pad, flip=c.flip,
                             cutout=c.cutout if cutout else 0, policy=policy)


def compile_steps(method, dataset, config, mesh) -> CompiledSteps:
    """Jit-compiles a method's init and step with the batch sharded and the state replicated.

    The train step applies the standard augmentation of ``config.augment`` on the device, then the
    method's step; for a method with ``applies_cutout`` the method applies the Cutout, after its
    own policy, so the standard augmentation (and ``augmented_images``) leave it out. A
    method with ``unaugmented_input`` also gets the normalized images before that augmentation,
    as ``batch[UNAUGMENTED]`` (sharded as the batch). Its randomness is ``fold_in(key(seed), 1)``
    folded with ``state.step``, so a run draws the same numbers whatever the device count or the
    point it resumed from.
    """
    rep, shard = replicated(mesh), batch_sharding(mesh)
    train_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    mean, std = jnp.asarray(dataset.mean), jnp.asarray(dataset.std)
    standard = augmentation(config.augment, mean, std, cutout=not method.applies_cutout)

    def init(key):
        images = jnp.zeros((1, *dataset.image_shape), jnp.float32)
        return method.init(key, {"image": images, "label": jnp.zeros((1,), jnp.int32)})

    def train_step(state, batch):
        key = jax.random.fold_in(train_key, state.step)
        augment_key, step_key = jax.random.split(key)
        augmented = standard(augment_key, batch)
        if method.unaugmented_input:
            augmented[UNAUGMENTED] = augment.normalize(batch["image"], mean, std)
        return method.step(state, augmented, step_key)

    def eval_step(state, batch):
        logits = method.predict(state, augment.normalize(batch["image"], mean, std))
        labels = batch["label"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        mask = batch["mask"]
        return {"correct": (correct * mask).sum(), "loss": (losses * mask).sum(), "count": mask.sum()}

    def augmented_images(batch, key):
        images = standard(key, batch)["image"]
        return jnp.clip(jnp.round((images * std + mean) * 255), 0, 255).astype(jnp.uint8)

    return CompiledSteps(
        init=jax.jit(init, out_shardings=rep),
        train_step=jax.jit(guard_nonfinite(train_step, config.nonfinite), in_shardings=(rep, shard),
                           out_shardings=(rep, rep), donate_argnums=0),
        eval_step=jax.jit(eval_step, in_shardings=(rep, shard), out_shardings=rep),
        augmented_images=jax.jit(augmented_images),
    )


def guard_nonfinite(train_step: Callable, mode: str) -> Callable:
    """Adds ``metrics["nonfinite"]`` (1.0 when the step's loss or its new state has a NaN or an
    infinity) to a ``(state, batch) -> (state, metrics)`` step. With ``mode="skip"`` such a step
    keeps the old state (its step counter still advances, so the run's randomness and schedule go
    on); with ``"stop"`` the state is returned as computed and the loop stops the run on the flag."""

    def guarded(state, batch):
        new, metrics = train_step(state, batch)
        finite = jnp.isfinite(metrics["loss"]) & all_finite(new)
        if mode == "skip":
            new = keep_if(finite, new, state.replace(step=new.step))
        return new, {**metrics, "nonfinite": (~finite).astype(jnp.float32)}

    return guarded


def evaluate(eval_step, state, source, batch_size: int, sharding) -> dict[str, float]:
    """Accuracy and mean loss over every example of ``source`` (padding masked out)."""
    batches = data.eval_batches(
        source, batch_size, process_index=jax.process_index(), process_count=jax.process_count()
    )
    # Keep the per-batch sums on the device and fetch them once, so the host never waits for a
    # batch before preparing the next.
    sums = [eval_step(state, batch) for batch in data.prefetch_to_mesh(batches, sharding)]
    totals = {name: sum(float(s[name]) for s in jax.device_get(sums)) for name in sums[0]}
    return {"accuracy": totals["correct"] / totals["count"], "loss": totals["loss"] / totals["count"]}
