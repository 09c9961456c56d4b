"""What a workdir survives: a second run on it, a resume after a crash, a disk that fills up."""

import json
import os
import subprocess
import sys

import pytest

from jaxaug.train.lock import WorkdirLockedError, workdir_lock
from jaxaug.train.metrics_writer import MetricsWriter

HOLD = r"""
import sys, time
from jaxaug.train.lock import workdir_lock
with workdir_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkdirLockedError, match=f"in use by process {holder.pid} on "):
            with workdir_lock(str(tmp_path)):
                pass
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up: its lock file stays, its lock does not.
    assert f"process {holder.pid}" in (tmp_path / ".lock").read_text()
    with workdir_lock(str(tmp_path)):
        assert (tmp_path / ".lock").read_text() == f"process {os.getpid()} on {os.uname()[1]}\n"


def _steps(workdir):
    return [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]


def test_resume_drops_the_records_after_its_checkpoint_and_a_half_written_line(tmp_path):
    """A run killed at step 17 after logging step 15, resumed from its step-10 checkpoint, would
    log step 15 twice; a crash mid-write leaves half a line for the next record to join."""
    writer = MetricsWriter(str(tmp_path))
    for step in (5, 10, 15):
        writer.write(step, "train", {"loss": 1.0})
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 16, "split": "tr')
    writer = MetricsWriter(str(tmp_path), resume_step=10)
    writer.write(15, "train", {"loss": 0.5})
    writer.close()
    assert _steps(tmp_path) == [5, 10, 15]
    assert json.loads(open(tmp_path / "metrics.jsonl").read().splitlines()[-1])["loss"] == 0.5
    MetricsWriter(str(tmp_path)).close()  # a fresh run (no checkpoint) keeps nothing
    assert _steps(tmp_path) == []


def test_a_failed_write_leaves_only_whole_lines(tmp_path):
    writer = MetricsWriter(str(tmp_path))
    writer.write(1, "train", {"loss": 1.0})
    real_write = writer._file.write

    def disk_full(text):
        real_write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    writer._file.write = disk_full
    with pytest.raises(OSError, match="No space left"):
        writer.write(2, "train", {"loss": 2.0})
    writer._file.write = real_write
    writer.write(3, "train", {"loss": 3.0})
    writer.close()
    assert _steps(tmp_path) == [1, 3]
