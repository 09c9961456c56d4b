"""Runs each (arm, seed) of a plan as a ``train.py`` subprocess in ``<out>/<arm>/seed<seed>``.

A run is finished when its ``summary.json`` says neither interrupted nor diverged and
``epochs_completed`` equals the config's ``epochs``; a finished run is skipped. Any other run with
files is started again on its workdir, which ``train.py`` resumes from its last checkpoint. A
diverged run is final (rerunning it would diverge again): it is not rerun and never ranked. A
finished or diverged run whose ``config.json`` is not the plan's resolved config (the plan changed)
is reported failed, neither skipped nor rerun; so is a run just trained whose ``config.json`` is
not it (train.py parsed an override otherwise), which a rerun would refuse. Each run's stdout and
stderr go to ``<out>/<arm>/seed<seed>.log``.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jaxaug.experiments.plan import Arm, Plan, config_hash, json_hash

TRAIN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "train.py")

# A runner trains one run: (command, workdir, log path) -> exit status.
Runner = Callable[[list[str], str, str], int]


def subprocess_runner(command: list[str], workdir: str, log_path: str) -> int:
    with open(log_path, "w") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _flat(tree: dict, prefix: str = "") -> dict[str, str]:
    """Dotted field -> its JSON (hashable, so that two configs' fields can be compared as sets)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value)
    return flat


def run_state(workdir: str, epochs: int) -> str:
    """"finished", "diverged" (both final), "resume" (files from an unfinished run) or "new"."""
    summary = _read_json(os.path.join(workdir, "summary.json"))
    if summary is not None:
        if summary.get("diverged"):
            return "diverged"
        if not summary.get("interrupted") and summary.get("epochs_completed") == epochs:
            return "finished"
    return "resume" if os.path.isdir(workdir) and os.listdir(workdir) else "new"


def _last_train_accuracy(workdir: str) -> float | None:
    """The train accuracy of the last logged window of steps, from metrics.jsonl."""
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return None
    train = [r["accuracy"] for r in records if r.get("split") == "train" and r.get("accuracy") is not None]
    return train[-1] if train else None


def _last_error(log_path: str, returncode: int) -> str:
    """The log's last non-empty line (a Python traceback ends with the exception)."""
    try:
        with open(log_path) as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        lines = []
    return f"exit status {returncode}: {lines[-1] if lines else 'no output'}"


def collect_record(arm: Arm, seed: int, workdir: str, returncode: int | None, log_path: str) -> dict[str, Any]:
    """One results.json record: status "ok", "diverged" or "failed" (with its error); the task's
    main test score (``metric``: accuracy, or PCKh / PCK / NME; ``maximize`` its direction) only
    for "ok" runs, so that nothing else can be ranked."""
    config = arm.resolve(seed)
    summary = _read_json(os.path.join(workdir, "summary.json")) or {}
    # The task's main score: accuracy, or PCKh / PCK / NME for keypoints (older summaries: accuracy).
    metric = summary.get("metric", "accuracy")
    # One entry per epoch, None for those not evaluated (config.eval_every).
    curve = summary.get(f"test_{metric}_per_epoch", [])
    record: dict[str, Any] = {
        "arm": arm.name, "seed": seed, "workdir": workdir, "config_hash": config_hash(config),
        "status": "ok", "error": None, "metric": metric, "maximize": summary.get("maximize", True),
        "final_test_score": None, "best_test_score": None, "test_score_at_best_val": None,
        "train_accuracy": None, "wall_time_s": summary.get("wall_time_s"),
        "epochs_completed": summary.get("epochs_completed", 0), "test_score_per_epoch": curve,
    }
    if summary.get("diverged"):
        record.update(status="diverged",
                      error=f"diverged at step {summary.get('diverged_at_step')}")
    elif returncode not in (None, 0):
        record.update(status="failed", error=_last_error(log_path, returncode))
    elif run_state(workdir, config.epochs) != "finished":  # e.g. stopped by a signal, exit 0
        record.update(status="failed", error=f"did not finish: {summary.get('epochs_completed', 0)} "
                                             f"of {config.epochs} epochs, interrupted "
                                             f"{summary.get('interrupted')}")
    elif f"last_test_{metric}" not in summary:  # no evaluation: nothing to rank, say so
        record.update(status="failed", error=f"{os.path.join(workdir, 'summary.json')} has no "
                                             f"last_test_{metric}: the run was never evaluated")
    else:
        record.update(final_test_score=summary[f"last_test_{metric}"],
                      best_test_score=summary.get(f"best_test_{metric}"),
                      test_score_at_best_val=summary.get(f"test_{metric}_at_best_val"),
                      train_accuracy=_last_train_accuracy(workdir))
    return record


def run_plan(plan: Plan, out: str, parallel: int = 1, runner: Runner = subprocess_runner,
             python: str = sys.executable, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Runs (or skips) every (arm, seed), ``parallel`` at a time; a record per run in plan order."""
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, got {parallel}")
    jobs = [(arm, seed) for arm in plan.arms.values() for seed in plan.seeds]

    def one(job):
        arm, seed = job
        workdir = os.path.join(out, arm.name, f"seed{seed}")
        log_path = os.path.join(out, arm.name, f"seed{seed}.log")
        config = arm.resolve(seed)
        state = run_state(workdir, config.epochs)
        previous = _read_json(os.path.join(workdir, "config.json"))
        if state in ("finished", "diverged") and json_hash(previous) != config_hash(config):
            # the plan changed since this run: its results are not this arm's
            log(f"{arm.name} seed {seed}: {workdir} holds a run of another config")
            return {**collect_record(arm, seed, workdir, None, log_path), "status": "failed",
                    "final_test_score": None, "best_test_score": None, "test_score_at_best_val": None, "train_accuracy": None,
                    "error": f"{workdir} holds a {state} run " + (
                        "without a readable config.json" if previous is None else
                        f"of a different config (hash {json_hash(previous)}, the plan's "
                        f"{config_hash(config)})") + ": use another --out or remove it"}
        if state in ("finished", "diverged"):
            log(f"{arm.name} seed {seed}: {state}, skipped")
            return collect_record(arm, seed, workdir, None, log_path)
        os.makedirs(os.path.dirname(workdir), exist_ok=True)
        log(f"{arm.name} seed {seed}: {'resuming' if state == 'resume' else 'starting'}")
        command = [python, TRAIN_PY, *arm.flags(seed), f"--workdir={workdir}"]
        try:
            returncode = runner(command, workdir, log_path)
        except Exception as e:  # a runner that cannot start the process: a failed run, reported
            return {**collect_record(arm, seed, workdir, None, log_path),
                    "status": "failed", "error": f"{type(e).__name__}: {e}"}
        record = collect_record(arm, seed, workdir, returncode, log_path)
        written = _read_json(os.path.join(workdir, "config.json"))
        if record["status"] == "ok" and json_hash(written) != config_hash(config):
            # train.py parsed the flags into another config than the plan resolved: the run
            # is not this arm's (and a rerun would say so), so it is not ranked now either
            plan_fields = _flat(json.loads(config.to_json())).items()
            differ = sorted({k for k, _ in set(_flat(written or {}).items()) ^ set(plan_fields)})
            record.update(status="failed", final_test_score=None, best_test_score=None,
                          test_score_at_best_val=None, train_accuracy=None,
                          error=f"{workdir}/config.json is not the plan's config (fields "
                                f"{differ})")
        log(f"{arm.name} seed {seed}: {record['status']}"
            + (f" ({record['error']})" if record["error"] else ""))
        return record

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, jobs))
