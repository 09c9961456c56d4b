"""The quantized CU-Net paper's balance index of trained keypoint runs (Tang thesis, sec. 5.5.7,
Eq. 5.8):

    BI = E^2 * TM * MS,

with E the error in percent, as the thesis's tables use it (NME in % for face landmarks,
100 - PCKh in % for human pose: CU-Net-2's PCKh 86.1 gives E^2 = 193 in its table 5.9), and TM
and MS the training memory and model size as ratios to the full-precision run. Lower is better.

Each run's E is its test score at the epoch with the best validation score
(``test_<metric>_at_best_val`` of ``summary.json``; ``config.val_size`` > 0), never the best test
score; a run without a validation split uses its last test score, and the row says which.

TM and MS come two ways, and each row reports both:

- measured: the compiled training step's total memory and the packed model size
  (`jaxaug.eval.quant_costs`), ratios to the full-precision run among the workdirs. With simulated
  quantization the measured TM stays near 1 (docs/benchmarks.md), and MS counts the
  full-precision first and last layers, BatchNorm and scales.
- nominal: bit ratios of the setting, TM = feature bits / 32 and MS = weight bits / 32 (1 for
  binary, 2 for ternary). These are what the thesis's tables list (0.25 for 8-bit dataflow, 0.03
  and 0.06 for binary and ternary weights; its 0.17 for 6-bit dataflow is not 6/32 = 0.19).

Given several runs of a setting (seeds), the report adds each setting's mean and sample standard
deviation of E and of both BIs over its runs; runs of one setting share their compiled costs,
measured once.

  python -m jaxaug.eval.balance_index --workdirs=workdirs/fp,workdirs/818,workdirs/tw [--out=bi]

Writes ``<out>.json`` ({"runs": one row per workdir, "settings": the per-setting statistics}) and
``<out>.md`` and prints the Markdown tables.
"""

import json
import os
import statistics

import ml_collections
from absl import app, flags

from jaxaug.data.atomic import write_text_atomic
from jaxaug.eval.quant_costs import measure
from jaxaug.quant import get_spec
from jaxaug.train.config import recorded_config
from jaxaug.train.metrics_writer import write_json_atomic

#: Bits of one weight per `jaxaug.quant.QuantSpec.weights` mode (alpha is one float per channel,
#: left out as the thesis's MS column leaves it out).
WEIGHT_BITS = {"float": 32, "binary": 1, "binary_alpha": 1, "ternary": 2, "ternary_alpha": 2}


def _read_json(workdir, name):
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: is {workdir!r} a finished keypoint run?")
    with open(path) as f:
        return json.load(f)


def run_error(summary: dict) -> tuple[float, str]:
    """(E in percent, the summary field it comes from) of a run: NME, or 100·(1 - PCKh / PCK),
    at the best validation epoch when the run has a validation split, else at its last epoch."""
    metric = summary.get("metric")
    if metric not in ("nme", "pckh", "pck"):
        raise ValueError(f"summary has no keypoint metric (metric={metric!r}); not a keypoint run")
    for field in (f"test_{metric}_at_best_val", f"last_test_{metric}"):
        if summary.get(field) is not None:
            score = summary[field]
            return 100.0 * (score if metric == "nme" else 1.0 - score), field
    raise ValueError(f"summary has neither test_{metric}_at_best_val nor last_test_{metric}: "
                     "the run never evaluated")


def nominal_ratios(setting: str) -> tuple[float, float]:
    """(TM, MS) of a quantization setting as bit ratios: feature bits / 32, weight bits / 32."""
    spec = get_spec(setting)
    if spec is None:
        return 1.0, 1.0
    if spec.weights not in WEIGHT_BITS:
        raise ValueError(f"setting {setting!r}: no bit count for weights={spec.weights!r}")
    return (spec.feature_bits or 32) / 32, WEIGHT_BITS[spec.weights] / 32


def balance_index(workdirs: list[str]) -> list[dict]:
    """One row per run: setting, E (%), where E comes from, measured and nominal TM and MS
    (ratios to full precision) and the BI of each."""
    runs = []
    for workdir in workdirs:
        config = recorded_config(_read_json(workdir, "config.json"))
        runs.append((workdir, config, *run_error(_read_json(workdir, "summary.json"))))
    baselines = [r for r in runs if r[1].quant == "fp"]
    if not baselines:
        raise ValueError("none of the workdirs is a full-precision run (config.quant == 'fp'); "
                         "TM and MS are ratios to it")
    costs = {}  # one compile per distinct setting: a setting's seeds train the same network
    for _, config, _, _ in runs:
        key = _cost_key(config)
        if key not in costs:
            costs[key] = measure(config.model, config.quant, image_size=config.image_size,
                                 batch_size=config.batch_size, **config[config.model])
    base = costs[_cost_key(baselines[0][1])]
    rows = []
    for workdir, config, error, source in runs:
        c = costs[_cost_key(config)]
        tm = c.total_bytes / base.total_bytes
        ms = c.packed_bytes / base.packed_bytes
        tm_nominal, ms_nominal = nominal_ratios(config.quant)
        rows.append({"workdir": workdir, "quant": config.quant, "error_percent": error,
                     "error_from": source,
                     "training_memory_ratio_measured": tm, "model_size_ratio_measured": ms,
                     "balance_index_measured": error ** 2 * tm * ms,
                     "training_memory_ratio_nominal": tm_nominal,
                     "model_size_ratio_nominal": ms_nominal,
                     "balance_index_nominal": error ** 2 * tm_nominal * ms_nominal})
    return rows


def _cost_key(config: ml_collections.ConfigDict) -> tuple:
    return (config.model, config.quant, config.image_size, config.batch_size,
            config[config.model].to_json(sort_keys=True))


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def by_setting(rows: list[dict]) -> list[dict]:
    """Per setting, in order of first appearance: the number of runs and the mean and sample
    standard deviation (None for one run) of E and of the measured and nominal BI."""
    settings = {}
    for row in rows:
        settings.setdefault(row["quant"], []).append(row)
    summary = []
    for quant, runs in settings.items():
        entry = {"quant": quant, "runs": len(runs)}
        for field in ("error_percent", "balance_index_measured", "balance_index_nominal"):
            entry[f"{field}_mean"], entry[f"{field}_std"] = _mean_std([r[field] for r in runs])
        summary.append(entry)
    return summary


def _pm(mean: float, std: float | None, digits: str) -> str:
    return f"{mean:{digits}}" + ("" if std is None else f" ± {std:{digits}}")


def markdown(rows: list[dict]) -> str:
    lines = ["| setting | run | E (%) | E from | TM measured | MS measured | BI measured | "
             "TM nominal | MS nominal | BI nominal |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['quant']} | {r['workdir']} | {r['error_percent']:.2f} | {r['error_from']} | "
              f"{r['training_memory_ratio_measured']:.3f} | {r['model_size_ratio_measured']:.4f} | "
              f"{r['balance_index_measured']:.3g} | {r['training_memory_ratio_nominal']:.3f} | "
              f"{r['model_size_ratio_nominal']:.4f} | {r['balance_index_nominal']:.3g} |"
              for r in rows]
    text = ("BI = E²·TM·MS, E in percent; TM and MS are ratios to fp, measured (compiled step "
            "memory, packed model bytes) or nominal (feature bits / 32, weight bits / 32, as the "
            "thesis's tables).\n\n" + "\n".join(lines) + "\n")
    summary = by_setting(rows)
    if all(s["runs"] == 1 for s in summary):
        return text
    lines = ["| setting | runs | E (%) | BI measured | BI nominal |", "|---|---|---|---|---|"]
    lines += [f"| {s['quant']} | {s['runs']} | "
              f"{_pm(s['error_percent_mean'], s['error_percent_std'], '.2f')} | "
              f"{_pm(s['balance_index_measured_mean'], s['balance_index_measured_std'], '.3g')} | "
              f"{_pm(s['balance_index_nominal_mean'], s['balance_index_nominal_std'], '.3g')} |"
              for s in summary]
    return (text + "\nPer setting, mean ± sample standard deviation over its runs:\n\n"
            + "\n".join(lines) + "\n")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    out = flags.FLAGS.out
    rows = balance_index(flags.FLAGS.workdirs)
    write_json_atomic(out + ".json", {"runs": rows, "settings": by_setting(rows)})
    table = markdown(rows)
    write_text_atomic(out + ".md", table)
    print(table)


if __name__ == "__main__":
    # Defined here, not at import, so that importing this module (tests, notebooks) cannot clash
    # with other modules' absl flags.
    flags.DEFINE_list("workdirs", None, "Workdirs of finished keypoint runs, one or more per "
                      "quantization setting; one of them must be full precision (quant fp).")
    flags.DEFINE_string("out", "balance_index", "Output path without extension.")
    flags.mark_flags_as_required(["workdirs"])
    app.run(main)
