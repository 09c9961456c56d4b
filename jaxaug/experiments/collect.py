"""One report from a plan's runs made in several places: a long plan resumed from more than one
commit, or arms added later from a newer worktree beside baselines that were already run.

  python -m jaxaug.experiments.collect --plan=plans/cifar10_cpu.py:evidence \\
      --runs=../wt/ev2/experiments/evidence_cpu@568ca62 \\
      --runs=../wt/ev25/experiments/evidence_issue25@0616728 --out=docs/evidence --name=cpu

Each ``--runs`` is a harness ``--out`` directory and the commit its runs were made at. For each
(arm, seed) of the plan, the first directory with a finished (or diverged) run of it supplies the
record, which names its commit and directory. A run counts only if its ``config.json`` agrees with
the plan's resolved config on every field the run recorded, and records every field the plan
overrides or its config file sets to other than the default (`base_config` of the run's task);
fields the run lacks were added to the code after it, and the run trained as their defaults do (a
plan that sets one otherwise asks for what the run did not do). Whether two commits train a config alike is not checked here: say so
with the report (for example by comparing their logged metrics). A run found nowhere is reported
"not run"; one still in progress "unfinished". Writes ``<name>.json`` (the plan's regime and the
records), ``<name>.md`` and ``<name>.png`` into ``--out``.
"""

import json
import os
import sys
from typing import Any

from absl import app, flags

from jaxaug.experiments.plan import Arm, Plan, load_plan
from jaxaug.experiments.report import markdown_table, write_outputs
from jaxaug.experiments.runner import collect_record, run_state
from jaxaug.train.config import base_config, is_run_control

FLAGS = flags.FLAGS


def parse_source(spec: str) -> tuple[str, str]:
    """``dir@commit`` -> (dir, commit); the commit is required (records must name it)."""
    directory, at, commit = spec.rpartition("@")
    if not at or not directory or not commit:
        raise ValueError(f"--runs={spec!r}: expected <harness output dir>@<commit>")
    if not os.path.isdir(directory):
        raise ValueError(f"--runs={spec!r}: directory {directory!r} not found")
    return directory, commit


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_disagreement(arm: Arm, seed: int, recorded: dict[str, Any]) -> list[str]:
    """The fields where a run's recorded config is not the plan's, lacks an override, or lacks a
    field the plan sets to other than its default (the run cannot have trained with that value;
    run-control fields, which change nothing trained, excepted)."""
    config = arm.resolve(seed)
    plan = _flatten(json.loads(config.to_json()))
    default = _flatten(json.loads(base_config(config.get("task", "classification")).to_json()))
    run = _flatten(recorded)
    differ = [f"{k}: run {run[k]!r}, plan {plan.get(k, '<absent>')!r}"
              for k in sorted(run) if plan.get(k, object()) != run[k]]
    lacking = [f"{k}: absent from the run, plan overrides it" for k in sorted(arm.overrides)
               if k not in run]
    lacking += [f"{k}: absent from the run, plan {plan[k]!r}, default "
                f"{default.get(k, '<none>')!r}" for k in sorted(plan)
                if k not in run and k not in arm.overrides and not is_run_control(k)
                and plan[k] != default.get(k, object())]
    return differ + lacking


def _read_config(workdir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def find_record(arm: Arm, seed: int, sources: list[tuple[str, str]]) -> dict[str, Any]:
    """The record of (arm, seed) from the first source holding a finished or diverged run of it."""
    epochs = arm.resolve(seed).epochs
    unfinished = []
    for directory, commit in sources:
        workdir = os.path.join(directory, arm.name, f"seed{seed}")
        state = run_state(workdir, epochs)
        if state == "new":
            continue
        record = {**collect_record(arm, seed, workdir, None, workdir + ".log"), "commit": commit}
        if state == "resume":
            unfinished.append(record)
            continue
        recorded = _read_config(workdir)
        disagreement = (["config.json unreadable"] if recorded is None
                        else config_disagreement(arm, seed, recorded))
        if disagreement:
            return {**record, "status": "failed", "final_test_score": None,
                    "best_test_score": None, "test_score_at_best_val": None,
                    "train_accuracy": None, "error": f"{workdir}: not the plan's config: " + "; ".join(disagreement[:5])}
        return record
    if unfinished:
        record = unfinished[0]
        return {**record, "status": "unfinished",
                "error": f"{record['epochs_completed']} of {epochs} epochs in {record['workdir']}"}
    return {"arm": arm.name, "seed": seed, "status": "not run", "commit": None, "workdir": None,
            "error": "no run in " + ", ".join(d for d, _ in sources),
            "final_test_score": None, "best_test_score": None, "test_score_at_best_val": None,
            "train_accuracy": None, "wall_time_s": None, "epochs_completed": 0,
            "test_score_per_epoch": []}


def collect(plan: Plan, sources: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One record per (arm, seed) in plan order; an ok record also holds its score under the
    metric's own name (``test_accuracy``, ``test_pckh``, ...)."""
    records = []
    for arm in plan.arms.values():
        for seed in plan.seeds:
            record = find_record(arm, seed, sources)
            if record["status"] == "ok":
                record[f"test_{record['metric']}"] = record["final_test_score"]
            records.append(record)
    return records


def define_flags() -> None:
    flags.DEFINE_string("plan", None, "The plan (path[:arg]) whose runs are collected.")
    flags.DEFINE_multi_string("runs", None, "A harness output dir and its commit: <dir>@<commit>; "
                              "repeat, the first dir holding a run wins.")
    flags.DEFINE_string("out", None, "Directory for the report.")
    flags.DEFINE_string("name", "results", "The report's file stem: <name>.json, .md and .png.")
    flags.DEFINE_list("arms", None,
                      "Only these arms (with the baseline and their matched arms); default all.")
    flags.mark_flags_as_required(["plan", "runs", "out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        plan = load_plan(FLAGS.plan, FLAGS.arms)
        sources = [parse_source(spec) for spec in FLAGS.runs]
    except ValueError as e:
        sys.exit(f"error: {e}")
    records = collect(plan, sources)
    os.makedirs(FLAGS.out, exist_ok=True)
    matched = plan.matched_baselines()
    write_outputs(records, plan.baseline, FLAGS.out, matched, regime=plan.regime, stem=FLAGS.name)
    print(markdown_table(records, plan.baseline, matched))


if __name__ == "__main__":
    define_flags()
    app.run(main)
