"""The trainer: optimizer math, checkpoint retention, resume equality, SIGTERM and config errors."""

import functools
import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import portpicker
import pytest

from jaxaug import methods
from jaxaug.data import atomic
from jaxaug.methods.base import StagedMethod
from jaxaug.train import Checkpointer, base_config, make_optimizer, train, train_and_evaluate
from jaxaug.train.lock import WorkdirLockedError, workdir_lock
from jaxaug.train import distributed
from jaxaug.train.loop import (
    StopRequest,
    _restore_lost_epochs,
    _stop_agreed,
    check_config_for_resume,
)
from jaxaug.train.metrics_writer import MetricsWriter, write_json_atomic
from jaxaug.train.mesh import maybe_initialize_distributed
from jaxaug.train.optim import learning_rate_schedule

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.usefixtures("unoptimized_xla")


def tiny_config(**overrides):
    """WRN-10-1 on 200 synthetic images: 10 steps per epoch of 20 images."""
    config = base_config()
    config.dataset = "synthetic"
    config.reduced = 200
    config.model = "wrn-10-1"
    config.batch_size = 20
    config.eval_batch_size = 1000
    config.epochs = 2
    config.log_every_steps = 5
    config.save_image_grid = False
    config.augment.cutout = 8
    config.update_from_flattened_dict(overrides)
    return config


def saved_state(workdir):
    """The arrays of the latest checkpoint, restored without a target (as numpy)."""
    step = Checkpointer(os.path.join(workdir, "checkpoints"), keep=2).latest_step()
    path = os.path.join(workdir, "checkpoints", str(step), "state")
    return step, ocp.StandardCheckpointer().restore(os.path.abspath(path))


def assert_trees_equal(a, b):
    flat_a, tree_a = jax.tree.flatten(a)
    flat_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(flat_a, flat_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_sgd_matches_pytorch_nesterov_with_coupled_weight_decay():
    config = tiny_config(epochs=1, **{"optimizer.lr": 0.1, "optimizer.weight_decay": 5e-4})
    steps_per_epoch = 5
    optimizer = make_optimizer(config, steps_per_epoch)
    w = jnp.array([1.0, -2.0, 3.0])
    state = optimizer.init(w)
    # Reference: torch.optim.SGD(lr_t, momentum=0.9, nesterov=True, weight_decay=5e-4), written out.
    w_ref, buf = np.array([1.0, -2.0, 3.0]), np.zeros(3)
    for t in range(steps_per_epoch):
        grad = 2 * w_ref * (t + 1)  # any deterministic gradient sequence
        lr_t = 0.1 * 0.5 * (1 + np.cos(np.pi * t / steps_per_epoch))
        d = grad + 5e-4 * w_ref
        buf = 0.9 * buf + d
        w_ref = w_ref - lr_t * (d + 0.9 * buf)
        updates, state = optimizer.update(jnp.asarray(2 * np.asarray(w) * (t + 1)), state, w)
        w = w + updates
    np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-6)


def test_warmup_then_cosine_schedule():
    config = tiny_config(epochs=10, **{"optimizer.warmup_epochs": 2.0, "optimizer.lr": 0.4})
    schedule = learning_rate_schedule(config, steps_per_epoch=10)
    np.testing.assert_allclose(schedule(0), 0.0)
    np.testing.assert_allclose(schedule(10), 0.2, rtol=1e-6)  # halfway through warm-up
    np.testing.assert_allclose(schedule(20), 0.4, rtol=1e-6)
    np.testing.assert_allclose(schedule(60), 0.4 * 0.5 * (1 + np.cos(np.pi * 40 / 80)), rtol=1e-5)
    np.testing.assert_allclose(schedule(100), 0.0, atol=1e-7)


def test_checkpointer_keeps_last_n_and_best(tmp_path, caplog):
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    scores = {1: 0.5, 2: 0.9, 3: 0.6, 4: 0.7, 5: 0.65}
    for step, score in scores.items():
        checkpointer.save(step, {"w": jnp.full((3,), float(step))}, {"step": step}, score=score)
    checkpointer.close()
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    assert sorted(checkpointer.all_steps()) == [2, 4, 5]
    assert checkpointer.best_step() == 2
    state, meta = checkpointer.restore(2, {"w": jnp.zeros((3,))})
    np.testing.assert_array_equal(state["w"], np.full((3,), 2.0))
    assert meta == {"step": 2}
    # A crashed save leaves only a temporary directory, which is never taken as a checkpoint.
    (tmp_path / "ckpt" / "6.orbax-checkpoint-tmp-123").mkdir()
    assert Checkpointer(str(tmp_path / "ckpt"), keep=2).latest_step() == 5
    # An unscored save (an epoch without evaluation) is kept as latest, never as best, quietly.
    checkpointer = Checkpointer(str(tmp_path / "unscored"), keep=2)
    with caplog.at_level("WARNING"):
        checkpointer.save(1, {"w": jnp.ones((3,))}, {"step": 1}, score=0.5)
        checkpointer.save(2, {"w": jnp.ones((3,))}, {"step": 2})
    checkpointer.close()
    assert (checkpointer.best_step(), checkpointer.latest_step()) == (1, 2)
    assert not [r for r in caplog.records if "did not provide metrics" in r.getMessage()]


def test_distributed_initialize_gets_the_configured_cluster(monkeypatch):
    calls, joins = [], []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(distributed, "join", lambda **kwargs: joins.append(kwargs))
    config = tiny_config()
    maybe_initialize_distributed(config)
    assert calls == []  # single-process runs never touch jax.distributed
    config.distributed.enabled = True
    maybe_initialize_distributed(config)
    # No coordinator given: JAX detects the cluster (TPU, SLURM, Open MPI), and waits itself.
    assert calls == [{"initialization_timeout": 300}] and joins == []
    config.distributed.coordinator_address = "localhost:1234"
    config.distributed.num_processes, config.distributed.process_id = 2, 1
    config.distributed.initialization_timeout = 2.5
    maybe_initialize_distributed(config)
    cluster = {"coordinator_address": "localhost:1234", "num_processes": 2, "process_id": 1}
    assert joins == [{**cluster, "timeout": 2.5}]  # every process joined before JAX starts
    assert calls[-1] == {**cluster, "initialization_timeout": 3}
    config.distributed.initialization_timeout = 0
    with pytest.raises(ValueError, match="config.distributed.initialization_timeout=0"):
        maybe_initialize_distributed(config)


def _join_all(address, num_processes, ids, timeout):
    """`distributed.join` of each of ``ids`` in its own thread: {id: its error, or None}."""
    outcome = {}

    def one(process_id):
        try:
            distributed.join(address, num_processes, process_id, timeout)
            outcome[process_id] = None
        except Exception as e:  # the test checks which
            outcome[process_id] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 20)
    return outcome


def test_join_names_the_processes_that_did_not_join():
    """Processes 0 and 2 of 3 wait 0.3 s for process 1, then both fail naming it, the coordinator
    and themselves; process 1 alone says process 0 (the coordinator) never answered; when all come
    they pass. (tests/test_multiprocess.py runs train.py so, in processes.)"""
    address = f"127.0.0.1:{portpicker.pick_unused_port()}"
    outcome = _join_all(address, 3, [0, 2], timeout=0.3)
    for p in (0, 2):
        assert isinstance(outcome[p], distributed.JoinTimeoutError)
        assert str(outcome[p]) == (f"process {p} of 3 (coordinator {address}, distributed."
                                   "initialization_timeout=0.3 s): process(es) [1] did not join")
    address = f"127.0.0.1:{portpicker.pick_unused_port()}"
    alone = _join_all(address, 2, [1], timeout=0.2)[1]
    assert isinstance(alone, distributed.JoinTimeoutError)
    assert "process 0 did not join" in str(alone)
    assert _join_all(address, 3, [2, 1, 0], timeout=10) == {0: None, 1: None, 2: None}
    with pytest.raises(ValueError, match=r"config.distributed.process_id=2: must be in \[0, "):
        distributed.join(address, 2, 2, timeout=1)


def test_processes_agree_on_a_stop_every_few_steps_and_at_epoch_ends(monkeypatch):
    """One process stops at the step its request came in; two ask each other (a collective) at
    the global steps of the shared schedule only, and stop when either was signalled."""
    stop, config = StopRequest(), tiny_config(**{"distributed.stop_check_every_steps": 3})
    stop.requested = True
    assert [s for s in range(1, 5) if _stop_agreed(stop, s, 8, config)] == [1, 2, 3, 4]
    asked = []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(distributed, "any_process", lambda flag: asked.append(flag) or True)
    assert [s for s in range(1, 21) if _stop_agreed(stop, s, 8, config)] == [3, 6, 8, 9, 12, 15,
                                                                            16, 18]
    assert asked == [True] * 8


def test_epochs_a_checkpoint_lost_are_recorded_and_the_last_one_ended_again():
    """A checkpoint saved on an epoch's last step by a loop that did not end epochs on a stop
    misses those epochs' records: the one that ended at the resumed step can still be ended, the
    others are marked lost, so the run's epochs stay counted and in order."""
    stages = ["train"] * 6
    meta = {"evals": [{"epoch": e, "step": 10 * e} for e in (1, 3)]}
    repaired, unfinished = _restore_lost_epochs(meta, 40, 10, stages)
    assert unfinished == 3  # index of epoch 4, which ended at step 40
    assert [(e["epoch"], e.get("lost", False)) for e in repaired["evals"]] == [
        (1, False), (2, True), (3, False)]
    repaired, unfinished = _restore_lost_epochs(meta, 45, 10, stages)  # epoch 5 under way
    assert unfinished is None and [e["epoch"] for e in repaired["evals"]] == [1, 2, 3, 4]
    assert _restore_lost_epochs(meta, 35, 10, stages)[1] is None
    assert _restore_lost_epochs({"evals": meta["evals"][:1]}, 19, 10, stages) == (
        {"evals": meta["evals"][:1]}, None)


def test_per_process_settings_are_not_the_runs_identity(tmp_path):
    """Process 1 (and a relaunch on another coordinator port, or process count) resumes the
    workdir whose config.json process 0 wrote, and leaves that file to process 0; a change of
    what the run computes is still refused on every process."""
    workdir = str(tmp_path)
    process_0 = {"distributed.enabled": True, "distributed.coordinator_address": "10.0.0.1:1234",
                 "distributed.num_processes": 2, "distributed.process_id": 0}
    check_config_for_resume(workdir, tiny_config(**process_0), is_main=True)
    os.makedirs(os.path.join(workdir, "checkpoints", "10"))
    written = pathlib.Path(workdir, "config.json").read_text()
    for other in ({"distributed.process_id": 1},
                  {"distributed.coordinator_address": "10.0.0.2:4321",
                   "distributed.num_processes": 4, "distributed.process_id": 3,
                   "distributed.initialization_timeout": 30,
                   "distributed.stop_check_every_steps": 2}):
        check_config_for_resume(workdir, tiny_config(**{**process_0, **other}), is_main=False)
        assert pathlib.Path(workdir, "config.json").read_text() == written
    check_config_for_resume(workdir, tiny_config(), is_main=True)  # one process, resuming
    with pytest.raises(ValueError, match=r"different config.*\['batch_size'\]"):
        check_config_for_resume(workdir, tiny_config(**process_0, batch_size=40), is_main=False)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    summary = train_and_evaluate(tiny_config(tensorboard=True), workdir)
    return workdir, summary


def test_summary_and_metrics_agree(uninterrupted):
    workdir, summary = uninterrupted
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f) == json.loads(json.dumps(summary))
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    tests = [r for r in records if r["split"] == "test"]
    trains = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in tests] == [10, 20]
    assert [r["step"] for r in trains] == [5, 10, 15, 20]
    # The rate of each window's last update (optax count step - 1) on the cosine over 20 steps.
    np.testing.assert_allclose([r["learning_rate"] for r in trains],
                               [0.05 * (1 + np.cos(np.pi * (s - 1) / 20)) for s in (5, 10, 15, 20)],
                               rtol=1e-5)
    assert summary["epochs_completed"] == 2 and summary["step"] == 20
    assert summary["last_test_accuracy"] == tests[-1]["accuracy"]
    assert summary["best_test_accuracy"] == max(r["accuracy"] for r in tests)
    assert summary["test_accuracy_per_epoch"] == [r["accuracy"] for r in tests]
    assert summary["train_images_per_s"] > 0 and summary["wall_time_s"] > 0
    assert not summary["interrupted"]
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    for name in ("config.json", "summary.json", "metrics.jsonl"):  # readable as normal files are
        mode = stat.S_IMODE(os.stat(os.path.join(workdir, name)).st_mode)
        assert mode == 0o666 & ~atomic.umask(), (name, oct(mode))


def test_sigterm_at_an_epoch_end_and_mid_epoch_then_resume_equals_uninterrupted_run(
        uninterrupted, tmp_path):
    """A stop on an epoch's last step still ends that epoch (evaluates and records it, which the
    resumed run could not); one mid-epoch saves the step; the run resumed twice ends as the
    uninterrupted one."""
    reference_dir, reference = uninterrupted
    workdir = str(tmp_path / "resumed")

    def terminate_at(when):
        def callback(step):
            if step == when:
                os.kill(os.getpid(), signal.SIGTERM)
        return callback

    first = train_and_evaluate(tiny_config(tensorboard=True), workdir,
                               step_callback=terminate_at(10))
    assert first["interrupted"] and first["step"] == 10 and first["epochs_completed"] == 1
    assert first["test_accuracy_per_epoch"] == reference["test_accuracy_per_epoch"][:1]
    between = train_and_evaluate(tiny_config(tensorboard=True), workdir,
                                 step_callback=terminate_at(13))
    assert between["interrupted"] and between["step"] == 13 and between["epochs_completed"] == 1
    assert saved_state(workdir)[0] == 13

    second = train_and_evaluate(tiny_config(tensorboard=True), workdir)
    assert not second["interrupted"] and second["step"] == 20
    assert second["test_accuracy_per_epoch"] == reference["test_accuracy_per_epoch"]
    step, state = saved_state(workdir)
    reference_step, reference_state = saved_state(reference_dir)
    assert step == reference_step == 20
    assert_trees_equal(state, reference_state)
    assert second["last_test_accuracy"] == reference["last_test_accuracy"]


def test_a_notebooks_own_method_trains_as_the_registered_one(uninterrupted, tmp_path):
    """`train(method=...)` with a callable of the `Context` (here building plain supervised
    training itself) logs the same first losses as ``config.method="supervised"``; a method whose
    stages the config's schedule does not name, or a task the config is not of, is refused before
    anything is written."""
    reference_dir, _ = uninterrupted

    def own(context):
        return methods.supervised(context.model, context.optimizer, target_loss=context.target_loss)

    def stop_at_5(step):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    workdir = tmp_path / "own"
    assert train(tiny_config(), str(workdir), method=own, step_callback=stop_at_5)["step"] == 5

    def first_record(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return next(r for r in map(json.loads, lines) if r["split"] == "train" and r["step"] == 5)

    assert first_record(workdir) == first_record(pathlib.Path(reference_dir))
    plain = methods.supervised(None, None)
    staged = StagedMethod(init=plain.init, steps={"warmup": plain.step, "main": plain.step},
                          predict=plain.predict)
    with pytest.raises(ValueError, match=r"no step for the stages \['train'\]"):
        train(tiny_config(), str(tmp_path / "staged"), method=staged)
    assert not (tmp_path / "staged").exists()
    with pytest.raises(ValueError, match="task='keypoints', but the config is of task 'classif"):
        train(tiny_config(), str(tmp_path / "task"), task="keypoints")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_request_a_checkpointed_stop(signum):
    """Both signals set the flag on which the loop saves and stops (the SIGTERM test above runs
    that path end to end); a second Ctrl-C is Python's KeyboardInterrupt, and on exit the previous
    handlers are back."""
    # Python's own SIGINT handler, as a script has it (pytest-xdist workers ignore SIGINT).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        with StopRequest() as stop:
            os.kill(os.getpid(), signum)
            assert stop.requested
            if signum == signal.SIGINT:
                with pytest.raises(KeyboardInterrupt):
                    os.kill(os.getpid(), signal.SIGINT)
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        signal.signal(signal.SIGINT, outer)


def test_a_diverging_run_stops_unsaved_flagged_and_fails(tmp_path):
    """lr=1e6: train.py exits non-zero naming the step; summary.json says so; metrics.jsonl is
    standard JSON (null, not bare NaN); no checkpoint holds the non-finite state."""
    workdir = tmp_path / "run"
    env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # as this module compiles
    result = subprocess.run(
        [sys.executable, "train.py", "--config=configs/quickstart.py", f"--workdir={workdir}",
         "--config.reduced=200", "--config.batch_size=20", "--config.epochs=2",
         "--config.log_every_steps=1", "--config.save_image_grid=False",
         "--config.optimizer.lr=1e6"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Training diverged: a non-finite loss or state at step" in result.stderr
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["diverged"] and summary["step"] == summary["diverged_at_step"] <= 10
    assert "best_test_accuracy" not in summary  # nothing evaluated, nothing ranked

    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")

    records = [json.loads(line, parse_constant=reject)
               for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["nonfinite"] == 1.0 and records[-1]["step"] == summary["diverged_at_step"]
    assert not (workdir / "checkpoints").exists() or not os.listdir(workdir / "checkpoints")


def test_metrics_and_summaries_write_non_finite_values_as_null(tmp_path):
    writer = MetricsWriter(str(tmp_path))
    writer.write(3, "train", {"loss": float("nan"), "accuracy": 0.5, "lr": float("inf")})
    writer.close()
    write_json_atomic(str(tmp_path / "summary.json"), {"best": float("-inf"), "runs": [1.0]})
    line = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(line) == {"step": 3, "split": "train", "loss": None, "accuracy": 0.5,
                                "lr": None}
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads((tmp_path / "summary.json").read_text()) == {"best": None, "runs": [1.0]}


def test_nonfinite_guard_skips_or_flags_a_step():
    """skip: a non-finite step keeps the old state but advances its counter; stop: the state is
    returned as computed; both flag the step. lr=inf and nan are refused by validate."""
    from jaxaug.train.steps import guard_nonfinite
    from jaxaug.train.config import validate
    from flax import struct

    @struct.dataclass
    class State:
        step: jax.Array
        params: jax.Array

    def step(state, batch):
        params = state.params * batch
        return State(state.step + 1, params), {"loss": params.sum()}

    state = State(jnp.int32(0), jnp.ones(3))
    for mode in ("skip", "stop"):
        guarded = jax.jit(guard_nonfinite(step, mode))
        ok, ok_metrics = guarded(state, jnp.full(3, 2.0))
        bad, bad_metrics = guarded(state, jnp.asarray([1.0, jnp.nan, 1.0]))
        np.testing.assert_array_equal(ok.params, [2.0, 2.0, 2.0])
        assert float(ok_metrics["nonfinite"]) == 0 and float(bad_metrics["nonfinite"]) == 1
        assert int(bad.step) == 1
        if mode == "skip":
            np.testing.assert_array_equal(bad.params, state.params)
        else:
            assert np.isnan(bad.params[1])
    for lr in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="optimizer.lr"):
            validate(tiny_config(**{"optimizer.lr": lr}), 1)
    with pytest.raises(ValueError, match="config.nonfinite='ignore'"):
        validate(tiny_config(nonfinite="ignore"), 1)


def test_resume_refuses_a_changed_config(uninterrupted):
    workdir, _ = uninterrupted
    with pytest.raises(ValueError, match=r"different config.*optimizer\.lr"):
        train_and_evaluate(tiny_config(tensorboard=True, **{"optimizer.lr": 0.05}), workdir)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"eval_every": 0}, "eval_every"),
        ({"dtype": "float16"}, "dtype"),
        ({"optimizer.momentum": 1.0}, "optimizer.momentum"),
        ({"augment.cutout": -1}, "augment.cutout"),
        ({"augment.policy": "autoaugment"}, "augment.policy"),
        ({"augment.magnitude": 11}, "augment.magnitude"),
        ({"augment.crop": "center"}, "augment.crop"),
        ({"augment.crop_scale": (0.5, 0.2)}, "augment.crop_scale"),
        ({"augment.crop_ratio": (0.0, 1.0)}, "augment.crop_ratio"),
    ],
)
def test_invalid_config_names_the_field(tmp_path, overrides, field):
    with pytest.raises(ValueError, match=rf"config\.{field}="):
        train_and_evaluate(tiny_config(**overrides), str(tmp_path))


def test_unknown_method_model_or_data_are_named_before_anything_is_written(tmp_path):
    """A run that fails on its config, model, method or data leaves its workdir untouched, so the
    corrected command can use it."""
    missing = tmp_path / "no-such-folder"
    for name, overrides, match in (("a", {"method": "no-such-method"}, "'no-such-method'"),
                                   ("b", {"model": "wrn-11-1"}, "'wrn-11-1'"),
                                   ("c", {"dataset": f"imagefolder:{missing}"}, str(missing))):
        with pytest.raises(ValueError, match=match):
            train_and_evaluate(tiny_config(**overrides), str(tmp_path / name))
        assert not os.path.exists(tmp_path / name), name


def test_a_second_run_on_a_busy_workdir_is_refused(tmp_path):
    with workdir_lock(str(tmp_path)):
        with pytest.raises(WorkdirLockedError, match=f"in use by process {os.getpid()}"):
            train_and_evaluate(tiny_config(), str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [".lock"]  # the refused run wrote nothing


def test_a_workdir_without_a_checkpoint_takes_a_new_config(tmp_path):
    """config.json alone (a run that died before its first checkpoint) is no run to resume: a
    different config replaces it; once a checkpoint exists, a change is refused."""
    workdir = str(tmp_path)
    check_config_for_resume(workdir, tiny_config(model="wrn-bogus"), is_main=True)
    check_config_for_resume(workdir, tiny_config(), is_main=True)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"] == "wrn-10-1"
    os.makedirs(os.path.join(workdir, "checkpoints", "10"))
    with pytest.raises(ValueError, match=r"different config.*\['model'\]"):
        check_config_for_resume(workdir, tiny_config(model="wrn-16-1"), is_main=True)


def test_train_py_rejects_unknown_config_field():
    result = subprocess.run(
        [sys.executable, "train.py", "--config=configs/quickstart.py", "--config.bach_size=3"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "bach_size" in result.stderr


MULTI_DEVICE_SCRIPT = r"""
import json, jax, numpy as np
from jaxaug import data, methods, models
from jaxaug.train import base_config, batch_sharding, make_mesh, make_optimizer
from jaxaug.train.steps import compile_steps

config = base_config()
config.model, config.batch_size, config.augment.cutout = "wrn-10-1", 32, 8
dataset = data.load_dataset("synthetic", reduced=320)
model = models.create(config.model, num_classes=dataset.num_classes)
method = methods.supervised(model, make_optimizer(config, 10))
batches = list(data.epoch_batches(dataset.train, 32, seed=0, epoch=0))[:3]

def max_diff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))

def steps_from_init(mesh):
    # One step from the same initial state on each batch, so differences cannot compound.
    steps = compile_steps(method, dataset, config, mesh)
    initial = jax.device_get(steps.init(jax.random.key(0)))
    results = []
    for batch in batches:
        state = jax.device_put(initial, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
        batch = jax.device_put(batch, batch_sharding(mesh))
        devices = len(batch["image"].sharding.device_set)
        state, metrics = steps.train_step(state, batch)
        results.append((jax.device_get(state), jax.device_get(metrics)))
    return initial, results, devices

initial, eight, eight_devices = steps_from_init(make_mesh())
_, one, one_devices = steps_from_init(make_mesh(jax.devices()[:1]))
print(json.dumps({
    "devices": jax.device_count(), "eight_devices": eight_devices, "one_devices": one_devices,
    "moved": min(max_diff(initial.params, s.params) for s, _ in eight),
    "param_diff": max(max_diff(a.params, b.params) for (a, _), (b, _) in zip(eight, one)),
    "stats_diff": max(max_diff(a.batch_stats, b.batch_stats) for (a, _), (b, _) in zip(eight, one)),
    "eight_loss": [float(m["loss"]) for _, m in eight], "one_loss": [float(m["loss"]) for _, m in one],
}))
"""


def test_step_on_eight_devices_equals_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # as the rest of this module (unoptimized_xla)
    result = subprocess.run(
        [sys.executable, "-c", MULTI_DEVICE_SCRIPT], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8 and report["eight_devices"] == 8 and report["one_devices"] == 1
    np.testing.assert_allclose(report["eight_loss"], report["one_loss"], rtol=1e-6)
    assert report["moved"] > 1e-3, report  # the step really trained
    # Equal up to float32 reassociation. The bound is loose because XLA's CPU convolution can be
    # less accurate at batch 32 than at 4 per device: on one of these batches the 1-device weight
    # gradient of one kernel is 0.5% (of its largest entry) away from a float64 reference while
    # the 8-device one is within 2e-6; after an lr-0.1 step that is ~2e-5 in the parameters.
    assert report["param_diff"] < 1e-4, report
    assert report["stats_diff"] < 1e-5, report


def test_config_policy_reaches_the_train_step():
    from jaxaug import policies
    from jaxaug.data import augment
    from jaxaug.train.steps import augmentation

    config = tiny_config(**{"augment.policy": "randaugment", "augment.num_ops": 1,
                            "augment.magnitude": 3})
    mean = np.array([0.5, 0.4, 0.3])
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    key, batch = jax.random.key(0), {"image": images}
    want_fn = functools.partial(augment.standard, pad=4, cutout=8, cutout_fill=mean,
                                policy=policies.randaugment(1, 3))
    got, want = jax.jit(lambda k, b: (augmentation(config.augment, mean)(k, b)["image"],
                                      want_fn(k, b)["image"]))(key, batch)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    without = jax.jit(augmentation(tiny_config().augment, mean))(key, batch)["image"]
    assert not np.array_equal(np.asarray(got), np.asarray(without))


def test_progress_bar_shows_the_losses_a_stage_logs():
    from jaxaug.train.loop import _progress_losses
    assert _progress_losses({"loss": 0.51234, "accuracy": 0.9, "generator_loss": 2.0}) == {
        "loss": "0.512"}
    # ASR + AHO's pre-training stage trains only the augmentation network: no "loss" (the bar
    # showed loss=nan there).
    assert _progress_losses({"adversary_loss": 0.7822, "kl_scale": 0.02}) == {
        "adversary_loss": "0.782"}
