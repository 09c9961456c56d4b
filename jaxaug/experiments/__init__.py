"""Comparison harness: train each (arm, seed) of a plan and report mean ± std and paired differences.

  python -m jaxaug.experiments --plan=plans/mine.py --out=experiments/mine --parallel=2

`plan` reads and checks a plan, `runner` runs (or skips, or resumes) each (arm, seed) as a
`train.py` subprocess, `report` aggregates the runs into results.json, results.md and curves.png.
`collect` (``python -m jaxaug.experiments.collect``) gathers one report from a plan's runs made in
several places (worktrees, commits), each record naming its commit. `signals`
(``python -m jaxaug.experiments.signals``) tabulates what each arm's logged training metrics did,
start, middle and end, over its seeds: the material of a diagnosis.
"""

from jaxaug.experiments.plan import Arm, Plan, load_plan, parse_plan
from jaxaug.experiments.report import aggregate, markdown_table, paired_differences, write_outputs
from jaxaug.experiments.runner import collect_record, run_plan, run_state

__all__ = [
    "Arm",
    "Plan",
    "aggregate",
    "collect_record",
    "load_plan",
    "markdown_table",
    "paired_differences",
    "parse_plan",
    "run_plan",
    "run_state",
    "write_outputs",
]
