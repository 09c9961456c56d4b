"""JSONL metrics, optional TensorBoard events, and the run summary."""

import json
import os
import tempfile
from typing import Any


def write_json_atomic(path: str, payload: Any) -> None:
    """Writes JSON to a temporary file beside ``path`` and renames it, so readers never see half."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_file_atomic(path: str, write: Any) -> None:
    """Calls ``write(tmp)`` on a temporary path beside ``path``, then renames it to ``path``, so
    readers never see a half-written file (a failed write leaves ``path`` as it was)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_report(out_dir: str, name: str, results: Any, table: str, plot: Any) -> None:
    """An evaluation's outputs under ``out_dir``, each written atomically: ``<name>.json``
    (``results``), ``<name>.md`` (the Markdown ``table``) and ``<name>.png`` (``plot(results,
    path)``)."""
    write_json_atomic(os.path.join(out_dir, f"{name}.json"), results)

    def write_table(path):
        with open(path, "w") as f:
            f.write(table)

    write_file_atomic(os.path.join(out_dir, f"{name}.md"), write_table)
    write_file_atomic(os.path.join(out_dir, f"{name}.png"), lambda path: plot(results, path))


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl``; mirrors scalars to TensorBoard.

    TensorBoard event files are written with tensorboardX (no TensorFlow needed) when
    ``tensorboard`` is true; asking for them without tensorboardX installed is an error.
    """

    def __init__(self, workdir: str, tensorboard: bool = False, enabled: bool = True):
        self._enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._file = open(os.path.join(workdir, "metrics.jsonl"), "a")
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
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in scalars.items():
                self._tb.add_scalar(f"{split}/{name}", float(value), int(step))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
