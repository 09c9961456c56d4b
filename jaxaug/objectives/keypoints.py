"""Keypoint objectives and metrics: masked heatmap MSE (with intermediate supervision), PCK,
PCKh and the inter-ocular normalised mean error (NME).

Conventions as in `jaxaug.data.keypoints`: heatmaps are [N, H, W, J], joints [N, J, 2] as (x, y)
pixels, visibility [N, J] (bool or 0/1); metrics also accept any number of leading axes in place
of N. All are pure functions of arrays; the losses are differentiable w.r.t. the predictions.
"""

import operator
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

#: PCKh's head-size factor (MPII): head_size = 0.6 * diagonal of the annotated head box.
MPII_HEAD_SIZE_FACTOR = 0.6
#: The joints averaged by MPII's reported PCKh "Mean": all but pelvis (6) and thorax (7).
MPII_PCKH_JOINTS = tuple(j for j in range(16) if j not in (6, 7))
#: 300-W (iBUG 68-point layout, 0-based) outer eye corners: 36 is on the image's left for a
#: frontal face (the subject's right eye), 45 on the image's right; NME divides by their distance.
OUTER_EYE_CORNERS_68 = (36, 45)


def _shape(x):
    return tuple(jnp.shape(x))


def _check_heatmaps(op, pred, target, visible):
    if len(_shape(pred)) < 3:
        raise ValueError(f"{op}: heatmaps must have shape [..., H, W, J], got {_shape(pred)}")
    if _shape(target) != _shape(pred):
        raise ValueError(f"{op}: target must have the shape of pred {_shape(pred)}, "
                         f"got {_shape(target)}")
    want = _shape(pred)[:-3] + _shape(pred)[-1:]
    if _shape(visible) != want:
        raise ValueError(f"{op}: visible must have shape {want} (pred's leading axes and J), "
                         f"got {_shape(visible)}")


def heatmap_mse(pred: jax.Array, target: jax.Array, visible: jax.Array) -> jax.Array:
    """Masked heatmap MSE, the stacked-hourglass training loss (without its 1/2 factor).

    loss = sum_{n,i,j,k} v[n,k] (pred[n,i,j,k] - target[n,i,j,k])^2 / (N H W J),

    i.e. the mean over batch, pixels and joints in which the maps of invisible joints (v = 0)
    contribute zero: the denominator counts every joint, visible or not, as `mean` over the
    masked squared errors does (visibility given as 0/1 floats acts as a per-joint weight v).
    """
    _check_heatmaps("heatmap_mse", pred, target, visible)
    weight = jnp.asarray(visible).astype(jnp.result_type(pred, jnp.float32))
    return jnp.mean(weight[..., None, None, :] * (pred - target) ** 2)


def heatmap_loss(pred_stack: jax.Array | Sequence[jax.Array], target: jax.Array,
                 visible: jax.Array) -> jax.Array:
    """Intermediate supervision: sum over stacks s of heatmap_mse(pred_stack[s], target, visible).

    pred_stack is a list/tuple of [N, H, W, J] predictions (one per hourglass stack) or one array
    [S, N, H, W, J]; every stack is compared with the same target.
    """
    if isinstance(pred_stack, (list, tuple)):
        if not pred_stack:
            raise ValueError("heatmap_loss: pred_stack is empty")
        return sum(heatmap_mse(p, target, visible) for p in pred_stack)
    if len(_shape(pred_stack)) != len(_shape(target)) + 1:
        raise ValueError(f"heatmap_loss: pred_stack must be a list of predictions or one array "
                         f"[S, *target.shape] = [S, *{_shape(target)}], got {_shape(pred_stack)}")
    _check_heatmaps("heatmap_loss", pred_stack[0], target, visible)
    weight = jnp.asarray(visible).astype(jnp.result_type(pred_stack, jnp.float32))
    per_stack = jnp.mean(weight[..., None, None, :] * (pred_stack - target) ** 2,
                         axis=tuple(range(1, pred_stack.ndim)))
    return jnp.sum(per_stack)


def heatmap_loss_per_example(pred_stack: jax.Array | Sequence[jax.Array], target: jax.Array,
                             visible: jax.Array) -> jax.Array:
    """Per-example heatmap error [N] of predictions [S, N, H, W, J] per visible joint:

        e[n] = sum_s sum_{i,j,k} v[n,k] (pred[s,n,i,j,k] - target[n,i,j,k])^2 / (H W max(V_n, 1)),

    V_n = sum_k v[n,k]. Unlike `heatmap_loss`, which divides by every joint, this compares
    examples with different numbers of visible joints fairly: an augmentation that pushes joints
    out of the frame does not look easier only because fewer joints are left to predict.
    """
    _check_heatmaps("heatmap_loss_per_example", pred_stack[0], target, visible)
    weight = jnp.asarray(visible).astype(jnp.result_type(pred_stack, jnp.float32))
    squared = jnp.sum(weight[..., None, None, :] * (pred_stack - target) ** 2, axis=(0, 2, 3, 4))
    h, w = _shape(target)[-3:-1]
    return squared / (h * w * jnp.maximum(jnp.sum(weight, axis=-1), 1.0))


def _check_points(op, pred, gt, visible=None):
    if len(_shape(pred)) < 2 or _shape(pred)[-1] != 2:
        raise ValueError(f"{op}: pred must have shape [..., J, 2], got {_shape(pred)}")
    if _shape(gt) != _shape(pred):
        raise ValueError(f"{op}: gt must have the shape of pred {_shape(pred)}, got {_shape(gt)}")
    if visible is not None and _shape(visible) != _shape(pred)[:-1]:
        raise ValueError(f"{op}: visible must have shape {_shape(pred)[:-1]}, "
                         f"got {_shape(visible)}")


def _joint_index(op, name, index, num):
    try:
        index = operator.index(index)
    except TypeError:
        raise ValueError(f"{op}: {name} must be an int joint index, got {index!r}") from None
    if not 0 <= index < num:
        raise ValueError(f"{op}: {name} = {index} is outside [0, {num})")
    return index


def pck(pred: jax.Array, gt: jax.Array, visible: jax.Array, norm: jax.Array,
        alpha: float | jax.Array, *, joints: Sequence[int] | None = None
        ) -> tuple[jax.Array, jax.Array]:
    """Percentage of Correct Keypoints: a visible joint is correct if
    ||pred - gt|| <= alpha * norm of its sample.

    Args:
      pred, gt: [..., J, 2]; visible: [..., J]; norm: [...], one normaliser per sample.
      joints: static indices of the joints that enter `overall` (None: all), e.g.
        MPII_PCKH_JOINTS for MPII's reported mean.
    Returns (overall, per_joint [J]): overall = correct visible / visible over the selected joints
    and all samples (the visible-count-weighted mean of per_joint); per_joint[k] = the same for
    joint k alone. A ratio with no visible joint is NaN (undefined, not 0 or 1).
    """
    _check_points("pck", pred, gt, visible)
    if _shape(norm) != _shape(pred)[:-2]:
        raise ValueError(f"pck: norm must have one value per sample, shape {_shape(pred)[:-2]}, "
                         f"got {_shape(norm)}")
    num = _shape(pred)[-2]
    vis = jnp.asarray(visible) != 0
    dist = jnp.linalg.norm(jnp.asarray(pred, jnp.float32) - jnp.asarray(gt, jnp.float32), axis=-1)
    hit = (dist <= alpha * jnp.asarray(norm, jnp.float32)[..., None]) & vis
    axes = tuple(range(hit.ndim - 1))
    hits = jnp.sum(hit, axis=axes).astype(jnp.float32)
    counts = jnp.sum(vis, axis=axes).astype(jnp.float32)
    per_joint = jnp.where(counts > 0, hits / jnp.maximum(counts, 1.0), jnp.nan)
    select = np.arange(num) if joints is None else np.array(
        [_joint_index("pck", "joints", j, num) for j in joints], dtype=np.int64)
    total = jnp.sum(counts[select])
    overall = jnp.where(total > 0, jnp.sum(hits[select]) / jnp.maximum(total, 1.0), jnp.nan)
    return overall, per_joint


def mpii_head_size(head_box: jax.Array) -> jax.Array:
    """MPII's PCKh normaliser from head boxes [..., 4] = (x1, y1, x2, y2):
    0.6 * sqrt((x2 - x1)^2 + (y2 - y1)^2)."""
    if not _shape(head_box) or _shape(head_box)[-1] != 4:
        raise ValueError(f"mpii_head_size: head_box must have shape [..., 4], "
                         f"got {_shape(head_box)}")
    box = jnp.asarray(head_box, jnp.float32)
    return MPII_HEAD_SIZE_FACTOR * jnp.linalg.norm(box[..., 2:] - box[..., :2], axis=-1)


def pckh(pred: jax.Array, gt: jax.Array, visible: jax.Array, head_size: jax.Array,
         threshold: float | jax.Array = 0.5, *, joints: Sequence[int] | None = None
         ) -> tuple[jax.Array, jax.Array]:
    """PCKh@threshold: `pck` with the head size (see `mpii_head_size`) as the per-sample norm.
    Returns (overall, per_joint)."""
    return pck(pred, gt, visible, head_size, threshold, joints=joints)


def nme(pred: jax.Array, gt: jax.Array, left_eye: int = OUTER_EYE_CORNERS_68[0],
        right_eye: int = OUTER_EYE_CORNERS_68[1]) -> jax.Array:
    """Normalised mean error of landmarks pred, gt [..., P, 2] (the 300-W convention):

        nme = mean over samples of (1/P) sum_p ||pred_p - gt_p|| / ||gt_left_eye - gt_right_eye||,

    the inter-ocular distance between the outer eye corners (36 and 45 in the 68-point layout).
    """
    _check_points("nme", pred, gt)
    num = _shape(pred)[-2]
    left = _joint_index("nme", "left_eye", left_eye, num)
    right = _joint_index("nme", "right_eye", right_eye, num)
    if left == right:
        raise ValueError(f"nme: left_eye and right_eye must differ, got {left} twice")
    pred, gt = jnp.asarray(pred, jnp.float32), jnp.asarray(gt, jnp.float32)
    iod = jnp.linalg.norm(gt[..., left, :] - gt[..., right, :], axis=-1)
    err = jnp.mean(jnp.linalg.norm(pred - gt, axis=-1), axis=-1)
    return jnp.mean(err / iod)


def heatmap_objective(params: Any, batch: dict[str, jax.Array], *, model: nn.Module,
                      batch_stats: Any, key: jax.Array, occlusion: jax.Array | None = None
                      ) -> tuple[jax.Array, dict[str, Any]]:
    """The pose network's training objective: `heatmap_loss` of every supervised output.

    batch: ``image`` (normalized NHWC), ``heatmap`` targets [N, H', W', J] and ``visible`` [N, J].
    ``key`` feeds the ``'quant'`` stream (stochastic gradient rounding of quantized layers);
    ``occlusion`` [N, g, g] is passed to the model (feature occlusion), if given.
    Returns ``(loss, aux)``; aux holds ``batch_stats``, ``heatmaps`` [S, N, H', W', J] and
    ``loss``.
    """
    kwargs = {} if occlusion is None else {"occlusion": occlusion}
    heatmaps, updates = model.apply(
        {"params": params, "batch_stats": batch_stats}, batch["image"], train=True,
        rngs={"quant": key}, mutable=["batch_stats"], **kwargs)
    loss = heatmap_loss(heatmaps, batch["heatmap"], batch["visible"])
    return loss, {"batch_stats": updates["batch_stats"], "heatmaps": heatmaps, "loss": loss}
