"""Keypoint training: CU-Net or the stacked hourglass (full precision or quantized) on heatmaps,
data-parallel over every device, evaluated by PCKh (or NME for face landmarks) every epoch.

Like `train_and_evaluate`, the run is a pure function of its config: batch order comes from
``(seed, epoch)`` and the step's randomness from ``(seed, state.step)``, so a resumed run replays
an uninterrupted one. SIGTERM or Ctrl-C saves a checkpoint and stops.
"""

import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from jaxaug import data, models
from jaxaug.data import keypoint_formats, keypoint_synthetic
from jaxaug.data.dataset import channel_stats
from jaxaug.generators import PoseAdversary
from jaxaug.methods.adversarial_pose import adversarial_pose
from jaxaug.methods.base import StagedMethod
from jaxaug.methods.pose import heatmap_regression
from jaxaug.train.checkpoint import Checkpointer, resume
from jaxaug.train.lock import workdir_lock
from jaxaug.train.loop import (
    StopRequest,
    check_config_for_resume,
    mean_metrics,
    round_up,
)
from jaxaug.train.mesh import (
    batch_sharding,
    make_mesh,
    maybe_initialize_distributed,
    replicated,
)
from jaxaug.train.metrics_writer import MetricsWriter, write_json_atomic
from jaxaug.train.pose_config import stage_schedule, validate_pose


def load_keypoints(config: ml_collections.ConfigDict):
    """(train, test) `KeypointData` named by ``config.dataset``:

    - ``synthetic``: procedural articulated figures (`jaxaug.data.keypoint_synthetic`);
    - ``mpii:<mpii_human_pose_v1_u12_1.mat>``, ``lsp:<dir>``, ``300w:<dir>``: the real sets in
      their release formats (`jaxaug.data.keypoint_formats`; MPII needs a held-out image list
      for its test split, which the loader documents, so it is read from ``<dir>/holdout.txt``).
    """
    name, size = config.dataset, config.image_size
    if name == "synthetic":
        return (keypoint_synthetic.load("train", num=config.train_size, size=size),
                keypoint_synthetic.load("test", num=config.test_size, size=size))
    kind, _, path = name.partition(":")
    if kind == "mpii" and path:
        holdout_file = os.path.join(os.path.dirname(path), "holdout.txt")
        if not os.path.exists(holdout_file):
            raise data.SplitNotFoundError(
                f"mpii: {holdout_file} is missing; list the held-out image names there, one per "
                "line (MPII publishes joints for its training images only)")
        with open(holdout_file) as f:
            holdout = {line.strip() for line in f if line.strip()}
        return tuple(keypoint_formats.load_mpii(path, split=split, size=size, holdout=holdout)
                     for split in ("train", "test"))
    loaders = {"lsp": keypoint_formats.load_lsp, "300w": keypoint_formats.load_300w}
    if kind not in loaders or not path:
        raise data.UnknownDatasetError(
            f"unknown keypoint dataset {name!r}; use synthetic, mpii:<annotation .mat>, "
            "lsp:<dir> or 300w:<dir>")
    return tuple(loaders[kind](path, split=split, size=size) for split in ("train", "test"))


def metric_sums(pred, gt, visible, norm, mask, metric, threshold):
    """Per-batch sums of the metric, padding masked out: correct and counted visible joints for
    PCK / PCKh, or the per-image NME and the image count."""
    dist = jnp.linalg.norm(pred - gt, axis=-1)
    if metric == "nme":
        per_image = jnp.mean(dist, axis=-1) / norm
        return {"value": jnp.sum(per_image * mask), "count": jnp.sum(mask)}
    counted = visible & (mask[:, None] > 0)
    hits = (dist <= threshold * norm[:, None]) & counted
    return {"value": jnp.sum(hits).astype(jnp.float32), "count": jnp.sum(counted).astype(jnp.float32)}


def _arrays(keypoint_set) -> dict[str, np.ndarray]:
    """The per-example arrays that go to the device."""
    return {"image": keypoint_set.images, "joints": keypoint_set.joints.astype(np.float32),
            "visible": keypoint_set.visible.astype(bool), "norm": keypoint_set.norm.astype(np.float32)}


def create_pose_model(config, num_joints: int):
    """The config's pose model, built from its section (``config.cunet`` / ``config.hourglass``)."""
    kwargs = dict(config[config.model])
    return models.create_pose_model(config.model, num_joints, quant=config.quant, **kwargs)


def create_pose_method(config, model, image_shape, mean, std, flip_pairs) -> StagedMethod:
    """The config's method as stages: heatmap_regression has the single stage "pose";
    adversarial_pose has "pose", "pretrain" and "joint" (see `stage_schedule`)."""
    optimizer = optax.rmsprop(config.optimizer.lr, decay=config.optimizer.decay,
                              eps=config.optimizer.eps)
    a = config.augment
    common = {"image_shape": image_shape, "mean": mean, "std": std, "flip_pairs": flip_pairs,
              "sigma": config.heatmap_sigma, "scale_range": (a.scale_min, a.scale_max),
              "max_rotation": a.max_rotation, "flip_prob": a.flip_prob}
    if config.method == "heatmap_regression":
        method = heatmap_regression(model, optimizer, **common)
        return StagedMethod(init=method.init, steps={"pose": method.step},
                            predict=method.predict)
    g = config.adversarial

    def adversary_rmsprop(lr):
        return optax.rmsprop(lr, decay=config.optimizer.decay, eps=config.optimizer.eps)

    adversary = PoseAdversary(width=g.width, num_scales=g.num_scales,
                              num_rotations=g.num_rotations, grid=g.grid)
    return adversarial_pose(
        model, optimizer, adversary, adversary_optimizer=adversary_rmsprop(g.lr),
        pretrain_optimizer=adversary_rmsprop(g.pretrain_lr),
        asr_scale_range=(g.scale_min, g.scale_max), asr_max_rotation=g.max_rotation,
        sigma_fraction=g.sigma_fraction, alpha=g.alpha, beta=g.beta, max_cells=g.max_cells,
        **common)


def train_pose(config: ml_collections.ConfigDict, workdir: str,
               step_callback: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Trains ``config.model`` on ``config.dataset`` with ``config.method``, stage by stage;
    writes ``metrics.jsonl``, checkpoints and ``summary.json`` (last and best test PCKh / PCK,
    or NME for 300-W) under ``workdir``. ``step_callback`` is called with the global step after
    every train step."""
    start_time = time.perf_counter()
    maybe_initialize_distributed(config)
    mesh = make_mesh()
    validate_pose(config, mesh.size)
    is_main = jax.process_index() == 0

    train_set, test_set = load_keypoints(config)
    train, test = _arrays(train_set), _arrays(test_set)
    num_joints = train["joints"].shape[1]
    mean, std = channel_stats(train["image"])
    model = create_pose_model(config, num_joints)
    method = create_pose_method(config, model, train["image"].shape[1:], mean, std,
                                train_set.flip_pairs)
    schedule = stage_schedule(config)
    stage_of_epoch = [name for name, epochs in schedule for _ in range(epochs)]

    rep, shard = replicated(mesh), batch_sharding(mesh)
    train_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    metric = test_set.metric

    def stage_step(name):
        def train_step(state, batch):
            return method.steps[name](state, batch, jax.random.fold_in(train_key, state.step))
        # Compiled on first use, so a run only compiles the stages it reaches.
        return jax.jit(train_step, in_shardings=(rep, shard), out_shardings=(rep, rep),
                       donate_argnums=0)

    def eval_step(state, batch):
        images = (batch["image"].astype(jnp.float32) / 255.0 - mean) / std
        joints, _ = method.predict(state, images)
        return metric_sums(joints, batch["joints"], batch["visible"], batch["norm"],
                            batch["mask"], metric, config.pck_threshold)

    init = jax.jit(method.init, out_shardings=rep)
    train_steps = {name: stage_step(name) for name, _ in schedule}
    eval_step = jax.jit(eval_step, in_shardings=(rep, shard), out_shardings=rep)

    steps_per_epoch = data.steps_per_epoch(len(train["image"]), config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    state = init(jax.random.fold_in(jax.random.key(config.seed), 0), None)
    meta = {"elapsed_s": 0.0, "evals": []}
    # Written only now: a config, model, method or dataset that fails above leaves no trace.
    os.makedirs(workdir, exist_ok=True)
    with workdir_lock(workdir) if is_main else contextlib.nullcontext():
        check_config_for_resume(workdir, config, is_main)
        checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint.keep)
        state, meta = resume(checkpointer, state, meta, config.checkpoint.enabled, workdir)
        step = int(jax.device_get(state.step))
        writer = MetricsWriter(workdir, tensorboard=config.tensorboard, enabled=is_main,
                               resume_step=step)
        logging.info("%s %s (%s) on %s: %d train / %d test, %d joints, %d steps/epoch, %d devices; "
                     "stages %s.", config.method, config.model, config.quant, config.dataset,
                     len(train["image"]), len(test["image"]), num_joints, steps_per_epoch, mesh.size,
                     schedule)
        segment_start, elapsed_before, interrupted = time.perf_counter(), meta["elapsed_s"], False
        try:
            with StopRequest() as stop:
                while step < total_steps and not interrupted:
                    epoch, start_batch = divmod(step, steps_per_epoch)
                    stage = stage_of_epoch[epoch]
                    batches = data.array_epoch_batches(
                        {k: v for k, v in train.items() if k != "norm"}, config.batch_size,
                        seed=config.seed, epoch=epoch, start_batch=start_batch,
                        process_index=jax.process_index(), process_count=jax.process_count())
                    window, epoch_metrics = [], []
                    for batch in data.prefetch_to_mesh(batches, shard):
                        state, metrics = train_steps[stage](state, batch)
                        step += 1
                        window.append(metrics)
                        if step_callback is not None:
                            step_callback(step)
                        if len(window) == config.log_every_steps or step % steps_per_epoch == 0:
                            window = jax.device_get(window)
                            epoch_metrics += window
                            writer.write(step, "train", mean_metrics(window))
                            window = []
                        if stop.requested:
                            interrupted = True
                            break
                    meta["elapsed_s"] = elapsed_before + time.perf_counter() - segment_start
                    if interrupted:
                        break
                    score = _evaluate(eval_step, state, test, config, shard)
                    record = {"epoch": epoch + 1, "stage": stage, "step": step,
                              f"test_{metric}": score}
                    if epoch_metrics:
                        record.update({f"train_{k}": v
                                       for k, v in mean_metrics(epoch_metrics).items()})
                    writer.write(step, "test", {metric: score})
                    logging.info("epoch %d: %s", epoch + 1, record)
                    meta = {**meta, "evals": meta["evals"] + [record]}
                    if config.checkpoint.enabled:
                        checkpointer.save(step, state, meta, score=-score if metric == "nme" else score)
                if interrupted and config.checkpoint.enabled:
                    checkpointer.save(step, state, meta)
        finally:
            checkpointer.close()
            writer.close()
        summary = {"method": config.method, "model": config.model, "quant": config.quant,
                   "dataset": config.dataset,
                   "devices": jax.device_count(), "device_kind": jax.devices()[0].device_kind,
                   "step": step, "interrupted": interrupted, "metric": metric,
                   "wall_time_s": meta["elapsed_s"],
                   "this_session_wall_time_s": time.perf_counter() - start_time}
        scores = [e[f"test_{metric}"] for e in meta["evals"]]
        if scores:
            summary[f"last_test_{metric}"] = scores[-1]
            summary[f"best_test_{metric}"] = min(scores) if metric == "nme" else max(scores)
        if is_main:
            write_json_atomic(os.path.join(workdir, "summary.json"), summary)
        logging.info("Summary: %s", summary)
        return summary


def _evaluate(eval_step, state, arrays, config, shard) -> float:
    """PCK(h) over every visible joint of the test set, or the mean NME over its images."""
    batch_size = round_up(config.eval_batch_size, shard.mesh.size)
    batches = data.array_eval_batches(arrays, batch_size, process_index=jax.process_index(),
                                      process_count=jax.process_count())
    sums = [eval_step(state, batch) for batch in data.prefetch_to_mesh(batches, shard)]
    totals = jax.device_get(sums)
    return float(sum(t["value"] for t in totals) / sum(t["count"] for t in totals))


def load_trained_pose(workdir: str) -> dict[str, Any]:
    """A finished (or interrupted) keypoint run of ``workdir``, from its ``config.json`` and latest
    checkpoint: ``config``, ``model``, ``variables`` ({"params", "batch_stats"} of the pose
    network), ``mean`` / ``std`` (the training normalization), ``test`` (the test `KeypointData`)
    and ``step``. Raises ``FileNotFoundError`` naming what is missing."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} is missing: {workdir!r} is not a training workdir")
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint.keep)
    try:
        latest = checkpointer.latest_step()
        if latest is None:
            raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints")
        train_set, test_set = load_keypoints(config)
        mean, std = channel_stats(train_set.images)
        model = create_pose_model(config, train_set.joints.shape[1])
        method = create_pose_method(config, model, train_set.images.shape[1:], mean, std,
                                    train_set.flip_pairs)
        like = jax.jit(method.init)(jax.random.key(0), None)
        latest, state, _ = checkpointer.restore_newest_intact(like)
    finally:
        checkpointer.close()
    pose = state.pose if hasattr(state, "pose") else state
    return {"config": config, "model": model, "step": latest, "mean": mean, "std": std,
            "test": test_set,
            "variables": {"params": pose.params, "batch_stats": pose.batch_stats}}
