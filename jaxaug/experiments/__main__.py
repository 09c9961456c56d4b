"""Runs a comparison plan and writes results.json, results.md and curves.png into --out.

  python -m jaxaug.experiments --plan=plans/augment.py --out=experiments/augment --parallel=2

See `jaxaug.experiments.plan` for the plan format. Rerunning the same command skips finished runs
and resumes interrupted ones. The exit status is 1 when any run failed or diverged (the reports are
written regardless).
"""

import sys

from absl import app, flags

from jaxaug.experiments.plan import load_plan
from jaxaug.experiments.report import markdown_table, write_outputs
from jaxaug.experiments.runner import run_plan

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when run, so that importing this module (as tests that walk the package do)
    cannot clash with another module's --out."""
    flags.DEFINE_string("plan", None, "A plan: .json, or .py with get_plan(); path.py:arg calls "
                        "get_plan(arg).")
    flags.DEFINE_string("out", None, "Directory for the runs' workdirs and the reports.")
    flags.DEFINE_integer("parallel", 1, "Runs trained at once.", lower_bound=1)
    flags.DEFINE_list("arms", None,
                      "Only these arms (with the baseline and their matched arms); default all.")
    flags.DEFINE_list("seeds", None,
                      "Only these of the plan's seeds; default all. --seeds=0, then 1, then 2 "
                      "runs every arm's first seed before any arm's second.")
    flags.mark_flags_as_required(["plan", "out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        plan = load_plan(FLAGS.plan, FLAGS.arms, FLAGS.seeds)
    except ValueError as e:
        sys.exit(f"error: {e}")
    records = run_plan(plan, FLAGS.out, parallel=FLAGS.parallel)
    matched = plan.matched_baselines()
    write_outputs(records, plan.baseline, FLAGS.out, matched, regime=plan.regime)
    print(markdown_table(records, plan.baseline, matched))
    if any(r["status"] != "ok" for r in records):
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
