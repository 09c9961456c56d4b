"""Robustness of trained keypoint models to scale, rotation and occlusion: the robustness figure of
Peng et al., "Jointly Optimize Data Augmentation and Network Training" (CVPR 2018).

Every test image x (joints p, visibility v, normaliser r: head size for PCKh, torso for PCK,
inter-ocular distance for NME) is scored under

- a scale s (at rotation 0) or a rotation d (at scale 1), counter-clockwise about the centre c:
  x' = `transform_sample(x, s, d, flip=False)` (fill 0 outside, as training's random warps),
  p' = c + s R(d) (p - c), v' = v and p' on the image, r' = s r (rotation keeps lengths).
  Joints warped off the frame are excluded;
- single-cell occlusion: of a g x g grid over the image, cell (i, j) is set to the training mean
  colour mu, so that the network input (x - mu) / sigma is exactly 0 there. Joints under the cell
  stay visible and are still scored. This occludes image pixels, the realistic test; training's
  adversarial hierarchical occlusion (AHO) zeroes features inside the network instead.

The score is the run's metric over all test images: PCKh@t = #{visible k: |p^_k - p'_k| <= t r'} /
#{visible k}, k over the layout's scored joints (MPII's 14 without pelvis and thorax,
`KeypointData.metric_joints`; PCK@t with LSP's torso over all 14), or NME = mean over images
with a visible joint of (1 / |V_n|) sum_{k in V_n} |p^_k - p'_k| / r'_n (lower is better).

  python -m jaxaug.eval.pose_robustness --workdirs=workdirs/random,workdirs/adversarial --out=rob

writes robustness.json, robustness.md and robustness.png under --out and prints the Markdown.
"""

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxaug.data import keypoints
from jaxaug.eval import cli
from jaxaug.methods.pose import predict_joints
from jaxaug.train.task import metric_sums

DEFAULT_SCALES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
DEFAULT_ROTATIONS = (-60, -45, -30, -15, 0, 15, 30, 45, 60)


def occlude(images, cell, grid, fill):
    """images [N, H, W, C] with the pixels of cell ``cell`` = i * grid + j (row i, column j of the
    grid x grid tiling, each cell H / grid x W / grid pixels) set to ``fill`` [C]; a negative cell
    leaves them unchanged. ``cell`` may be traced."""
    _, h, w, _ = images.shape
    rows, cols = jnp.arange(h) // (h // grid), jnp.arange(w) // (w // grid)
    inside = rows[:, None] * grid + cols[None, :] == cell
    return jnp.where(inside[None, :, :, None], jnp.asarray(fill, images.dtype), images)


def _sums(pred, gt, visible, norm, mask, metric, threshold, joints=None):
    """(value, count) sums of a batch; padding (mask 0) and invisible joints left out, PCK /
    PCKh pooled over ``joints`` (the layout's `KeypointData.metric_joints`)."""
    if metric != "nme":
        return metric_sums(pred, gt, visible, norm, mask, metric, threshold, joints)
    vis = visible & (mask[:, None] > 0)
    num = jnp.sum(vis, axis=-1)
    dist = jnp.where(vis, jnp.linalg.norm(pred - gt, axis=-1), 0.0)
    per_image = jnp.sum(dist, axis=-1) / jnp.maximum(num, 1) / norm
    return {"value": jnp.sum(jnp.where(num > 0, per_image, 0.0)),
            "count": jnp.sum(num > 0).astype(jnp.float32)}


@functools.partial(jax.jit, static_argnames=("model", "metric", "grid", "scored"))
def _batch_sums(model, variables, batch, fill, scale, degrees, cell, threshold, *, metric, grid,
                scored):
    """Metric sums of one batch warped by (scale, degrees), then with ``cell`` occluded (-1: none).
    Traced scalars: one compile serves every point of the sweeps (scale 1, rotation 0 is the
    identity warp: each output pixel samples its own input pixel centre with weight 1). ``scored``:
    the joints PCK / PCKh pools."""
    images = batch["image"].astype(jnp.float32) / 255.0
    images, joints, visible = jax.vmap(lambda x, p, v: keypoints.transform_sample(
        x, p, v, scale, degrees, False, ()))(images, batch["joints"], batch["visible"])
    images = occlude(images, cell, grid, fill)
    state = types.SimpleNamespace(**variables)
    pred, _ = predict_joints(model, state, images, images.shape[1:3])
    return _sums(pred, joints, visible, batch["norm"] * scale, batch["mask"], metric, threshold,
                 scored)


def robustness(model, variables, test, fill, *, metric, threshold, scales=DEFAULT_SCALES,
               rotations=DEFAULT_ROTATIONS, grid=4, batch_size=100) -> dict:
    """Scores of ``model`` (on images in [0, 1]) on the `KeypointData` ``test`` (see the module
    docstring), occluded cells set to ``fill`` (the training mean colour): "clean",
    "scale" and "rotation" ([value, score] pairs), "occlusion" (grid x grid, [i][j] for cell row i,
    column j) and "occlusion_mean"; also "metric" and "threshold". A score with no visible
    joint is NaN."""
    h, w = test.images.shape[1:3]
    if any(not s > 0 for s in scales):
        raise ValueError(f"scales must be positive, got {list(scales)}")
    if grid < 1 or h % grid or w % grid:
        raise ValueError(f"grid={grid} must divide the {h}x{w} test images")
    if metric not in ("pckh", "pck", "nme"):
        raise ValueError(f"metric must be 'pckh', 'pck' or 'nme', got {metric!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(test.images)
    if n == 0:
        raise ValueError("the test set is empty")
    size = min(batch_size, n)
    pad = -n % size  # padded with copies of the first example, masked out
    arrays = {"image": test.images, "joints": test.joints.astype(np.float32),
              "visible": test.visible.astype(bool), "norm": test.norm.astype(np.float32),
              "mask": np.ones(n, np.float32)}
    arrays = {k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) for k, v in arrays.items()}
    arrays["mask"][n:] = 0.0
    batches = jax.device_put([{k: v[i:i + size] for k, v in arrays.items()}
                              for i in range(0, n + pad, size)])
    fill = jnp.asarray(fill, jnp.float32)

    def score(scale=1.0, degrees=0.0, cell=-1):
        sums = jax.device_get([_batch_sums(
            model, variables, b, fill, jnp.float32(scale), jnp.float32(degrees),
            jnp.int32(cell), jnp.float32(threshold), metric=metric, grid=grid,
            scored=test.metric_joints)
            for b in batches])
        value, count = (sum(float(s[k]) for s in sums) for k in ("value", "count"))
        return value / count if count > 0 else float("nan")

    occlusion = [[score(cell=i * grid + j) for j in range(grid)] for i in range(grid)]
    return {"metric": metric, "threshold": float(threshold), "clean": score(),
            "scale": [[float(s), score(scale=s)] for s in scales],
            "rotation": [[float(d), score(degrees=d)] for d in rotations],
            "occlusion": occlusion, "occlusion_mean": float(np.mean(occlusion))}


def evaluate(workdirs, labels=None, **kwargs) -> dict[str, dict]:
    """`robustness` of each workdir's latest checkpoint with the run's metric and
    ``config.pck_threshold``, keyed by label (default: the workdir's basename)."""
    results = {}
    for label, run in zip(cli.labels_for(workdirs, labels), cli.load_runs(workdirs, "keypoints"),
                          strict=True):
        results[label] = robustness(run["model"], run["variables"], run["test"],
                                    run["model"].normalization.mean, metric=run["test"].metric,
                                    threshold=run["config"].pck_threshold, **kwargs)
    return results


def _metric_name(results_by_label) -> str:
    names = {(r["metric"], r["threshold"]) for r in results_by_label.values()}
    if len(names) != 1:
        raise ValueError(f"the runs use different metrics {sorted(names)}; compare like with like")
    metric, threshold = names.pop()
    if metric == "nme":
        return "NME (lower is better)"
    return f"{ {'pckh': 'PCKh', 'pck': 'PCK'}.get(metric, metric)}@{threshold:g}"


def markdown(results_by_label) -> str:
    """Three tables (runs as rows): clean and occlusion, the scale sweep, the rotation sweep."""
    name, runs = _metric_name(results_by_label), list(results_by_label.items())
    first = runs[0][1]
    lines = [f"Metric: {name}", "", "| run | clean | occlusion mean | worst cell |",
             "|---|---|---|---|"]
    worst = min if first["metric"] != "nme" else max
    lines += [f"| {label} | {r['clean']:.4f} | {r['occlusion_mean']:.4f} | "
              f"{worst(v for row in r['occlusion'] for v in row):.4f} |" for label, r in runs]
    for key, unit in (("scale", "scale {:g}"), ("rotation", "{:g}°")):
        values = [v for v, _ in first[key]]
        lines += ["", "| run | " + " | ".join(unit.format(v) for v in values) + " |",
                  "|---" * (len(values) + 1) + "|"]
        lines += [f"| {label} | " + " | ".join(f"{s:.4f}" for _, s in r[key]) + " |"
                  for label, r in runs]
    return "\n".join(lines) + "\n"


def plot(results_by_label, path) -> None:
    """A PNG at ``path``: the metric against scale, against rotation (each run's clean score
    dotted) and per occluded cell (bars grouped by cell, one colour per run)."""
    # No pyplot: a bare Figure draws on the Agg canvas without touching global backend state.
    from matplotlib.figure import Figure

    name = _metric_name(results_by_label)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    width = 0.8 / len(results_by_label)
    for k, (label, r) in enumerate(results_by_label.items()):
        colour = f"C{k}"
        for ax, key in zip(axes[:2], ("scale", "rotation"), strict=True):
            ax.plot(*zip(*r[key], strict=True), "o-", color=colour, label=label)
            ax.axhline(r["clean"], color=colour, linestyle=":")
        cells = np.ravel(r["occlusion"])
        axes[2].bar(np.arange(len(cells)) + (k - (len(results_by_label) - 1) / 2) * width, cells,
                    width, color=colour, label=f"{label} (mean {r['occlusion_mean']:.3f})")
    grid = len(next(iter(results_by_label.values()))["occlusion"])
    axes[2].set_xticks(range(grid * grid), [f"{i},{j}" for i in range(grid) for j in range(grid)],
                       fontsize=7)
    for ax, xlabel in zip(axes, ("scale", "rotation (degrees)", "occluded cell (row, column)"),
                          strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, format="png", dpi=100)


def _evaluate(f) -> dict:
    return evaluate(f.workdirs, f.labels, scales=[float(s) for s in f.scales],
                    rotations=[float(d) for d in f.rotations], grid=f.grid,
                    batch_size=f.batch_size)


if __name__ == "__main__":
    cli.define_flags("keypoints")
    flags.DEFINE_list("scales", [f"{s:g}" for s in DEFAULT_SCALES], "Scales to sweep (> 0).")
    flags.DEFINE_list("rotations", [f"{d:g}" for d in DEFAULT_ROTATIONS], "Rotations (degrees).")
    flags.DEFINE_integer("grid", 4, "Occlusion grid size g (g x g cells; must divide the size).")
    flags.DEFINE_integer("batch_size", 100, "Evaluation batch size.")
    app.run(cli.main(_evaluate, markdown, plot))
