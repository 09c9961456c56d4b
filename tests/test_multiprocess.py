"""Real multi-process runs: 2 processes on 127.0.0.1 joined by `jax.distributed` over CPU devices
(Gloo collectives, JAX's CPU default), launched as the README says.

Slow (each run is a fresh Python that compiles the quickstart's steps). The single-process
properties they rest on are in the fast suite: the process shares concatenate to the global batch
(tests/test_data_pipeline.py), per-process settings are not the run's identity, the stop schedule
and the join's errors (tests/test_train.py).
"""

import functools
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import portpicker
import pytest

from jaxaug.train import Checkpointer

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The quickstart, shrunk: 10 steps per epoch of 16 images, 2 epochs, logged every 5 steps.
TINY = {"reduced": 160, "batch_size": 16, "epochs": 2, "log_every_steps": 5,
        "eval_batch_size": 500}
# One launch's wall-clock limit: a deadlock fails the test instead of blocking CI.
TIMEOUT_S = 400


def environment(devices: int = 1) -> dict[str, str]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env.pop("JAX_COORDINATOR_ADDRESS", None)
    return env


def cluster(port: int, num_processes: int, process_id: int, **extra) -> dict:
    """The config overrides of one process of a run on 127.0.0.1."""
    fields = {"enabled": True, "coordinator_address": f"127.0.0.1:{port}",
              "num_processes": num_processes, "process_id": process_id, **extra}
    return {f"distributed.{name}": value for name, value in fields.items()}


def launch(commands: list[list[str]], logs: list[str], env: dict[str, str],
           timeout: float = TIMEOUT_S) -> list[int]:
    """Runs the commands at once (output to ``logs``) and returns their exit codes; kills all of
    them and fails if any is still running after ``timeout`` seconds."""
    procs = []
    for command, log in zip(commands, logs, strict=True):
        with open(log, "w") as out:
            procs.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=out,
                                          stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
            proc.wait()
        tails = "\n".join(f"--- {log}:\n{open(log).read()[-2000:]}" for log in logs)
        pytest.fail(f"processes still running after {timeout} s (a deadlock?)\n{tails}")
    return [proc.returncode for proc in procs]


def train_py(workdir, overrides=None) -> list[str]:
    """The README's launch command of the tiny quickstart with ``overrides``."""
    flags = [f"--config.{name}={value}" for name, value in {**TINY, **(overrides or {})}.items()]
    return [sys.executable, "train.py", "--config=configs/quickstart.py", *flags,
            f"--workdir={workdir}"]


def two_processes(workdir, make_command, **extra) -> list[str]:
    """Launches process 0 and 1 of one run (``make_command(cluster overrides)``), asserts both
    exited 0 and returns their logs."""
    port = portpicker.pick_unused_port()
    logs = [f"{workdir}.{p}.log" for p in range(2)]
    os.makedirs(workdir, exist_ok=True)
    codes = launch([make_command(cluster(port, 2, p, **extra)) for p in range(2)], logs,
                   environment())
    texts = [open(log).read() for log in logs]
    for p, (code, text) in enumerate(zip(codes, texts, strict=True)):
        assert code == 0, f"process {p} exited {code}:\n{text[-4000:]}"
    return texts


def one_process(workdir, devices: int) -> None:
    log = f"{workdir}.log"
    (code,) = launch([train_py(workdir)], [log], environment(devices))
    assert code == 0, open(log).read()[-4000:]


def records(workdir) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def final_state(workdir):
    """(step, arrays) of the latest checkpoint, restored onto this process's one device (a
    checkpoint of 2 processes names their devices, so it needs a target here)."""
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), keep=2)
    step = checkpointer.latest_step()
    checkpointer.close()
    path = os.path.abspath(os.path.join(workdir, "checkpoints", str(step), "state"))
    restorer = ocp.StandardCheckpointer()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                          restorer.metadata(path).item_metadata)
    return step, jax.device_get(restorer.restore(path, target))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny quickstart in 2 processes of 1 device each, and in 1 process of the same 2
    devices; the logs of the 2 processes."""
    root = tmp_path_factory.mktemp("runs")
    start = time.perf_counter()
    logs = two_processes(str(root / "two"), functools.partial(train_py, root / "two"))
    middle = time.perf_counter()
    one_process(str(root / "one"), devices=2)
    print(f"wall time: 2 processes {middle - start:.1f} s, 1 process "
          f"{time.perf_counter() - middle:.1f} s")
    return root, logs


def test_two_processes_train_as_one(runs):
    """The 2-process run logs the losses and test scores, and ends with the parameters and
    statistics, of the 1-process run with the same global batch on a mesh of as many devices, bit
    for bit: each process feeds its half of every global batch, and the all-reduces over 2 devices
    add the same 2 partial sums in either order. (Against 1 process on 1 device the convolutions
    and reductions are split differently: a step differs by float32 rounding,
    test_train.py::test_step_on_eight_devices_equals_one_device, which 20 steps of this tiny run
    amplify to 5e-3 in the parameters.)"""
    root, logs = runs
    two, one = str(root / "two"), str(root / "one")
    assert "2 devices" in logs[0] and "2 devices" in logs[1]  # one global mesh over both
    assert [r["step"] for r in records(two) if r["split"] == "train"] == [5, 10, 15, 20]
    assert records(two) == records(one)
    step, state = final_state(two)
    reference_step, reference = final_state(one)
    assert step == reference_step == 20
    jax.tree.map(np.testing.assert_array_equal, state, reference)


def test_only_process_0_writes_the_run_files(runs):
    """config.json (process 0's: with its process_id), the image grid and summary.json; each
    metrics record once (test_two_processes_train_as_one: the records equal one process's); and a
    checkpoint both processes wrote their part of (Orbax's per-process array metadata and OCDBT
    stores)."""
    root, _ = runs
    two = root / "two"
    assert {p.name for p in two.iterdir()} >= {"config.json", "summary.json", "metrics.jsonl",
                                              "train_images.png", "checkpoints"}
    assert json.loads((two / "config.json").read_text())["distributed"]["process_id"] == 0
    summary = json.loads((two / "summary.json").read_text())
    assert summary["devices"] == 2 and summary["step"] == 20 and not summary["interrupted"]
    state = two / "checkpoints" / "20" / "state"
    assert sorted(p.name for p in (state / "array_metadatas").iterdir()) == ["process_0",
                                                                           "process_1"]
    assert (state / "ocdbt.process_0").is_dir() and (state / "ocdbt.process_1").is_dir()


WORKER = r"""
import json, os, signal, sys
from jaxaug.train import train
from jaxaug.train.config import load_config_file

config = load_config_file("configs/quickstart.py")
config.update_from_flattened_dict(json.loads(sys.argv[1]))
workdir, signal_at = sys.argv[2], int(sys.argv[3])

def terminate(step):
    if step == signal_at:
        os.kill(os.getpid(), signal.SIGTERM)

summary = train(config, workdir, step_callback=terminate)
print("SUMMARY", json.dumps({"step": summary["step"], "interrupted": summary["interrupted"]}))
"""


def worker(workdir, overrides: dict, signal_at: int) -> list[str]:
    """`train` of the tiny quickstart with ``overrides`` in a process that sends itself SIGTERM
    after step ``signal_at``."""
    return [sys.executable, "-c", WORKER, json.dumps({**TINY, **overrides}), str(workdir),
            str(signal_at)]


def test_sigterm_to_one_process_stops_both_at_an_agreed_step_and_resumes(runs, tmp_path):
    """Process 1 alone gets SIGTERM after step 5. The processes agree on stopping every 3 steps
    (and at epoch ends), so both stop after step 6, save one checkpoint together and exit 0; the
    same 2-process launch then resumes and ends with the uninterrupted run's parameters."""
    root, _ = runs
    workdir = tmp_path / "signalled"
    outputs = two_processes(
        str(workdir),
        lambda overrides: worker(workdir, overrides,
                                 5 if overrides["distributed.process_id"] == 1 else -1),
        stop_check_every_steps=3)
    summaries = [json.loads(text.split("SUMMARY ")[-1].splitlines()[0]) for text in outputs]
    assert summaries == [{"step": 6, "interrupted": True}] * 2
    assert "SIGTERM received" in outputs[1] and "SIGTERM received" not in outputs[0]
    assert final_state(str(workdir))[0] == 6

    two_processes(str(workdir), functools.partial(train_py, workdir))
    step, state = final_state(str(workdir))
    reference_step, reference = final_state(str(root / "two"))
    assert step == reference_step == 20
    jax.tree.map(np.testing.assert_array_equal, state, reference)


def test_a_process_that_never_joins_is_named(tmp_path):
    """Process 0 of 2 started alone: within the configured timeout train.py fails with an error
    naming itself, the coordinator, the process count and the missing process 1 (JAX alone would
    abort after 5 minutes with "Deadline Exceeded"), before anything is written."""
    port = portpicker.pick_unused_port()
    log, workdir = str(tmp_path / "alone.log"), tmp_path / "alone"
    start = time.perf_counter()
    (code,) = launch([train_py(workdir, cluster(port, 2, 0, initialization_timeout=2))],
                     [log], environment(), timeout=120)
    seconds = time.perf_counter() - start
    text = open(log).read()
    print(f"process 0 alone failed after {seconds:.1f} s")
    assert code == 1, text[-3000:]
    assert (f"JoinTimeoutError: process 0 of 2 (coordinator 127.0.0.1:{port}, "
            "distributed.initialization_timeout=2 s): process(es) [1] did not join") in text
    assert not workdir.exists()
