"""Orbax checkpoints that keep the last N and the best, written atomically and verified on restore,
with the input pipeline's state beside the training state."""

import contextlib
import hashlib
import json
import logging as std_logging
import os
import shutil

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers


class Checkpointer:
    """Saves ``(state, meta)`` pairs under ``directory/<step>``.

    Orbax writes each checkpoint into a temporary directory and renames it when complete, so an
    interrupted save never leaves a checkpoint that ``restore_latest`` would pick up. The last
    ``keep`` checkpoints are kept, and the one with the highest ``score`` is kept as well.

    Each checkpoint's meta holds a SHA-256 of every state array as it was saved; ``restore``
    recomputes them and raises `DamagedCheckpointError` naming the step and the first array that
    differs, so flipped bits on disk are never trained on silently.
    """

    def __init__(self, directory: str, keep: int):
        def score(metrics):
            return metrics["score"]

        preservation = checkpoint_managers.AnyPreservationPolicy([
            checkpoint_managers.LatestN(keep),
            checkpoint_managers.BestN(
                get_metric_fn=score,
                reverse=False,
                n=1,
                keep_checkpoints_without_metrics=False,
            ),
        ])
        options = ocp.CheckpointManagerOptions(
            preservation_policy=preservation,
            best_fn=score,  # what best_step() reports
            best_mode="max",
            create=True,
        )
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            epath.Path(self.directory), options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "meta": ocp.JsonCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler()},
        )

    def save(self, step: int, state, meta: dict, score: float | None = None,
             data: dict | None = None) -> None:
        """Saves ``(state, meta)`` at ``step``, and ``data``, this process's input-pipeline state
        (JSON; one file per process, through grain's Orbax handler), when given. ``score`` None
        (an epoch not evaluated, ``config.eval_every``) keeps it out of the best, and Orbax's
        warning about the missing metric, which would repeat every such epoch, is not logged."""
        meta = {**meta, _CHECKSUMS: state_checksums(state)}
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
        if data is not None:
            items["data"] = grain.checkpoint.CheckpointSave(_PipelineState(data))
        with _without_unscored_warning() if score is None else contextlib.nullcontext():
            self._manager.save(
                step,
                args=ocp.args.Composite(**items),
                metrics=None if score is None else {"score": float(score)},
                force=True,
            )

    def restore_data(self, step: int) -> dict | None:
        """This process's input-pipeline state saved at ``step``, or None when that checkpoint
        has none (saved before the pipeline kept one, or by a different number of processes)."""
        if not os.path.isdir(os.path.join(self.directory, str(step), "data")):
            return None
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                data=grain.checkpoint.CheckpointRestore(_PipelineState())))
        except ValueError as e:  # grain's handler: no file for this process index and count
            logging.warning("No input-pipeline state for this process at step %d (%s); the "
                            "pipeline restarts at that step instead.", step, e)
            return None
        return restored["data"].state

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def restore(self, step: int, like_state):
        """Restores the checkpoint at ``step`` onto the shardings of ``like_state`` and verifies
        it; raises `DamagedCheckpointError` if it cannot be read or does not match its checksums,
        `CheckpointMismatchError` if it holds a state of another structure than ``like_state``."""
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like_state
        )
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
            )
        except Exception as e:  # Orbax and TensorStore raise many types for unreadable files
            if _STRUCTURE_MISMATCH in str(e):
                raise CheckpointMismatchError(step, self.directory, str(e)) from e
            raise DamagedCheckpointError(step, self.directory, f"unreadable ({type(e).__name__}: "
                                         f"{str(e).splitlines()[0] if str(e) else ''})") from e
        meta = dict(restored["meta"])
        saved = meta.pop(_CHECKSUMS, None)
        if saved is None:
            raise DamagedCheckpointError(step, self.directory, "its meta holds no checksums")
        actual = state_checksums(restored["state"])
        for name in sorted(set(saved) | set(actual)):
            if saved.get(name) != actual.get(name):
                raise DamagedCheckpointError(step, self.directory,
                                             f"array {name} does not match its checksum")
        return restored["state"], meta

    def restore_newest_intact(self, like_state):
        """``(step, state, meta)`` of the newest checkpoint that restores and verifies, logging an
        error for each newer damaged one; ``None`` when there is no checkpoint at all. Raises
        `DamagedCheckpointError` naming the directory when every one is damaged."""
        damaged = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                state, meta = self.restore(step, like_state)
            except DamagedCheckpointError as e:
                logging.error("%s", e)
                damaged.append(step)
                continue
            if damaged:
                logging.error("Falling back to checkpoint step %d of %s: newer step(s) %s are "
                              "damaged.", step, self.directory, damaged)
            return step, state, meta
        if damaged:
            raise DamagedCheckpointError(None, self.directory,
                                         f"all checkpoints ({damaged}) are damaged")
        return None

    def set_aside(self, steps: list[int]) -> None:
        """Moves the checkpoints of ``steps`` to ``<directory>-damaged/``, so that training can
        save those steps again and the evidence stays for inspection. In a multi-process run
        (every process restores, so every process calls this) process 0 moves them and the
        others wait for it."""
        if jax.process_index() == 0:
            aside = self.directory + "-damaged"
            os.makedirs(aside, exist_ok=True)
            for step in steps:
                shutil.move(os.path.join(self.directory, str(step)), os.path.join(aside, str(step)))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("jaxaug checkpoint set_aside")
        self._manager.reload()

    def close(self) -> None:
        """Waits for asynchronous saves to finish."""
        self._manager.wait_until_finished()
        self._manager.close()


def resume(checkpointer: Checkpointer, state, meta: dict, enabled: bool, workdir: str):
    """(state, meta, input-pipeline state) of the newest intact checkpoint when ``enabled`` and
    there is one, else ``(state, meta, None)`` as given. Damaged newer checkpoints are reported
    and set aside (see `Checkpointer`)."""
    if not enabled:
        return state, meta, None
    found = checkpointer.restore_newest_intact(state)
    if found is None:
        return state, meta, None
    step, state, meta = found
    newer = [s for s in checkpointer.all_steps() if s > step]
    if newer:
        checkpointer.set_aside(newer)
    logging.info("Resumed from step %d of %s.", step, workdir)
    return state, meta, checkpointer.restore_data(step)


class _PipelineState:
    """The checkpoint protocol of a grain `DataLoaderIterator` (``get_state() -> bytes``,
    ``set_state(bytes)``, ``start_prefetch()``), which grain's Orbax handler saves to one file
    per process, over a JSON-serializable dict."""

    def __init__(self, state: dict | None = None):
        self.state = state

    def get_state(self) -> bytes:
        return json.dumps(self.state).encode()

    def set_state(self, raw: bytes) -> None:
        self.state = json.loads(raw)

    def start_prefetch(self) -> None:
        """Nothing to start: the pipeline is built from the restored dict."""


# Orbax's message when the saved state's tree is not the one asked for (orbax-checkpoint 0.11).
_STRUCTURE_MISMATCH = "tree structures do not match"


class CheckpointMismatchError(RuntimeError):
    """A readable checkpoint whose state has another structure than this code's: the run was
    trained by other code (another commit, method or config). Not damage: no older checkpoint of
    the run would restore either, so nothing falls back or is set aside."""

    def __init__(self, step: int, directory: str, detail: str):
        lines = detail.splitlines()
        shown = "\n".join(lines[:12]) + ("\n..." if len(lines) > 12 else "")
        super().__init__(
            f"checkpoint step {step} in {directory} holds a state of another structure than this "
            f"code builds for its config.json: the run was trained by other code; restore it with "
            f"the commit that trained it. Orbax: {shown}")
        self.step = step


class DamagedCheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not match its checksums (``step`` None: all)."""

    def __init__(self, step: int | None, directory: str, why: str):
        where = f"checkpoint step {step} in {directory}" if step is not None else directory
        super().__init__(f"Damaged {where}: {why}")
        self.step = step


_CHECKSUMS = "checksums"


def state_checksums(state) -> dict[str, str]:
    """SHA-256 of every array of ``state`` (by its tree path), from the host copy of each
    process's first replica (the trainer's states are replicated)."""

    def digest(leaf):
        if isinstance(leaf, jax.Array):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            leaf = leaf.addressable_data(0)
        array = np.ascontiguousarray(np.asarray(leaf))
        return hashlib.sha256(array.dtype.str.encode() + array.tobytes()).hexdigest()

    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(path): digest(leaf) for path, leaf in leaves}


class _UnscoredWarningFilter(std_logging.Filter):
    def filter(self, record: std_logging.LogRecord) -> bool:
        return "did not provide metrics" not in record.getMessage()


@contextlib.contextmanager
def _without_unscored_warning():
    """Drops Orbax's "Requested `tracked_metric`; did not provide metrics." (absl's logger) for
    one save."""
    logger, quiet = std_logging.getLogger("absl"), _UnscoredWarningFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
