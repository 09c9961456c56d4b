"""The comparison harness: aggregation on hand-made records, plan errors, skip/resume, and one
end-to-end 2-arm, 2-seed plan of tiny runs with --parallel=2."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxaug.experiments import aggregate, markdown_table, parse_plan, run_plan, run_state
from jaxaug.experiments.collect import collect, parse_source
from jaxaug.experiments.plan import json_hash, load_plan
from jaxaug.experiments.report import curve_panels, write_outputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(REPO, "configs", "quickstart.py")


def record(arm, seed, final, best=None, status="ok", error=None):
    return {"arm": arm, "seed": seed, "status": status, "error": error,
            "final_test_score": final, "best_test_score": final if best is None else best,
            "train_accuracy": None, "wall_time_s": 1.0, "config_hash": "x",
            "test_score_per_epoch": [] if final is None else [final / 2, final]}


def hand_made():
    """base: 0.50, 0.60, 0.70; aug: 0.55, 0.70, (seed 2 diverged) and a crashed seed 3."""
    return [record("base", 0, 0.50), record("base", 1, 0.60), record("base", 2, 0.70, best=0.80),
            record("aug", 0, 0.55), record("aug", 1, 0.70),
            record("aug", 2, None, status="diverged", error="diverged at step 7"),
            record("aug", 3, None, status="failed", error="exit status 1: ValueError: boom")]


def test_aggregate_closed_form_means_stds_and_paired_differences():
    stats = aggregate(hand_made(), baseline="base")
    base, aug = stats["base"], stats["aug"]
    assert (base["runs"], base["ok"], aug["runs"], aug["ok"]) == (3, 3, 4, 2)
    assert base["final_mean"] == pytest.approx(0.60) and base["final_std"] == pytest.approx(0.10)
    assert base["best_mean"] == pytest.approx(1.9 / 3)
    assert base["best_std"] == pytest.approx(np.std([0.5, 0.6, 0.8], ddof=1))
    # aug: 0.625 ± std(0.55, 0.70); diverged and failed runs carry no accuracy into the means
    assert aug["final_mean"] == pytest.approx(0.625)
    assert aug["final_std"] == pytest.approx(0.15 / math.sqrt(2))
    # paired by seed, on seeds 0 and 1 only: +0.05 and +0.10
    assert aug["diff_n"] == 2 and aug["diff_mean"] == pytest.approx(0.075)
    assert aug["diff_std"] == pytest.approx(0.05 / math.sqrt(2))
    assert base["diff_mean"] == 0.0 and base["diff_n"] == 3


def test_markdown_table_shows_means_and_failed_runs_with_their_errors():
    table = markdown_table(hand_made(), baseline="base")
    assert "| base | 3 / 3 | 60.00 ± 10.00 | 63.33 ± 15.28 | baseline |" in table
    assert "| aug | 2 / 4 (the others below) | 62.50 ± 10.61 | 62.50 ± 10.61 | +7.50 ± 3.54 (2) |" in table
    assert "| aug | 2 | diverged | diverged at step 7 |" in table
    assert "| aug | 3 | failed | exit status 1: ValueError: boom |" in table
    one = markdown_table([record("base", 0, 0.5)], baseline="base")
    assert "| base | 1 / 1 | 50.00 ± n/a |" in one  # one run: no spread


def test_a_python_plan_takes_an_argument(tmp_path):
    path = tmp_path / "plans.py"
    path.write_text(f"def get_plan(arg='short'):\n"
                    f"    epochs = {{'short': 1, 'long': 3}}[arg]\n"
                    f"    return {{'baseline': 'a', 'seeds': [0], 'arms': {{'a': {{'config': {QUICKSTART!r},"
                    f" 'overrides': {{'epochs': epochs}}}}}}}}\n")
    assert load_plan(str(path)).arms["a"].resolve(0).epochs == 1
    assert load_plan(f"{path}:long").arms["a"].resolve(0).epochs == 3
    json_path = tmp_path / "plan.json"
    json_path.write_text(json.dumps(plan_dict()))
    with pytest.raises(ValueError, match="a .json plan takes no argument"):
        load_plan(f"{json_path}:long")
    # bad input named as a ValueError (what `python -m jaxaug.experiments` reports), not a raw
    # TypeError or a JSON error without the file
    fixed = tmp_path / "fixed.py"
    fixed.write_text("def get_plan():\n    return {}\n")
    with pytest.raises(ValueError, match=r"fixed\.py.*takes no argument, got 'long'"):
        load_plan(f"{fixed}:long")
    needs = tmp_path / "needs.py"
    needs.write_text("def get_plan(arg):\n    return {}\n")
    with pytest.raises(ValueError, match=r"needs\.py.*needs an argument"):
        load_plan(str(needs))
    broken = tmp_path / "broken.json"
    broken.write_text('{"baseline": ')
    with pytest.raises(ValueError, match=r"broken\.json.*not valid JSON"):
        load_plan(str(broken))


def test_matched_baselines_pair_each_arm_with_its_own():
    """learned (0.58, 0.72) against its matched aug (0.55, 0.70): +0.03, +0.02; against base:
    +0.08, +0.12. `--arms=learned` keeps its matched arm and the baseline."""
    records = hand_made() + [record("learned", 0, 0.58), record("learned", 1, 0.72)]
    stats = aggregate(records, baseline="base", matched={"learned": "aug"})
    learned = stats["learned"]
    assert learned["matched"] == "aug" and learned["matched_diff_n"] == 2
    assert learned["matched_diff_mean"] == pytest.approx(0.025)
    assert learned["matched_diff_std"] == pytest.approx(0.01 / math.sqrt(2))
    assert learned["diff_mean"] == pytest.approx(0.10) and "matched" not in stats["aug"]
    table = markdown_table(records, baseline="base", matched={"learned": "aug"})
    assert "| learned | 2 / 2 | 65.00 ± 9.90 | 65.00 ± 9.90 | +10.00 ± 2.83 (2) | `aug` | +2.50 ± 0.71 (2) |" in table
    plan = parse_plan(plan_dict(arms={"a": {"config": QUICKSTART}, "b": {"config": QUICKSTART},
                                      "c": {"config": QUICKSTART, "matched": "b"}}), ["c"])
    assert list(plan.arms) == ["a", "b", "c"] and plan.matched_baselines() == {"c": "b"}


def test_with_a_validation_split_the_differences_compare_the_scores_at_the_best_val_epoch():
    """A quantized run whose last epoch collapsed (0.73) after its best validation epoch (0.85):
    the score reported, and compared, is the one at the best validation epoch."""
    records = [record("fp", 0, 0.97), record("818", 0, 0.73, best=0.86)]
    records[0]["test_score_at_best_val"], records[1]["test_score_at_best_val"] = 0.97, 0.85
    stats = aggregate(records, "fp")
    assert stats["818"]["diff_mean"] == pytest.approx(-0.12)
    table = markdown_table(records, "fp")
    assert "| at best val − baseline (n) |" in table and "best validation epoch." in table
    assert "| 818 | 1 / 1 | 73.00 ± n/a | 85.00 ± n/a (at best val; best test 86.00 ± n/a) | " \
           "-12.00 ± n/a (1) |" in table, table
    records[0]["test_score_at_best_val"] = None  # not every run has one: final scores
    assert aggregate(records, "fp")["818"]["diff_mean"] == pytest.approx(-0.24)
    assert "| final − baseline (n) |" in markdown_table(records, "fp")


def test_write_outputs_never_ranks_a_diverged_run(tmp_path):
    write_outputs(hand_made(), "base", str(tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    diverged = [r for r in results["runs"] if r["status"] == "diverged"]
    assert len(diverged) == 1 and diverged[0]["final_test_score"] is None
    assert results["arms"]["aug"]["ok"] == 2
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_plot_pairs_each_learned_arm_with_its_matched_baseline(tmp_path):
    arms = ["cropflip", "cutout", "astn", "astn_meta", "aa"]
    matched = {"astn": "cutout", "astn_meta": "astn"}
    assert curve_panels(arms, matched) == [
        ("arms", ["cropflip", "cutout", "aa"]), ("astn vs cutout", ["cutout", "astn"]),
        ("astn_meta vs astn", ["astn", "astn_meta"])]
    assert curve_panels(arms) == [("arms", arms)]
    assert curve_panels(["a"], {"a": "b"}) == [("a vs b", ["b", "a"])]
    # hand_made()'s "aug" paired with "base": two panels ("base"; "base" and "aug"), side by side.
    write_outputs(hand_made(), "base", str(tmp_path), matched={"aug": "base"})
    from PIL import Image
    with Image.open(tmp_path / "curves.png") as one_pair:
        assert one_pair.width > one_pair.height * 1.5, one_pair.size
    write_outputs(hand_made(), "base", str(tmp_path))
    with Image.open(tmp_path / "curves.png") as single:
        assert single.width < single.height * 1.6, single.size


def plan_dict(**changes):
    raw = {"baseline": "a", "seeds": [0, 1],
           "arms": {"a": {"config": QUICKSTART}, "b": {"config": QUICKSTART, "overrides": {"epochs": 1}}}}
    raw.update(changes)
    return raw


@pytest.mark.parametrize("raw, only, message", [
    (plan_dict(baseline="c"), None, "baseline 'c' is not an arm"),
    (plan_dict(), ["a", "zz"], "unknown arm(s) ['zz']"),
    (plan_dict(arms={"a": {"config": "configs/missing.py:arg"}}), None,
     "arm 'a': config file 'configs/missing.py' not found"),
    (plan_dict(seeds=[0, "1"]), None, "'seeds' must be a non-empty list of ints, got [0, '1']"),
    (plan_dict(seeds="0,1"), None, "'seeds' must be a non-empty list of ints, got '0,1'"),
    (plan_dict(seeds=[True]), None, "'seeds' must be a non-empty list of ints, got [True]"),
    (plan_dict(arms={"a": {"config": QUICKSTART, "overrides": {"optimizer.nope": 1}}}), None,
     "arm 'a': override 'optimizer.nope': config has no field 'optimizer.nope'"),
    (plan_dict(arms={"a": {"config": QUICKSTART, "matched": "zz"}}), None,
     "arm 'a': matched baseline 'zz' is not another arm"),
    (plan_dict(regime="1,000 images"), None, "'regime' must be a dict, got str"),
    (plan_dict(regime={"model": object()}), None, "'regime' must be JSON-serializable"),
    (plan_dict(seeds=[0, 1, 0]), None, "'seeds' has duplicates: [0, 1, 0]"),
    (plan_dict(baselines="a"), None, "plan: unknown keys ['baselines']"),
    (plan_dict(arms={"a": {"config": QUICKSTART, "override": {}}}), None,
     "arm 'a': unknown keys ['override']"),
    (plan_dict(arms={"a/b": {"config": QUICKSTART}}), None, "arm name 'a/b' must be"),
    (plan_dict(arms={"a": {"config": QUICKSTART, "overrides": {"seed": 3}}}), None,
     "arm 'a': 'seed' is set by the plan's seeds"),
    (plan_dict(arms={"a": {"config": QUICKSTART, "matched": "a"}}), None,
     "arm 'a': matched baseline 'a' is not another arm"),
    (plan_dict(arms={"a": {"config": QUICKSTART, "overrides": {"epochs": "ten"}}}), None,
     "arm 'a': override epochs='ten'"),
])
def test_bad_plans_get_errors_naming_what_is_wrong(raw, only, message):
    with pytest.raises(ValueError) as e:
        parse_plan(raw, only)
    assert message in str(e.value)


def test_only_seeds_keeps_those_of_the_plans_seeds_in_its_order():
    raw = plan_dict(seeds=[0, 1, 2])
    assert parse_plan(raw, only_seeds=["2", "0"]).seeds == (0, 2)
    assert parse_plan(raw).seeds == (0, 1, 2)
    for bad in (["3"], ["one"], ["1", "-1"]):
        with pytest.raises(ValueError, match=rf"seed '{bad[-1]}' is not one of the plan's seeds "
                                             r"\[0, 1, 2\]"):
            parse_plan(raw, only_seeds=bad)


def test_finished_and_diverged_runs_are_skipped_others_resumed(tmp_path):
    """A fake runner records what it is asked to run and finishes a run by writing summary.json."""
    plan = parse_plan({"baseline": "a", "seeds": [0, 1, 2, 3, 4, 5, 6, 7],
                       "arms": {"a": {"config": QUICKSTART, "overrides": {"epochs": 2}}}})
    arm = plan.arms["a"]

    def summary(seed, config_seed=None, **fields):
        workdir = tmp_path / "a" / f"seed{seed}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = arm.resolve(seed if config_seed is None else config_seed)
        (workdir / "config.json").write_text(config.to_json())
        (workdir / "summary.json").write_text(json.dumps(
            {"epochs_completed": 2, "interrupted": False, "diverged": False,
             "last_test_accuracy": 0.5, "best_test_accuracy": 0.6, "wall_time_s": 3.0, **fields}))

    summary(0)  # finished
    summary(1, epochs_completed=1, interrupted=True)  # interrupted: resume
    summary(2, diverged=True, diverged_at_step=5, epochs_completed=0)  # final, never rerun
    # seed 3: new
    summary(4, config_seed=0)  # finished, but with another config than the plan's
    summary(5)
    (tmp_path / "a" / "seed5" / "config.json").unlink()  # finished, its config unknown
    summary(6, last_test_accuracy=None)  # finished, never evaluated: no score to rank
    json_path = tmp_path / "a" / "seed6" / "summary.json"
    json_path.write_text(json.dumps({k: v for k, v in json.loads(json_path.read_text()).items()
                                     if not k.endswith("test_accuracy")}))
    assert [run_state(str(tmp_path / "a" / f"seed{s}"), 2) for s in range(4)] == [
        "finished", "resume", "diverged", "new"]
    calls = []

    def runner(command, workdir, log_path):
        calls.append(command)
        if workdir.endswith("seed1"):
            summary(1)
            return 0
        if workdir.endswith("seed7"):  # finishes, but records another config than the plan's
            summary(7)
            written = json.loads((tmp_path / "a" / "seed7" / "config.json").read_text())
            written["optimizer"]["lr"] = 1.0
            (tmp_path / "a" / "seed7" / "config.json").write_text(json.dumps(written))
            return 0
        with open(log_path, "w") as f:
            f.write("Traceback (most recent call last):\nRuntimeError: out of memory\n")
        return 1

    records = run_plan(plan, str(tmp_path), parallel=2, runner=runner, log=lambda _: None)
    assert sorted(c[-1] for c in calls) == [f"--workdir={tmp_path}/a/seed{s}" for s in (1, 3, 7)]
    assert "--config.seed=1" in calls[0] + calls[1] and "--config.epochs=2" in calls[0]
    assert [r["status"] for r in records] == ["ok", "ok", "diverged", "failed", "failed",
                                              "failed", "failed", "failed"]
    assert records[1]["final_test_score"] == 0.5 and records[1]["best_test_score"] == 0.6
    assert records[2]["error"] == "diverged at step 5" and records[2]["best_test_score"] is None
    assert records[3]["error"] == "exit status 1: RuntimeError: out of memory"
    assert "holds a finished run of a different config" in records[4]["error"]
    assert records[4]["final_test_score"] is None
    assert records[5]["error"].startswith(f"{tmp_path}/a/seed5 holds a finished run without a "
                                          "readable config.json")
    assert records[6]["error"] == (f"{tmp_path}/a/seed6/summary.json has no last_test_accuracy: "
                                   "the run was never evaluated")
    assert records[7]["error"] == (f"{tmp_path}/a/seed7/config.json is not the plan's config "
                                   "(fields ['optimizer.lr'])")
    assert records[7]["final_test_score"] is None
    assert aggregate(records, "a")["a"]["ok"] == 2  # and the means take the two ok runs only
    assert len({r["config_hash"] for r in records}) == 8  # the seed is part of the config


def test_collect_takes_each_run_from_the_first_source_that_finished_it(tmp_path):
    """Two harness outputs at two commits: the first finished run wins over an unfinished one, a
    run that lacks a field the plan does not override (added to the code later) counts, one whose
    recorded config differs is failed with the field named, and a run found nowhere is "not run"."""
    plan = parse_plan({"baseline": "a", "seeds": [0, 1, 2, 3, 4], "regime": {"images": 100},
                       "arms": {"a": {"config": QUICKSTART, "overrides": {"epochs": 2}}}})
    arm = plan.arms["a"]
    old, new = tmp_path / "old", tmp_path / "new"

    def run(source, seed, config=None, **fields):
        workdir = source / "a" / f"seed{seed}"
        workdir.mkdir(parents=True)
        (workdir / "config.json").write_text(json.dumps(config or json.loads(arm.resolve(seed).to_json())))
        (workdir / "summary.json").write_text(json.dumps(
            {"epochs_completed": 2, "interrupted": False, "diverged": False,
             "last_test_accuracy": 0.5 + seed / 10, "best_test_accuracy": 0.9, **fields}))
        (workdir / "metrics.jsonl").write_text(json.dumps({"split": "train", "accuracy": 0.3}))

    older = json.loads(arm.resolve(0).to_json())
    del older["log_every_steps"]  # a field this commit did not have yet
    run(old, 0, older)
    run(old, 1, epochs_completed=1, interrupted=True)
    run(new, 1)
    changed = json.loads(arm.resolve(2).to_json())
    changed["optimizer"]["lr"] = 1.0
    run(new, 2, changed)
    run(new, 4, epochs_completed=1, interrupted=True)
    records = collect(plan, [(str(old), "c0ffee1"), (str(new), "beef002")])
    assert [(r["status"], r["commit"]) for r in records] == [
        ("ok", "c0ffee1"), ("ok", "beef002"), ("failed", "beef002"), ("not run", None),
        ("unfinished", "beef002")]
    assert [r["test_accuracy"] for r in records[:2]] == [0.5, 0.6]
    assert records[0]["train_accuracy"] == 0.3
    assert "not the plan's config: optimizer.lr: run 1.0, plan" in records[2]["error"]
    assert records[2]["final_test_score"] is None and records[2]["train_accuracy"] is None
    assert records[4]["final_test_score"] is None and records[4]["error"].startswith("1 of 2 epochs")
    assert "test_accuracy" not in records[4]

    def error_without(field):
        run_config = json.loads(arm.resolve(0).to_json())
        del run_config[field]
        (old / "a" / "seed0" / "config.json").write_text(json.dumps(run_config))
        return collect(plan, [(str(old), "c")])[0]["error"]

    # a field the plan overrides must be in the run's config, and so must one that the config
    # file sets to other than base_config's default (quickstart's WRN-10-1)
    assert "epochs: absent from the run, plan overrides it" in error_without("epochs")
    assert "model: absent from the run, plan 'wrn-10-1', default 'wrn-28-10'" in error_without("model")

    write_outputs(records, "a", str(tmp_path), regime=plan.regime, stem="cpu")
    report = json.loads((tmp_path / "cpu.json").read_text())
    assert report["regime"] == {"images": 100} and len(report["runs"]) == 5
    assert "| a | 2 | failed |" in (tmp_path / "cpu.md").read_text()
    assert (tmp_path / "cpu.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="expected <harness output dir>@<commit>"):
        parse_source(str(old))
    with pytest.raises(ValueError, match="not found"):
        parse_source(f"{tmp_path}/missing@abc")


def test_a_keypoint_plan_is_reported_in_its_own_score_and_direction(tmp_path):
    """Records take the summary's main score (here NME, lower is better), and the report names it."""
    plan = parse_plan({"baseline": "a", "seeds": [0],
                       "arms": {"a": {"config": QUICKSTART, "overrides": {"epochs": 1}}}})
    workdir = tmp_path / "a" / "seed0"
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text(plan.arms["a"].resolve(0).to_json())
    (workdir / "summary.json").write_text(json.dumps(
        {"epochs_completed": 1, "interrupted": False, "diverged": False, "metric": "nme",
         "maximize": False, "last_test_nme": 0.08, "best_test_nme": 0.07,
         "test_nme_at_best_val": 0.075, "test_nme_per_epoch": [0.08]}))
    [record] = run_plan(plan, str(tmp_path), runner=None, log=lambda _: None)
    assert (record["metric"], record["maximize"]) == ("nme", False)
    assert (record["final_test_score"], record["best_test_score"]) == (0.08, 0.07)
    assert record["test_score_per_epoch"] == [0.08]
    assert record["test_score_at_best_val"] == 0.075
    table = markdown_table([record], "a")
    assert "Test nme (%, lower is better)" in table
    assert "7.50 ± n/a (at best val; best test 7.00 ± n/a)" in table


def test_two_arms_two_seeds_end_to_end_with_parallel_runs(tmp_path):
    """Four tiny runs, two at a time, evaluated after the second epoch only; a rerun skips all
    four (a runner that fails if called) and returns the same records."""
    tiny = {"dataset": "synthetic", "reduced": 60, "batch_size": 20, "eval_batch_size": 1000,
            "epochs": 2, "eval_every": 2, "log_every_steps": 1, "save_image_grid": False,
            "model": "wrn-10-1"}
    plan = {"baseline": "plain", "seeds": [0, 1],
            "arms": {"plain": {"config": QUICKSTART, "overrides": tiny},
                     "lr": {"config": QUICKSTART, "overrides": {**tiny, "optimizer.lr": 0.2}}}}
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "jaxaug.experiments", f"--plan={plan_path}", f"--out={out}", "--parallel=2"]
    env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # compile time dominates tiny runs
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    runs = {(r["arm"], r["seed"]): r for r in results["runs"]}
    assert set(runs) == {("plain", 0), ("plain", 1), ("lr", 0), ("lr", 1)}
    for (arm, seed), r in runs.items():
        summary = json.loads((out / arm / f"seed{seed}" / "summary.json").read_text())
        config = json.loads((out / arm / f"seed{seed}" / "config.json").read_text())
        assert r["status"] == "ok" and config["seed"] == seed and config["reduced"] == 60
        assert json_hash(config) == r["config_hash"]  # train.py parsed the flags as the plan
        assert r["final_test_score"] == summary["last_test_accuracy"]
        assert r["test_score_per_epoch"] == [None, summary["last_test_accuracy"]]
        assert summary["epochs_completed"] == 2
        assert 0.0 <= r["train_accuracy"] <= 1.0
    assert len({r["config_hash"] for r in runs.values()}) == 4
    diffs = [runs["lr", s]["final_test_score"] - runs["plain", s]["final_test_score"] for s in (0, 1)]
    assert results["arms"]["lr"]["diff_mean"] == pytest.approx(np.mean(diffs))
    assert "| lr | 2 / 2 |" in (out / "results.md").read_text()
    assert (out / "curves.png").stat().st_size > 0

    def must_not_run(command, workdir, log_path):
        raise AssertionError(f"reran a finished run: {command}")

    rerun = run_plan(parse_plan(plan), str(out), parallel=2, runner=must_not_run, log=lambda _: None)
    assert rerun == results["runs"]


def test_signals_read_each_metric_at_start_middle_and_end_over_seeds(tmp_path):
    from jaxaug.experiments import signals

    def write(seed, rows):
        workdir = tmp_path / "astn" / f"seed{seed}"
        workdir.mkdir(parents=True)
        lines = [json.dumps({"step": s, "split": split, "learning_rate": 0.1, **m})
                 for s, split, m in rows]
        (workdir / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    # Seed 0 logged steps 10-50 (and a test row, ignored): loss's middle is step 30, half-way
    # between 10 and 50; "search" is logged at steps 10-30 only (a first stage's metric), so its
    # middle is step 20. Seed 10 (ordered by number, after seed 2) logged steps 10 and 40:
    # middle = step 10 (nearer 25 than 40 is).
    write(0, [(30, "train", {"loss": 3.0, "search": 0.3}), (10, "train", {"loss": 1.0,
                                                                        "search": 0.1}),
              (20, "train", {"loss": 2.0, "search": 0.2}), (40, "train", {"loss": 4.0}),
              (50, "train", {"loss": 5.0}), (50, "test", {"loss": 9.0})])
    write(10, [(10, "train", {"loss": 5.0}), (40, "train", {"loss": 7.0})])
    (tmp_path / "astn" / "seed2").mkdir()  # not started: left out
    s = signals.arm_signals(str(tmp_path), "astn")
    assert s["seeds"] == [0, 10] and "learning_rate" not in s["metrics"]
    loss, search = s["metrics"]["loss"], s["metrics"]["search"]
    assert loss["values"] == {"start": [1.0, 5.0], "middle": [3.0, 5.0], "end": [5.0, 7.0]}
    assert loss["steps"] == {"start": [10, 10], "middle": [30, 10], "end": [50, 40]}
    assert search["values"] == {"start": [0.1], "middle": [0.2], "end": [0.3]}
    table = signals.markdown({"astn": s})
    assert "| astn | loss | 3 ± 2.8 | 4 ± 1.4 | 6 ± 1.4 | 2 | 10 / 10-30 / 40-50 |" in table, table
    assert "| astn | search | 0.1 | 0.2 | 0.3 | 1 | 10 / 20 / 30 |" in table, table
    with pytest.raises(FileNotFoundError, match="no runs of arm 'pvae'"):
        signals.arm_signals(str(tmp_path), "pvae")
    (tmp_path / "dvae" / "seed0").mkdir(parents=True)
    with pytest.raises(ValueError, match="arm 'dvae': none of its runs"):
        signals.arm_signals(str(tmp_path), "dvae")
