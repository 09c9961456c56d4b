"""The training loop: any method (`Method` or `StagedMethod`) on any task (`jaxaug.train.task`:
classification or keypoints), stage by stage, data-parallel over every device.

The run is a pure function of its config: batch order comes from ``(seed, epoch)`` and every random
draw inside the step from ``(seed, state.step)``. Resuming from a checkpoint therefore replays what an
uninterrupted run would have done, and SIGTERM or Ctrl-C only has to save the state and stop.
"""

import contextlib
import functools
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from tqdm import tqdm

from jaxaug import data, methods
from jaxaug.train import config as config_lib
from jaxaug.train import distributed
from jaxaug.train import task as task_lib
from jaxaug.train.checkpoint import Checkpointer, resume
from jaxaug.train.lock import workdir_lock
from jaxaug.train.mesh import batch_sharding, make_mesh, maybe_initialize_distributed, replicated
from jaxaug.train.metrics_writer import MetricsWriter, write_json_atomic
from jaxaug.train.steps import compile_train_step, evaluate_sums


class StopRequest:
    """Set by SIGTERM or SIGINT (Ctrl-C); the loop checks it after every step (`_stop_agreed`),
    then saves a checkpoint and stops. A second Ctrl-C gets Python's own handler back:
    KeyboardInterrupt, no save."""

    _SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        # Signal handlers can only be installed from the main thread.
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self._SIGNALS}
        return self

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, self._previous[signal.SIGINT])
            logging.warning("SIGINT received: saving a checkpoint and stopping "
                            "(Ctrl-C again to stop without saving).")
        else:
            logging.warning("%s received: saving a checkpoint and stopping.", name)
        self.requested = True

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _stop_agreed(stop: StopRequest, step: int, steps_per_epoch: int, config) -> bool:
    """Whether the run stops after ``step``. One process stops on its own request at once. The
    processes of a multi-process run decide together, every
    ``config.distributed.stop_check_every_steps`` steps and at the end of every epoch (a schedule
    of the global step, the same in each), stopping when any of them was signalled: saving a
    checkpoint and training are collectives, so a process that stopped alone would leave the others
    waiting in the next step, and itself in the save, forever."""
    if jax.process_count() == 1:
        return stop.requested
    if step % config.distributed.stop_check_every_steps and step % steps_per_epoch:
        return False
    return distributed.any_process(stop.requested)


def check_config_for_resume(workdir: str, config: ml_collections.ConfigDict, is_main: bool) -> None:
    """Refuses to resume a workdir with a different config, which would break resume equality.

    Every process compares (run-control fields, the per-process ``distributed`` settings among
    them, may differ: `config_lib.RUN_CONTROL_FIELDS`); only the main one writes. Only a
    checkpoint makes a run to resume: a ``config.json`` without one (a run that failed
    before its first save) is overwritten, so fixing a typo and rerunning the command works."""
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json())
    if os.path.exists(path) and has_checkpoint(workdir):
        with open(path) as f:
            previous = json.load(f)
        changed = config_lib.changed_fields(previous, current)
        if changed:
            raise ValueError(
                f"Workdir {workdir!r} holds a run with a different config (fields {changed}); "
                "use a new --workdir or restore the original values."
            )
    if is_main:
        write_json_atomic(path, current)


def has_checkpoint(workdir: str) -> bool:
    """Whether ``workdir/checkpoints`` holds a finished checkpoint (Orbax names them by step;
    unfinished ones carry a temporary suffix)."""
    directory = os.path.join(workdir, "checkpoints")
    return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def build(config: ml_collections.ConfigDict, task: "str | task_lib.Task | None" = None,
          method: Any = None):
    """The run's task and method: ``(task, method, context, stages)``. ``method`` is a `Method` /
    `StagedMethod`, a callable ``(Context) -> method``, or None for ``config.method`` from the
    registry; ``stages`` lists ``(stage, epochs)`` in order (`registry.stage_schedule`)."""
    task = task_lib.load(config, task)
    steps_per_epoch = data.steps_per_epoch(task.num_train, config.batch_size)
    context = task.context(config, steps_per_epoch * methods.target_updates_per_step(config))
    if method is None:
        method = methods.create(context)
    elif callable(method):
        method = method(context)
    stages = methods.registry.stage_schedule(config)
    if len(method.steps) == 1:  # a method of one stage trains in it for every epoch
        stages = [(next(iter(method.steps)), config.epochs)]
    missing = sorted({name for name, _ in stages} - set(method.steps))
    if missing:
        raise ValueError(f"the method has no step for the stages {missing} of config.method="
                         f"{config.method!r}; its stages: {sorted(method.steps)}")
    return task, method, context, stages


def load_trained(workdir: str) -> dict[str, Any]:
    """A finished (or interrupted) run of ``workdir``, of either task, from its ``config.json``
    and latest checkpoint: ``config``, ``task`` (its `Task`, data loaded), ``predict``
    (``(images in [0, 1], float [N, H, W, C]) -> logits``, or ``(joints, peaks)`` for keypoints;
    not jitted), ``step``, ``method`` and ``state`` (the run's method and its restored state, for
    what the method offers besides ``predict``, e.g. OnlineAugment's ``generate``), and what the
    task's robustness tool needs: ``dataset`` (classification, the run's `Dataset`), or
    ``model`` (the pose network, normalization first), ``variables`` ({"params", "batch_stats"}
    of it) and ``test`` (the test `KeypointData`) for keypoints. Raises
    ``FileNotFoundError`` naming what is missing."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} is missing: {workdir!r} is not a training workdir")
    with open(config_path) as f:
        config = config_lib.recorded_config(json.load(f))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint.keep)
    try:
        latest = checkpointer.latest_step()
        if latest is None:
            raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints")
        task, method, context, _ = build(config)
        like = jax.jit(method.init)(jax.random.key(0), task.init_batch())
        latest, state, _ = checkpointer.restore_newest_intact(like)
    finally:
        checkpointer.close()
    return {"config": config, "task": task, "step": latest, "method": method, "state": state,
            "predict": functools.partial(method.predict, state), **task.trained(context, state)}


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    task: "str | task_lib.Task | None" = None,
    method: Any = None,
    step_callback: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Trains a method on a task, stage by stage, checkpointing every epoch and evaluating every
    ``config.eval_every`` epochs and after the last.

    Resumes from the latest checkpoint in ``workdir/checkpoints`` if there is one. Writes
    ``metrics.jsonl`` (one record per log interval and per evaluation) and ``summary.json``.

    Args:
      config: a config built on :func:`jaxaug.train.config.base_config` (of its task).
      workdir: where checkpoints, metrics, the image grid and the summary go.
      task: a `jaxaug.train.task.Task`, a task name, or None for ``config.task``.
      method: a `Method` / `StagedMethod`, a callable ``(Context) -> method`` (a notebook's own
        method), or None for ``config.method`` built from its registration.
      step_callback: called with the global step after every train step (progress hooks, tests).

    Returns:
      The summary: best and last test score (``summary["metric"]`` names it), wall time and
      training images/s.
    """
    start_time = time.perf_counter()
    maybe_initialize_distributed(config)
    mesh = make_mesh()
    config_lib.validate(config, mesh.size)
    is_main = jax.process_index() == 0

    task, method, context, stages = build(config, task, method)
    steps_per_epoch, schedule = context.steps_per_epoch, context.lr_schedule
    stage_of_epoch = [name for name, epochs in stages for _ in range(epochs)]
    total_steps = config.epochs * steps_per_epoch
    updates_per_step = methods.target_updates_per_step(config)
    rep, shard = replicated(mesh), batch_sharding(mesh)
    prepare = task.preprocessing(method, config)
    # Compiled on first use, so a run only compiles the stages it reaches.
    train_steps = {name: compile_train_step(method.steps[name], prepare, config, mesh)
                   for name, _ in stages}
    eval_step = jax.jit(task.eval_sums(method, config), in_shardings=(rep, shard),
                        out_shardings=rep)
    augmented_images = task.augmented_images(method, config)
    eval_batch_size = round_up(config.eval_batch_size, mesh.size)

    init = jax.jit(method.init, out_shardings=rep)
    state = init(jax.random.fold_in(jax.random.key(config.seed), 0), task.init_batch())
    meta = {"elapsed_s": 0.0, "train_s": 0.0, "images": 0, "evals": []}
    # Written only now: a config, model, method or dataset that fails above leaves no trace.
    os.makedirs(workdir, exist_ok=True)
    # One run at a time in a workdir (the lock dies with its process).
    with workdir_lock(workdir) if is_main else contextlib.nullcontext():
        check_config_for_resume(workdir, config, is_main)
        checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint.keep)
        state, meta, saved_input = resume(checkpointer, state, meta, config.checkpoint.enabled,
                                          workdir)
        step = int(jax.device_get(state.step))
        train_data = task.train_dataset(config, method)
        if augmented_images is not None and is_main and step == 0:
            _save_grid(train_data[0], augmented_images, config, workdir)

        writer = MetricsWriter(workdir, tensorboard=config.tensorboard, enabled=is_main,
                               resume_step=step)
        logging.info("%s, %d steps/epoch, %d devices, %s; stages %s.", task.describe(config),
                     steps_per_epoch, mesh.size, config.method, stages)
        interrupted, compiled, diverged_at = False, set(), None
        segment_start, elapsed_before = time.perf_counter(), meta["elapsed_s"]
        meta, unfinished = _restore_lost_epochs(meta, step, steps_per_epoch, stage_of_epoch)
        if unfinished is not None:
            meta = _end_of_epoch(meta, state, step, unfinished, stage_of_epoch[unfinished], [],
                                 task, eval_step, eval_batch_size, shard, writer, None, config,
                                 0.0, None)
        batches = data.TrainingStream(train_data, shard, step=step, saved=saved_input,
                                      worker_count=config.data.worker_count,
                                      threads=config.data.threads)
        try:
            with StopRequest() as stop:
                while step < total_steps and not interrupted and diverged_at is None:
                    epoch, start_batch = divmod(step, steps_per_epoch)
                    stage = stage_of_epoch[epoch]
                    window, epoch_metrics = [], []
                    epoch_start = time.perf_counter()
                    timed_start, timed_steps = epoch_start, 0
                    progress = tqdm(
                        total=steps_per_epoch, initial=start_batch, desc=f"epoch {epoch + 1}/{config.epochs}",
                        disable=not is_main, leave=False,
                    )
                    for batch in itertools.islice(batches, steps_per_epoch - start_batch):
                        state, metrics = train_steps[stage](state, batch)
                        step += 1
                        progress.update(1)
                        window.append(metrics)
                        if stage not in compiled:
                            # The first call of a stage compiles; keep it out of the images/s figure.
                            jax.block_until_ready(state)
                            timed_start = time.perf_counter()
                            compiled.add(stage)
                        else:
                            timed_steps += 1
                        if step_callback is not None:
                            step_callback(step)
                        if len(window) == config.log_every_steps or step % steps_per_epoch == 0:
                            window = jax.device_get(window)
                            epoch_metrics += window
                            averaged = mean_metrics(window)
                            writer.write(step, "train", {**averaged, "learning_rate": schedule(step * updates_per_step - 1)})
                            progress.set_postfix(_progress_losses(averaged))
                            diverged_at = _divergence(window, step, config)
                            meta["nonfinite_steps"] = meta.get("nonfinite_steps", 0) + int(
                                sum(m["nonfinite"] for m in window))
                            window = []
                            if diverged_at is not None:
                                break
                        if _stop_agreed(stop, step, steps_per_epoch, config):
                            interrupted = True
                            break
                    jax.block_until_ready(state)
                    progress.close()
                    meta["train_s"] += time.perf_counter() - timed_start
                    meta["images"] += timed_steps * config.batch_size
                    meta["elapsed_s"] = elapsed_before + time.perf_counter() - segment_start
                    if interrupted:
                        # Steps since the last log were not checked yet: never save a diverged state.
                        diverged_at = _divergence(jax.device_get(window), step, config)
                    if diverged_at is not None or (interrupted and step % steps_per_epoch):
                        break
                    # A stop that comes with an epoch's last step (the likeliest moment: the loop
                    # waits there for the epoch's queued steps) still ends the epoch: a resumed
                    # run could not evaluate it any more.
                    meta = _end_of_epoch(
                        meta, state, step, epoch, stage, epoch_metrics, task, eval_step,
                        eval_batch_size, shard, writer, checkpointer, config,
                        time.perf_counter() - epoch_start, batches.checkpoint_state(),
                    )
                meta["elapsed_s"] = elapsed_before + time.perf_counter() - segment_start
                if (interrupted and diverged_at is None and config.checkpoint.enabled
                        and step % steps_per_epoch):
                    checkpointer.save(step, state, meta, data=batches.checkpoint_state())
        finally:
            batches.close()
            checkpointer.close()
            writer.close()
        summary = _summary(meta, step, config, task, interrupted, time.perf_counter() - start_time)
        summary.update(diverged=diverged_at is not None, diverged_at_step=diverged_at,
                       nonfinite_steps=meta.get("nonfinite_steps", 0))
        if is_main:
            write_json_atomic(os.path.join(workdir, "summary.json"), summary)
        logging.info("Summary: %s", summary)
        if diverged_at is not None:
            raise TrainingDiverged(
                f"Training diverged: a non-finite loss or state at step {diverged_at}, which was not "
                f"saved (the last checkpoint in {workdir}/checkpoints holds the last finite state). "
                "Lower config.optimizer.lr, or set config.nonfinite='skip' to skip such steps."
            )
        return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       step_callback: Callable[[int], None] | None = None) -> dict[str, Any]:
    """`train` of ``config.method`` on ``config``'s task (the name classification runs had)."""
    return train(config, workdir, step_callback=step_callback)


class TrainingDiverged(RuntimeError):
    """A run stopped on a non-finite loss or state (``config.nonfinite="stop"``)."""


def _progress_losses(averaged: dict[str, float]) -> dict[str, str]:
    """The progress bar's losses: ``loss`` where the step trains the target, else the losses the
    step logs (a stage that trains only an augmenter has no ``loss``)."""
    names = ["loss"] if "loss" in averaged else [k for k in sorted(averaged) if k.endswith("loss")]
    return {name: f"{averaged[name]:.3f}" for name in names}


def _divergence(window: list[dict[str, np.ndarray]], step: int, config) -> int | None:
    """The first step of ``window`` (the steps up to ``step``, on the host) flagged non-finite,
    when the run stops on those (``config.nonfinite == "stop"``); else None."""
    if config.nonfinite != "stop":
        return None
    flags = [float(m["nonfinite"]) for m in window]
    return next((step - len(flags) + 1 + i for i, f in enumerate(flags) if f), None)


def mean_metrics(metrics: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Per-name mean of a list of per-step metric dicts (already on the host)."""
    return {name: float(np.mean([m[name] for m in metrics])) for name in metrics[0]}


def _save_grid(first, augmented_images, config, workdir):
    """Writes the first training batch (this process's share), as the network sees it, to
    ``train_images.png``."""
    key = jax.random.fold_in(jax.random.key(config.seed), 2)
    images = np.asarray(augmented_images({k: jnp.asarray(v) for k, v in first.items()}, key))
    data.save_image_grid(images[:64], os.path.join(workdir, "train_images.png"))


def _restore_lost_epochs(meta, step: int, steps_per_epoch: int, stage_of_epoch):
    """(meta, epoch index or None) for a run resumed at ``step`` whose checkpoint misses the end
    of some epochs (saved, before the loop ended epochs on a stop, by a run stopped on an epoch's
    last step). The epoch that ended at ``step`` itself can still be ended, state and all: its
    index is returned for that. Earlier ones cannot: they get a record marked ``"lost"``,
    without train metrics or scores, so that the run's epochs stay counted and in order."""
    completed = step // steps_per_epoch
    recorded = {e["epoch"] for e in meta["evals"]}
    missing = [e for e in range(1, completed + 1) if e not in recorded]
    if not missing:
        return meta, None
    unfinished = completed - 1 if missing[-1] == completed and not step % steps_per_epoch else None
    lost = [e for e in missing if unfinished is None or e != completed]
    logging.warning("The checkpoint at step %d misses the end of epoch(s) %s%s.", step, missing,
                    f"; epoch {completed} is ended now" if unfinished is not None else "")
    if lost:
        logging.warning("Epoch(s) %s are recorded as lost (no train metrics or scores).", lost)
    records = [{"epoch": e, "stage": stage_of_epoch[e - 1], "step": e * steps_per_epoch,
                "lost": True} for e in lost]
    return {**meta, "evals": sorted(meta["evals"] + records, key=lambda e: e["epoch"])}, unfinished


def _end_of_epoch(
    meta, state, step, epoch, stage, epoch_metrics, task, eval_step, eval_batch_size, shard,
    writer, checkpointer, config, epoch_seconds, input_state,
):
    """Logs the epoch, evaluates the task's held-out splits when it is an evaluation epoch, and
    saves a checkpoint (scored by the task's main score, on the hold-out if there is one) unless
    ``checkpointer`` is None (an epoch ended again at a resumed step, which has one)."""
    record = {"epoch": epoch + 1, "stage": stage, "step": step, "epoch_s": epoch_seconds}
    if epoch_metrics:
        record.update({f"train_{k}": v for k, v in mean_metrics(epoch_metrics).items()})
    if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
        for split in task.splits:
            batches = data.iterate(task.eval_dataset(split, eval_batch_size),
                                   worker_count=config.data.worker_count,
                                   threads=config.data.threads)
            try:
                scores = task.scores(evaluate_sums(eval_step, state, batches, shard))
            finally:
                batches.close()
            writer.write(step, split, scores)
            record.update({f"{split}_{name}": value for name, value in scores.items()})
    logging.info("epoch %d: %s", epoch + 1, {k: _rounded(v) for k, v in record.items()})
    meta = {**meta, "evals": meta["evals"] + [record]}
    if config.checkpoint.enabled and checkpointer is not None:
        score = record.get(f"{task.splits[-1]}_{task.score}")
        checkpointer.save(step, state, meta, data=input_state,
                          score=score if score is None or task.maximize else -score)
    return meta


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value


def _summary(meta, step: int, config, task, interrupted: bool, session_seconds: float) -> dict[str, Any]:
    score, best = task.score, (max if task.maximize else min)
    test = f"test_{score}"
    evals = [e for e in meta["evals"] if test in e]
    summary = {
        "model": config.model,
        "dataset": config.dataset,
        "method": config.method,
        **task.summary_fields(config),
        "metric": score,
        "maximize": task.maximize,
        "devices": jax.device_count(),
        "device_kind": jax.devices()[0].device_kind,
        "step": step,
        "epochs_completed": len(meta["evals"]),
        # None for the epochs that were not evaluated (config.eval_every).
        f"{test}_per_epoch": [e.get(test) for e in meta["evals"]],
        "interrupted": interrupted,
        "wall_time_s": meta["elapsed_s"],
        "this_session_wall_time_s": session_seconds,
        "train_images_per_s": meta["images"] / meta["train_s"] if meta["train_s"] > 0 else None,
    }
    if evals:
        summary[f"last_{test}"] = evals[-1][test]
        summary[f"best_{test}"] = best(e[test] for e in evals)
        if "val" in task.splits:
            chosen = best(evals, key=lambda e: e[f"val_{score}"])
            summary[f"best_val_{score}"] = chosen[f"val_{score}"]
            summary[f"{test}_at_best_val"] = chosen[test]
    return summary
