"""Orbax checkpoints that keep the last N and the best, written atomically."""

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from orbax.checkpoint import checkpoint_managers


class Checkpointer:
    """Saves ``(state, meta)`` pairs under ``directory/<step>``.

    Orbax writes each checkpoint into a temporary directory and renames it when complete, so an
    interrupted save never leaves a checkpoint that ``restore_latest`` would pick up. The last
    ``keep`` checkpoints are kept, and the one with the highest ``score`` is kept as well.
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
        self._manager = ocp.CheckpointManager(
            epath.Path(directory).absolute(), options=options, item_names=("state", "meta")
        )

    def save(self, step: int, state, meta: dict, score: float | None = None) -> None:
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            metrics=None if score is None else {"score": float(score)},
            force=True,
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def restore(self, step: int, like_state):
        """Restores the checkpoint at ``step`` onto the shardings of ``like_state``."""
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like_state
        )
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return restored["state"], restored["meta"]

    def close(self) -> None:
        """Waits for asynchronous saves to finish."""
        self._manager.wait_until_finished()
        self._manager.close()


def resume(checkpointer: Checkpointer, state, meta: dict, enabled: bool, workdir: str):
    """(state, meta) of the latest checkpoint when ``enabled`` and there is one, else as given."""
    latest = checkpointer.latest_step() if enabled else None
    if latest is None:
        return state, meta
    state, meta = checkpointer.restore(latest, state)
    logging.info("Resumed from step %d of %s.", latest, workdir)
    return state, meta
