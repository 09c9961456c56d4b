"""Aggregation of a plan's run records into results.json, results.md and curves.png.

Per arm, over its "ok" runs only (a failed or diverged run has no score and is never ranked):
mean and sample standard deviation (ddof=1; "n/a" for one run) of the final and best test score
(the task's main one: accuracy, PCKh, PCK or NME). The paired difference of an arm from the
baseline is, for each seed where both runs are ok, ``arm − baseline`` of the final test score
(of the test score at the best validation epoch when every run has a validation split:
`compared_score`); the table gives its mean, sample standard
deviation and n, and the same from the arm's matched baseline where the plan names one. Failed and diverged runs are listed under the table with their errors.
"""

import math
import os
from typing import Any

import numpy as np

from jaxaug.data.atomic import write_atomic, write_text_atomic
from jaxaug.train.metrics_writer import write_json_atomic


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for fewer than two values)."""
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def _ok(records: list[dict[str, Any]], arm: str) -> dict[int, dict[str, Any]]:
    return {r["seed"]: r for r in records if r["arm"] == arm and r["status"] == "ok"}


def compared_score(records: list[dict[str, Any]]) -> str:
    """The score the differences compare: the test score at the best validation epoch
    (``test_score_at_best_val``) when every ok run has one (a plan with a validation split, whose
    runs report that score), else the final test score."""
    ok = [r for r in records if r["status"] == "ok"]
    if ok and all(r.get("test_score_at_best_val") is not None for r in ok):
        return "test_score_at_best_val"
    return "final_test_score"


def paired_differences(records: list[dict[str, Any]], arm: str, baseline: str) -> dict[int, float]:
    """seed -> `compared_score` of ``arm`` minus that of ``baseline``, both runs ok."""
    a, b = _ok(records, arm), _ok(records, baseline)
    field = compared_score(records)
    return {s: a[s][field] - b[s][field] for s in sorted(a.keys() & b.keys())}


def aggregate(records: list[dict[str, Any]], baseline: str,
              matched: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """arm -> {runs, ok, final/best mean and std, diff mean/std/n from the baseline, and for an
    arm in ``matched`` (arm -> its matched baseline) the matched one's name and diff
    mean/std/n}, in the order arms first appear in ``records``."""
    arms = list(dict.fromkeys(r["arm"] for r in records))
    out = {}
    for arm in arms:
        ok = list(_ok(records, arm).values())
        final = _mean_std([r["final_test_score"] for r in ok])
        best = _mean_std([r["best_test_score"] for r in ok])
        at_val = _mean_std([r["test_score_at_best_val"] for r in ok
                            if r.get("test_score_at_best_val") is not None])
        diffs = list(paired_differences(records, arm, baseline).values())
        diff = _mean_std(diffs)
        out[arm] = {
            "runs": sum(r["arm"] == arm for r in records), "ok": len(ok),
            "final_mean": final[0], "final_std": final[1], "best_mean": best[0], "best_std": best[1],
            "at_best_val_mean": at_val[0], "at_best_val_std": at_val[1],
            "diff_mean": diff[0], "diff_std": diff[1], "diff_n": len(diffs),
        }
        if arm in (matched or {}):
            diffs = list(paired_differences(records, arm, matched[arm]).values())
            diff = _mean_std(diffs)
            out[arm].update(matched=matched[arm], matched_diff_mean=diff[0],
                            matched_diff_std=diff[1], matched_diff_n=len(diffs))
    return out


def _pm(mean: float, std: float, scale: float = 100.0, signed: bool = False) -> str:
    if math.isnan(mean):
        return "n/a"
    sign = "+" if signed else ""
    spread = "n/a" if math.isnan(std) else f"{scale * std:.2f}"
    return f"{scale * mean:{sign}.2f} ± {spread}"


def _metric(records: list[dict[str, Any]]) -> tuple[str, bool]:
    """The plan's main score and whether higher is better (records before scores had names:
    accuracy)."""
    named = {(r.get("metric", "accuracy"), r.get("maximize", True)) for r in records
             if r["status"] == "ok"} or {("accuracy", True)}
    if len(named) > 1:
        raise ValueError(f"the runs of one plan report different scores: {sorted(named)}")
    return next(iter(named))


def markdown_table(records: list[dict[str, Any]], baseline: str,
                   matched: dict[str, str] | None = None) -> str:
    """The main test score (%) per arm, mean ± std over ok runs, and the paired differences from
    the baseline and from the arm's matched baseline (``matched``: arm -> arm); then every failed
    or diverged run with its error."""
    stats = aggregate(records, baseline, matched)
    metric, maximize = _metric(records)
    at_val = compared_score(records) == "test_score_at_best_val"
    compared = "at best val" if at_val else "final"
    lines = [
        f"Test {metric} (%, {'higher' if maximize else 'lower'} is better), mean ± sample std "
        f"over the runs that finished; the differences are "
        f"paired by seed, against the baseline `{baseline}` and against the arm's matched "
        "baseline (the same pipeline without the learned part), of the "
        + ("test score at each run's best validation epoch." if at_val else "final test score."),
        "",
        f"| arm | ok / runs | final test {metric} | best test {metric} | {compared} − baseline (n) "
        f"| matched baseline | {compared} − matched (n) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, s in stats.items():
        diff = ("baseline" if arm == baseline
                else f"{_pm(s['diff_mean'], s['diff_std'], signed=True)} ({s['diff_n']})")
        own = ("", "") if "matched" not in s else (
            f"`{s['matched']}`",
            f"{_pm(s['matched_diff_mean'], s['matched_diff_std'], signed=True)} "
            f"({s['matched_diff_n']})")
        failed = "" if s["ok"] == s["runs"] else " (the others below)"
        # With a validation split, the epoch is picked on it; the best test score is the test
        # set's own pick, shown for comparison only.
        best = _pm(s["best_mean"], s["best_std"])
        if not math.isnan(s["at_best_val_mean"]):
            best = f"{_pm(s['at_best_val_mean'], s['at_best_val_std'])} (at best val; best test {best})"
        lines.append(f"| {arm} | {s['ok']} / {s['runs']}{failed} | {_pm(s['final_mean'], s['final_std'])} "
                     f"| {best} | {diff} | {own[0]} | {own[1]} |")
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        lines += ["", "Runs not in the means:", "", "| arm | seed | status | error |",
                  "| --- | --- | --- | --- |"]
        for r in failed:
            error = str(r["error"]).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r['arm']} | {r['seed']} | {r['status']} | {error} |")
    return "\n".join(lines) + "\n"


def curve_panels(arms: list[str], matched: dict[str, str] | None = None
                 ) -> list[tuple[str, list[str]]]:
    """The panels of the curves plot, (title, arms): every arm without a matched baseline
    together, then one panel per arm that has one, beside it (baseline first)."""
    matched = matched or {}
    own = [a for a in arms if a not in matched]
    pairs = [(f"{a} vs {matched[a]}", [matched[a], a]) for a in arms if a in matched]
    return ([("arms", own)] if own else []) + pairs


def _curve(records: list[dict[str, Any]], arm: str):
    """(epochs, per-run scores in %) of the arm's ok runs at the epochs all of them evaluated, or
    None without one."""
    curves = [r["test_score_per_epoch"] for r in _ok(records, arm).values()
              if r["test_score_per_epoch"]]
    if not curves:
        return None
    length = min(len(c) for c in curves)
    # None marks an epoch that was not evaluated (config.eval_every): plot evaluated ones only.
    values = 100 * np.array([c[:length] for c in curves], dtype=float)
    evaluated = ~np.isnan(values).any(0)
    return np.arange(1, length + 1)[evaluated], values[:, evaluated]


def plot_curves(records: list[dict[str, Any]], path: str,
                matched: dict[str, str] | None = None) -> None:
    """The main test score per epoch, mean line and min-max band over each arm's ok runs: one
    panel for the arms without a matched baseline, one for each arm with one, beside that
    baseline (`curve_panels`) once that arm has a finished run."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    arms = list(dict.fromkeys(r["arm"] for r in records))
    curves = {arm: _curve(records, arm) for arm in arms}
    # A pair's panel waits for its arm's first finished run (its baseline alone adds nothing).
    panels = [(title, [a for a in members if curves[a] is not None])
              for title, members in curve_panels(arms, matched)
              if title == "arms" or curves[members[-1]] is not None]
    panels = [(title, members) for title, members in panels if members] or [("arms", [])]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(6 if cols == 1 else 4.5 * cols, 4 if rows == 1 else 3.2 * rows))
    metric = _metric(records)[0]
    for i, (title, members) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for arm in members:
            epochs, values = curves[arm]
            (line,) = ax.plot(epochs, values.mean(0), marker="o", markersize=3,
                              label=f"{arm} (n={len(values)})")
            ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(),
                            alpha=0.2)
        if len(panels) > 1:
            ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"test {metric} (%)")
        if members:  # no finished run yet: an empty plot, no legend
            ax.legend(fontsize=7 if len(members) > 4 else 8)
    fig.tight_layout()
    fig.savefig(path)


def write_outputs(records: list[dict[str, Any]], baseline: str, out: str,
                  matched: dict[str, str] | None = None, regime: dict[str, Any] | None = None,
                  stem: str | None = None) -> None:
    """results.json (the regime, the records and per-arm statistics), results.md and curves.png,
    atomically; with ``stem``, ``<stem>.json``, ``<stem>.md`` and ``<stem>.png``."""
    json_name, md_name, png_name = ((f"{stem}.json", f"{stem}.md", f"{stem}.png") if stem
                                    else ("results.json", "results.md", "curves.png"))
    write_json_atomic(os.path.join(out, json_name),
                      {"regime": regime or {}, "baseline": baseline, "matched": matched or {},
                       "runs": records, "arms": aggregate(records, baseline, matched)})
    write_text_atomic(os.path.join(out, md_name), markdown_table(records, baseline, matched))
    write_atomic(os.path.join(out, png_name),
                 lambda path: plot_curves(records, path, matched))
