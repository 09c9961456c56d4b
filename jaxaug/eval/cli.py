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


# The flags `define_flags` defines belong to the tool that calls it, so that the tool's --help
# lists them (absl's --help shows only the main module's key flags).
flags.disclaim_key_flags()


def define_flags(task: str, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The flags every tool has: ``--workdirs``, ``--labels`` and ``--out``, key flags of the
    calling tool. Called under ``__main__``, not at import, so that importing a tool cannot clash
    with other absl flags."""
    flags.DEFINE_list("workdirs", None, f"Workdirs of finished {task} runs.",
                      flag_values=flag_values)
    flags.DEFINE_list("labels", None, "One label per workdir (default: the workdirs' basenames).",
                      flag_values=flag_values)
    flags.DEFINE_string("out", "robustness", "Output directory.", flag_values=flag_values)
    flags.mark_flags_as_required(["workdirs"], flag_values=flag_values)


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
