"""Corruption robustness of trained classifiers: error on the clean test set and on the 15 common
corruptions at 5 severities, generated on the fly (`jaxaug.eval.corruptions`).

For run r, corruption c and severity s, E_{c,s} is the top-1 error (%) on the test images
corrupted by (c, s). Each corrupted image is quantised to uint8 levels (floor(255 x)) before it is
normalised, as the benchmark stores its images as uint8. The summary is CIFAR's unnormalised mCE:

    mCE = (1 / 75) sum_{c, s} E_{c,s}      (no AlexNet normalisation, unlike ImageNet-C)

Frost uses a procedural texture instead of the benchmark's photographs; outputs label it
"frost (procedural)".

  python -m jaxaug.eval.robustness --workdirs=workdirs/base,workdirs/cnsn --out=robustness

writes robustness.json, robustness.md and robustness.png under --out and prints the Markdown.
Every run sees the same corrupted images (one seed; image i of the test set always draws the
key of index i), so runs are compared on identical inputs. ``--num_images`` evaluates an evenly
spaced subset of the test set.
"""

import jax
import numpy as np
from absl import app, flags
from tqdm import tqdm

from jaxaug.eval import cli
from jaxaug.eval.corruptions import CORRUPTIONS, PROCEDURAL, SEVERITIES, corrupt_batch


def display_name(corruption: str) -> str:
    return f"{corruption} (procedural)" if corruption in PROCEDURAL else corruption


def _subset(n_total: int, num_images: int) -> np.ndarray:
    """Evenly spaced indices of ``num_images`` of ``n_total`` test images (all when 0)."""
    if num_images < 0 or num_images > n_total:
        raise ValueError(f"num_images must be in [0, {n_total}] (0: all), got {num_images}")
    if num_images == 0:
        return np.arange(n_total)
    return np.round(np.linspace(0, n_total - 1, num_images)).astype(np.int64)


def _error(predict, images, labels, batch_size):
    """Top-1 error (%) of the jitted ``predict`` on uint8 ``images`` [N, H, W, C] (given as floats
    in [0, 1]); the last batch is padded to full size so that one compile serves every batch."""
    wrong = 0
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - real, 0)])
        logits = np.asarray(predict(chunk.astype(np.float32) / 255.0))[:real]
        wrong += int(np.sum(np.argmax(logits, -1) != labels[start:start + real]))
    return 100.0 * wrong / len(images)


def _corrupt_padded(images, name, severity, seed, start, batch_size):
    """`corrupt_batch` of up to ``batch_size`` images, padded to exactly ``batch_size`` so that one
    compile per (corruption, severity) serves every batch; the padding's outputs are dropped."""
    real = len(images)
    padded = np.concatenate([images, np.repeat(images[-1:], batch_size - real, 0)])
    return np.asarray(corrupt_batch(padded, name, severity, seed, start_index=int(start)))[:real]


def robustness(workdirs, labels=None, *, corruptions=tuple(CORRUPTIONS), severities=SEVERITIES,
               num_images=0, seed=0, batch_size=500):
    """Clean and corrupted errors of each workdir's latest checkpoint, keyed by label (default:
    the workdir's basename). All runs must share the test set; each network normalizes with its
    own training statistics."""
    labels = cli.labels_for(workdirs, labels)
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruptions {unknown}; expected names from {list(CORRUPTIONS)}")
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise ValueError(f"severities must be in {SEVERITIES}, got {bad}")
    runs = cli.load_runs(workdirs, "classification")
    first = runs[0]["dataset"]
    for workdir, run in zip(workdirs, runs, strict=True):
        if (run["dataset"].name, len(run["dataset"].test)) != (first.name, len(first.test)):
            raise ValueError(f"{workdir} was trained on {run['dataset'].name} but "
                             f"{workdirs[0]} on {first.name}; compare runs of one dataset")
    index = _subset(len(first.test), num_images)
    images, test_labels = first.test.get(index)
    clean_float = images.astype(np.float32) / 255.0
    predicts = [jax.jit(run["predict"]) for run in runs]

    def errors_of(uint8_images):
        return [_error(p, uint8_images, test_labels, batch_size) for p in predicts]

    clean = errors_of(images)
    table = {label: {} for label in labels}
    for name in tqdm(corruptions, desc="corruptions"):
        for severity in severities:
            corrupted = np.concatenate([
                _corrupt_padded(clean_float[i:i + batch_size], name, severity, seed, i, batch_size)
                for i in range(0, len(index), batch_size)])
            quantised = np.floor(np.clip(corrupted, 0, 1) * 255).astype(np.uint8)
            for label, error in zip(labels, errors_of(quantised), strict=True):
                table[label].setdefault(name, []).append(error)
    results = {}
    for label, workdir, run, clean_error in zip(labels, workdirs, runs, clean, strict=True):
        per = table[label]
        results[label] = {
            "workdir": workdir, "step": run["step"], "dataset": run["dataset"].name,
            "num_images": len(index), "seed": seed, "severities": list(severities),
            "clean_error": clean_error,
            "corruption_errors": per,
            "corruption_means": {c: float(np.mean(v)) for c, v in per.items()},
            "mce": float(np.mean([e for v in per.values() for e in v])),
            "procedural": sorted(PROCEDURAL & set(per)),
        }
    return results


def markdown(results) -> str:
    """Runs as columns: clean error, mCE, then each corruption's mean error over severities; then
    one per-severity table per run. Errors in %."""
    labels = list(results)
    first = results[labels[0]]
    caption = (f"Top-1 error (%) on {first['num_images']} test images of {first['dataset']}; "
               f"mCE = unnormalised mean over {len(first['corruption_errors'])} corruptions x "
               f"{len(first['severities'])} severities.")
    lines = [caption, "",
             "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|",
             "| clean | " + " | ".join(f"{results[k]['clean_error']:.2f}" for k in labels) + " |",
             "| **mCE** | " + " | ".join(f"**{results[k]['mce']:.2f}**" for k in labels) + " |"]
    for c in first["corruption_means"]:
        lines.append(f"| {display_name(c)} | "
                     + " | ".join(f"{results[k]['corruption_means'][c]:.2f}" for k in labels)
                     + " |")
    for label in labels:
        r = results[label]
        lines += ["", f"{label} by severity:", "",
                  "| corruption | " + " | ".join(f"s{s}" for s in r["severities"]) + " |",
                  "|---" * (len(r["severities"]) + 1) + "|"]
        lines += [f"| {display_name(c)} | " + " | ".join(f"{e:.2f}" for e in v) + " |"
                  for c, v in r["corruption_errors"].items()]
    return "\n".join(lines) + "\n"


def plot(results, path) -> None:
    """A PNG at ``path``: mean error per corruption, bars grouped by corruption, one colour per run,
    each run's clean error dotted."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    names = list(next(iter(results.values()))["corruption_means"])
    fig = Figure(figsize=(13, 4.5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(results)
    for k, (label, r) in enumerate(results.items()):
        offset = (k - (len(results) - 1) / 2) * width
        ax.bar(np.arange(len(names)) + offset, [r["corruption_means"][c] for c in names], width,
               color=f"C{k}", label=f"{label} (mCE {r['mce']:.2f}, clean {r['clean_error']:.2f})")
        ax.axhline(r["clean_error"], color=f"C{k}", linestyle=":")
    ax.set_xticks(range(len(names)), [display_name(c) for c in names], rotation=35, ha="right")
    ax.set_ylabel("top-1 error (%), mean over severities")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, format="png", dpi=100)


def _evaluate(f) -> dict:
    return robustness(f.workdirs, f.labels, corruptions=f.corruptions,
                      severities=tuple(int(s) for s in f.severities),
                      num_images=f.num_images, seed=f.seed, batch_size=f.batch_size)


if __name__ == "__main__":
    cli.define_flags("classification")
    flags.DEFINE_list("corruptions", list(CORRUPTIONS), "Corruptions to evaluate.")
    flags.DEFINE_list("severities", [str(s) for s in SEVERITIES], "Severities (1..5).")
    flags.DEFINE_integer("num_images", 0, "Evenly spaced test images to use (0: all).")
    flags.DEFINE_integer("seed", 0, "Seed of the corruptions' randomness.")
    flags.DEFINE_integer("batch_size", 500, "Images per corruption and prediction batch.")
    app.run(cli.main(_evaluate, markdown, plot))
