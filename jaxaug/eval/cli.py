"""What the evaluation tools share: trained runs by workdir and label, and the command line that
evaluates them and writes ``<out>/robustness.{json,md,png}``."""

import os
from collections.abc import Callable
from typing import Any

from absl import app, flags

from jaxaug.train.loop import load_trained
from jaxaug.train.metrics_writer import write_report


def labels_for(workdirs: list[str], labels: list[str] | None = None) -> list[str]:
    """``labels``, or the workdirs' basenames; ``ValueError`` unless one distinct label per
    workdir."""
    labels = labels or [os.path.basename(os.path.normpath(w)) for w in workdirs]
    if len(labels) != len(workdirs) or len(set(labels)) != len(labels):
        raise ValueError(f"need one distinct label per workdir (pass --labels), got "
                         f"{len(labels)} labels {labels} for workdirs {workdirs}")
    return labels


def load_runs(workdirs: list[str], task: str) -> list[dict[str, Any]]:
    """`jaxaug.train.load_trained` of each workdir, which must hold a run of ``task``."""
    runs = []
    for workdir in workdirs:
        if not os.path.isdir(workdir):
            raise FileNotFoundError(f"workdir {workdir!r} does not exist")
        run = load_trained(workdir)
        found = run["config"].get("task", "classification")
        if found != task:
            raise ValueError(f"{workdir} holds a {found} run; this tool evaluates {task} runs")
        runs.append(run)
    return runs


def define_flags(task: str) -> None:
    """The flags every tool has: ``--workdirs``, ``--labels`` and ``--out``. Called under
    ``__main__``, not at import, so that importing a tool cannot clash with other absl flags."""
    flags.DEFINE_list("workdirs", None, f"Workdirs of finished {task} runs.")
    flags.DEFINE_list("labels", None, "One label per workdir (default: the workdirs' basenames).")
    flags.DEFINE_string("out", "robustness", "Output directory.")
    flags.mark_flags_as_required(["workdirs"])


def main(evaluate: Callable[[flags.FlagValues], dict], markdown: Callable[[dict], str],
         plot: Callable[[dict, str], None]) -> Callable[[list[str]], None]:
    """The absl main of a tool: ``evaluate(FLAGS)``, then the JSON, Markdown and plot under
    ``--out``, and the Markdown printed."""

    def run(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        results = evaluate(flags.FLAGS)
        table = markdown(results)
        write_report(flags.FLAGS.out, "robustness", results, table, plot)
        print(table)

    return run
