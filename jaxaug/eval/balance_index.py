"""The quantized CU-Net paper's balance index of trained keypoint runs:

    BI = E^2 * TM * MS,

with E the error (NME for face landmarks, 1 - PCKh for human pose) from each run's
``summary.json``, TM the compiled training step's total memory and MS the packed model size, both
measured (`jaxaug.eval.quant_costs`) and given as ratios to the full-precision run among them.
Lower is better.

  python -m jaxaug.eval.balance_index --workdirs=workdirs/fp,workdirs/818,workdirs/tw [--out=bi]

Writes ``<out>.json`` and ``<out>.md`` and prints the Markdown table.
"""

import json
import os

import ml_collections
from absl import app, flags

from jaxaug.eval.quant_costs import measure
from jaxaug.data.atomic import write_text_atomic
from jaxaug.train.metrics_writer import write_json_atomic


def _read_json(workdir, name):
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: is {workdir!r} a finished keypoint run?")
    with open(path) as f:
        return json.load(f)


def run_error(summary: dict) -> float:
    """E of a run: its best test NME, or 1 - its best test PCKh."""
    metric = summary.get("metric")
    if metric == "nme":
        return summary["best_test_nme"]
    if metric == "pckh":
        return 1.0 - summary["best_test_pckh"]
    raise ValueError(f"summary has no keypoint metric (metric={metric!r}); not a keypoint run")


def balance_index(workdirs: list[str]) -> list[dict]:
    """One row per run: setting, E, TM, MS (ratios to the full-precision run) and BI."""
    runs = []
    for workdir in workdirs:
        config = ml_collections.ConfigDict(_read_json(workdir, "config.json"))
        runs.append((workdir, config, run_error(_read_json(workdir, "summary.json"))))
    baselines = [r for r in runs if r[1].quant == "fp"]
    if not baselines:
        raise ValueError("none of the workdirs is a full-precision run (config.quant == 'fp'); "
                         "TM and MS are ratios to it")
    costs = {}
    for workdir, config, _ in runs:
        costs[workdir] = measure(config.model, config.quant, image_size=config.image_size,
                                 batch_size=config.batch_size, **config[config.model])
    base = costs[baselines[0][0]]
    rows = []
    for workdir, config, error in runs:
        c = costs[workdir]
        tm = c.total_bytes / base.total_bytes
        ms = c.packed_bytes / base.packed_bytes
        rows.append({"workdir": workdir, "quant": config.quant, "error": error,
                     "training_memory_ratio": tm, "model_size_ratio": ms,
                     "balance_index": error ** 2 * tm * ms})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| setting | E | TM | MS | BI = E²·TM·MS |", "|---|---|---|---|---|"]
    lines += [f"| {r['quant']} | {r['error']:.4f} | {r['training_memory_ratio']:.3f} | "
              f"{r['model_size_ratio']:.4f} | {r['balance_index']:.3g} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    out = flags.FLAGS.out
    rows = balance_index(flags.FLAGS.workdirs)
    write_json_atomic(out + ".json", rows)
    table = markdown(rows)
    write_text_atomic(out + ".md", table)
    print(table)


if __name__ == "__main__":
    # Defined here, not at import, so that importing this module (tests, notebooks) cannot clash
    # with other modules' absl flags.
    flags.DEFINE_list("workdirs", None, "Workdirs of finished keypoint runs, one per quantization "
                      "setting; one of them must be full precision (quant fp).")
    flags.DEFINE_string("out", "balance_index", "Output path without extension.")
    flags.mark_flags_as_required(["workdirs"])
    app.run(main)
