"""JSONL metrics, optional TensorBoard events, and the run summary."""

import json
import math
import os
from typing import Any

from jaxaug.data.atomic import write_atomic, write_text_atomic


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, so that ``json.dumps`` writes
    standard JSON (null) instead of the bare ``NaN`` / ``Infinity`` tokens most parsers reject."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: str, payload: Any) -> None:
    """Writes JSON to a temporary file beside ``path`` and renames it, so readers never see half.
    Non-finite floats are written as null."""
    text = json.dumps(json_safe(payload), indent=2, sort_keys=True, allow_nan=False)
    write_text_atomic(path, text)


def write_report(out_dir: str, name: str, results: Any, table: str, plot: Any) -> None:
    """An evaluation's outputs under ``out_dir``, each written atomically: ``<name>.json``
    (``results``), ``<name>.md`` (the Markdown ``table``) and ``<name>.png`` (``plot(results,
    path)``)."""
    write_json_atomic(os.path.join(out_dir, f"{name}.json"), results)

    write_text_atomic(os.path.join(out_dir, f"{name}.md"), table)
    write_atomic(os.path.join(out_dir, f"{name}.png"), lambda path: plot(results, path))


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl``; mirrors scalars to TensorBoard.

    TensorBoard event files are written with tensorboardX (no TensorFlow needed) when
    ``tensorboard`` is true; asking for them without tensorboardX installed is an error.
    """

    def __init__(self, workdir: str, tensorboard: bool = False, enabled: bool = True,
                 resume_step: int = 0):
        """``resume_step``: the step the run restarts from (its checkpoint's, 0 for a fresh run).
        Records after it, which the run is about to write again, are dropped first, as is a line
        a crash left half-written."""
        self._enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        path = os.path.join(workdir, "metrics.jsonl")
        if os.path.exists(path):
            write_text_atomic(path, "".join(_records_up_to(path, resume_step)))
        self._file = open(path, "a")
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as e:
                raise ImportError(
                    "config.tensorboard=True needs tensorboardX: pip install 'jaxaug[tensorboard]'"
                ) from e
            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, split: str, scalars: dict[str, float]) -> None:
        if not self._enabled:
            return
        record = {"step": int(step), "split": split, **{k: float(v) for k, v in scalars.items()}}
        line = json.dumps(json_safe(record), allow_nan=False) + "\n"
        end = self._file.tell()
        try:
            self._file.write(line)
            self._file.flush()
        except OSError:  # disk full: leave no partial line for the next record to append onto
            self._file.truncate(end)
            raise
        if self._tb is not None:
            for name, value in scalars.items():
                self._tb.add_scalar(f"{split}/{name}", float(value), int(step))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def _records_up_to(path: str, step: int) -> list[str]:
    """The whole, parseable lines of the metrics file ``path`` whose step is at most ``step``."""
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if line.endswith("\n") and record.get("step", step + 1) <= step:
                kept.append(line)
    return kept
