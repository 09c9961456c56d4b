"""What each arm's logged training signals did, the raw material of a diagnosis: every metric of the
``train`` rows of ``metrics.jsonl`` at the start, the middle and the end of training, as the mean
and sample standard deviation over the arm's seeds. For example a generator's distance from the
identity (``generated_distance``), the target's loss on generated against clean images
(``generated_loss``, ``loss``), D's accuracy (``d_accuracy``) or a policy's entropy
(``generator_entropy``), read next to the arm's score rather than instead of it.

  python -m jaxaug.experiments.signals --runs=experiments/evidence_cpu --arms=astn,tanda [--out=signals.md]

``--runs`` is a harness output directory (``<runs>/<arm>/seed<N>/metrics.jsonl``). For each
metric, "start" is a run's first row that logs it, "end" its last, "middle" the one whose step
is nearest half-way between them; a run still training
contributes what it has logged so far, and the table says which steps each point averages.
"""

import glob
import json
import os
import re
import statistics
import sys

from absl import app, flags

from jaxaug.data.atomic import write_text_atomic

POINTS = ("start", "middle", "end")
# Schedules, not signals of what the method learned.
NOT_SIGNALS = frozenset({"step", "split", "learning_rate"})


def train_rows(workdir: str) -> list[dict]:
    """The ``train`` rows of ``<workdir>/metrics.jsonl``, by step."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: is {workdir!r} a run's workdir?")
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = sorted((r for r in rows if r.get("split") == "train"), key=lambda r: r["step"])
    if not rows:
        raise ValueError(f"{path} has no train rows yet")
    return rows


def trajectory(rows: list[dict]) -> dict[str, dict]:
    """{point: row} for `POINTS`: the first row, the row whose step is nearest half-way between
    the first's and the last's, the last."""
    halfway = (rows[0]["step"] + rows[-1]["step"]) / 2
    middle = min(rows, key=lambda r: abs(r["step"] - halfway))
    return {"start": rows[0], "middle": middle, "end": rows[-1]}


def _seed_dirs(runs: str, arm: str) -> list[str]:
    dirs = glob.glob(os.path.join(runs, arm, "seed*"))
    dirs = sorted((d for d in dirs if re.fullmatch(r"seed\d+", os.path.basename(d))),
                  key=lambda d: int(os.path.basename(d)[4:]))
    if not dirs:
        raise FileNotFoundError(f"no runs of arm {arm!r} in {runs!r} (expected {arm}/seed<N>)")
    return dirs


def arm_signals(runs: str, arm: str) -> dict:
    """{"seeds": [..], "metrics": {name: {"values": {point: [value per seed]}, "steps": {point:
    [step per seed]}}}} of the arm's runs that have logged a train row. Each metric's points come
    from the rows that log it, so a metric of one stage only (a search stage's, say) is read at
    that stage's start, middle and end."""
    seeds, metrics = [], {}
    for workdir in _seed_dirs(runs, arm):
        try:
            rows = train_rows(workdir)
        except (FileNotFoundError, ValueError):
            continue  # a run that has not logged yet
        seeds.append(int(os.path.basename(workdir)[4:]))
        names = dict.fromkeys(name for row in rows for name in row if name not in NOT_SIGNALS)
        for name in names:
            entry = metrics.setdefault(name, {"values": {p: [] for p in POINTS},
                                              "steps": {p: [] for p in POINTS}})
            for point, row in trajectory([r for r in rows if name in r]).items():
                entry["values"][point].append(float(row[name]))
                entry["steps"][point].append(row["step"])
    if not seeds:
        raise ValueError(f"arm {arm!r}: none of its runs in {runs!r} has logged a train row")
    return {"seeds": seeds, "metrics": metrics}


def _cell(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {statistics.stdev(values):.2g}"


def _span(steps: list[int]) -> str:
    low, high = min(steps), max(steps)
    return str(low) if low == high else f"{low}-{high}"


def markdown(signals: dict[str, dict]) -> str:
    """One table row per (arm, metric): mean ± sample std over the seeds at each point, the
    seeds and the steps read."""
    lines = ["| arm | metric | start | middle | end | seeds | steps (start / middle / end) |",
             "|---|---|---|---|---|---|---|"]
    for arm, s in signals.items():
        for name, m in sorted(s["metrics"].items()):
            cells = " | ".join(_cell(m["values"][p]) for p in POINTS)
            steps = " / ".join(_span(m["steps"][p]) for p in POINTS)
            lines.append(f"| {arm} | {name} | {cells} | {len(m['values']['end'])} | {steps} |")
    return ("Logged training signals, mean ± sample standard deviation over the seeds, at the "
            "start, the middle and the end of the rows that log each.\n\n" + "\n".join(lines)
            + "\n")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    runs = flags.FLAGS.runs
    if not os.path.isdir(runs):
        sys.exit(f"error: --runs={runs!r} is not a directory")
    arms = flags.FLAGS.arms or sorted(
        d for d in os.listdir(runs) if glob.glob(os.path.join(runs, d, "seed*")))
    try:
        table = markdown({arm: arm_signals(runs, arm) for arm in arms})
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    if flags.FLAGS.out:
        write_text_atomic(flags.FLAGS.out, table)
    print(table)


if __name__ == "__main__":
    # Defined here, not at import, so that importing this module cannot clash with other flags.
    flags.DEFINE_string("runs", None, "A harness output directory (<runs>/<arm>/seed<N>).")
    flags.DEFINE_list("arms", None, "Arms to read (default: every arm directory with runs).")
    flags.DEFINE_string("out", None, "Also write the Markdown table to this file.")
    flags.mark_flags_as_required(["runs"])
    app.run(main)
