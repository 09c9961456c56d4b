"""Label-aware policies: masks, keypoints and boxes move with the image (`ops.warp_targets`,
`Policy.apply_with_targets`).

Every check paints the targets into the image and warps both: channel 0 holds the mask's classes
as grey levels (class k -> (k + 1) / 9, the fill 0 -> -1), channel 1 a rectangle (the box),
channel 2 a small Gaussian dot centred on a pixel centre (the keypoint). The policy draws one of
the sub-policies of `TABLE` per key: each geometric op of the vocabulary alone, a 3-step and a
2-step chain, and two colour/cutout sub-policies; 64 keys cover all of them. The policy samples
nearest (the reference's); bilinear chains (`CHAINS`) run the same matrices through
`warp_chain` directly. Each of the policy, its plain call, the bilinear chains and the crops is
one compiled program (about 10 s of CPU time together, on 2 cores).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug import ops, policies
from jaxaug.data import keypoints as kp
from jaxaug.policies import apply

H = W = 16
NUM_CLASSES = 8
IGNORE = 255
SIGMA = 0.7
DOT = (8.5, 7.5)  # the centre of pixel (row 7, col 8)
RECT = (4, 5, 12, 11)  # x0, y0, x1, y1: pixels cols 4..11, rows 5..10

TABLE = (
    (("rotate", 1.0, 6),),  # 18 degrees
    (("shear_x", 1.0, 6),),  # 0.18
    (("shear_y", 1.0, 6),),
    (("translate_x", 1.0, 4),),  # 4 px at 16 px
    (("translate_y", 1.0, 4),),
    (("rotate", 1.0, 4), ("shear_y", 1.0, 5), ("translate_x", 1.0, 3)),
    (("shear_x", 1.0, 5), ("translate_y", 1.0, 3)),
    (("color", 1.0, 8), ("cutout", 1.0, 5)),
    (("invert", 1.0, 0), ("brightness", 1.0, 7)),
)
KEYS = jax.random.split(jax.random.key(0), 64)


def _painted():
    """(image [H, W, 3], mask [H, W] int32, keypoints [2, 2], boxes [2, 4])."""
    mask = np.random.default_rng(0).integers(0, NUM_CLASSES, (H, W)).astype(np.int32)
    rect = np.zeros((H, W), np.float32)
    rect[RECT[1]:RECT[3], RECT[0]:RECT[2]] = 1.0
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    dot = np.exp(-((xs - DOT[0]) ** 2 + (ys - DOT[1]) ** 2) / (2 * SIGMA**2))
    img = np.stack([(mask + 1) / 9.0, rect, dot], -1).astype(np.float32)
    points = np.asarray([DOT, (1.5, 14.5)], np.float32)
    boxes = np.asarray([RECT, (0.0, 0.0, 3.0, 2.0)], np.float32)
    return img, mask, points, boxes


IMG, MASK, POINTS, BOXES = map(jnp.asarray, _painted())


def _policy():
    return policies.autoaugment(TABLE, fill=0.0)  # nearest sampling, as the reference


def _classes(img):
    """Channel 0 back to classes (-1 where the image got the fill)."""
    return np.rint(np.asarray(img[..., 0]) * 9.0).astype(int) - 1


def _centroid(channel):
    ys, xs = np.mgrid[0:channel.shape[0], 0:channel.shape[1]] + 0.5
    total = channel.sum()
    return np.asarray([(channel * xs).sum() / total, (channel * ys).sum() / total])


def _kinds(out, subs):
    """Per image: geometric (only geometric steps), translate (one translation), the number of
    warps, from the drawn sub-policy (index into `subs`, a sequence of ((op, ...), ...))."""
    out["geometric"] = np.asarray([all(op in apply.GEOMETRIC_OPS for op, *_ in subs[i])
                                   for i in out["sub"]])
    out["translate"] = np.asarray([len(subs[i]) == 1 and subs[i][0][0].startswith("translate")
                                   for i in out["sub"]])
    out["warps"] = np.asarray([len(subs[i]) for i in out["sub"]])
    return out


@functools.cache
def _policy_run():
    """The nearest policy's {image, targets..., sub (the drawn sub-policy)} for every key, one
    jitted program."""
    policy = _policy()

    def run(key):
        img, targets = policy.apply_with_targets(key, IMG, mask=MASK, keypoints=POINTS,
                                                 boxes=BOXES, ignore_label=IGNORE)
        # Which sub-policy was drawn: Policy splits its key into (sample, apply) keys.
        op_index, _, _ = policy.sample(jax.random.split(key)[0], H)
        return dict(targets, image=img, op_index=op_index)

    out = jax.tree.map(np.asarray, jax.jit(jax.vmap(run))(KEYS))
    # Sub-policies are padded to 3 steps with never-applied identities.
    ops_of = [tuple(policy.op_names.index(op) for op, _, _ in sub)
              + (policy.op_names.index("identity"),) * (3 - len(sub)) for sub in TABLE]
    out["sub"] = np.asarray([ops_of.index(tuple(row)) for row in out["op_index"]])
    return _kinds(out, TABLE)


#: Bilinear chains of the policies' geometric ops (op, value in natural units), both signs.
CHAINS = tuple(((op, sign * v),) for op, v in (("rotate", 18.0), ("shear_x", 0.18),
                                                ("shear_y", 0.18), ("translate_x", 4.0),
                                                ("translate_y", 4.0)) for sign in (1, -1)) + (
    (("rotate", 12.0), ("shear_y", -0.15), ("translate_x", 3.0)),
    (("shear_x", 0.15), ("translate_y", -3.0)),
    (("translate_x", 2.5), ("rotate", -20.0), ("shear_x", 0.1)),
)


@functools.cache
def _bilinear_run():
    """What `apply_with_targets` of a fused bilinear policy runs for `CHAINS`: the steps'
    matrices (`apply.step_matrices`), one `warp_chain` of the image and `warp_targets`."""
    vocabulary = apply.GEOMETRIC_OPS + ("identity",)
    padded = [list(c) + [("identity", 0.0)] * (3 - len(c)) for c in CHAINS]
    op_index = np.asarray([[vocabulary.index(op) for op, _ in c] for c in padded], np.int32)
    value = np.asarray([[v for _, v in c] for c in padded], np.float32)

    def run(op_index, value):
        m = apply.step_matrices(op_index, value, op_index < len(apply.GEOMETRIC_OPS),
                                op_names=vocabulary, height=H, width=W)
        img, _ = ops.warp_chain(IMG, m, interpolation="bilinear", fill=0.0)
        return dict(ops.warp_targets(m, H, W, keypoints=POINTS, boxes=BOXES), image=img)

    out = jax.tree.map(np.asarray, jax.jit(jax.vmap(run))(op_index, value))
    out["sub"] = np.arange(len(CHAINS))
    return _kinds(out, CHAINS)


@pytest.fixture(scope="module", params=["nearest", "bilinear"])
def run(request):
    return request.param, _policy_run() if request.param == "nearest" else _bilinear_run()


def test_every_sub_policy_is_drawn():
    assert set(_policy_run()["sub"]) == set(range(len(TABLE)))


def test_image_equals_policy_call_bitwise():
    policy = _policy()
    expected = jax.jit(jax.vmap(lambda key: policy(key, IMG)))(KEYS)
    np.testing.assert_array_equal(_policy_run()["image"], np.asarray(expected))


def test_keypoint_follows_the_dot(run):
    """The moved keypoint is the centroid of the warped dot: within 0.05 px with bilinear
    sampling (one resampling of the exact composed map), within 0.5 px with nearest (the
    image's points snap to pixel centres, also between the warps of a chain)."""
    interpolation, out = run
    geometric = out["geometric"]
    errors = np.asarray([np.abs(_centroid(img[..., 2]) - pts[0]).max()
                         for img, pts in zip(out["image"][geometric], out["keypoints"][geometric])])
    print(f"{interpolation}: max centroid error {errors.max():.4f} px over {errors.size} images")
    assert errors.max() < (0.05 if interpolation == "bilinear" else 0.5)
    assert out["visible"][geometric, 0].all()
    # Not vacuous: the dot moved (a chain may nearly cancel itself).
    assert np.median(np.abs(out["keypoints"][geometric, 0] - np.asarray(DOT)).max(-1)) > 1.0


def test_mask_stays_aligned_with_its_painted_image():
    """Nearest warps of the painted image and of the mask agree on every pixel: the image's
    class where the mask has one, the fill exactly where the mask has the ignore label."""
    out = _policy_run()
    geometric = out["geometric"]
    mask = np.where(out["mask"] == IGNORE, -1, out["mask"])
    classes = np.stack([_classes(img) for img in out["image"]])
    np.testing.assert_array_equal(classes[geometric], mask[geometric])
    assert (mask[geometric] == -1).any()  # some pixels came from outside the frame


def test_box_contains_the_warped_rectangle(run):
    """Every pixel of the warped rectangle (its value above 1/2: with bilinear sampling, the
    points inside the moved rectangle) has its centre in the moved box, up to 1/2 px per
    intermediate warp of a nearest chain (one 3-step chain overshoots by 0.03 px); for
    translations (integer pixels) the box is the rectangle's pixel edges exactly."""
    interpolation, out = run
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    for i in np.flatnonzero(out["geometric"]):
        painted = out["image"][i, ..., 1] > 0.5
        assert painted.any()
        x0, y0, x1, y1 = box = out["boxes"][i, 0]
        # Nearest chains snap the image's points to pixel centres between warps.
        eps = 0.5 * (out["warps"][i] - 1) if interpolation == "nearest" else 1e-4
        assert ((xs[painted] >= x0 - eps) & (xs[painted] <= x1 + eps)
                & (ys[painted] >= y0 - eps) & (ys[painted] <= y1 + eps)).all(), (i, box)
        if out["translate"][i]:
            edges = (xs[painted].min() - 0.5, ys[painted].min() - 0.5,
                     xs[painted].max() + 0.5, ys[painted].max() + 0.5)
            np.testing.assert_allclose(box, edges, atol=1e-5)
    assert out["box_valid"][out["geometric"], 0].all()


def test_colour_and_cutout_steps_leave_targets_untouched():
    out = _policy_run()
    colour = ~out["geometric"]
    n = colour.sum()
    np.testing.assert_array_equal(out["mask"][colour], np.broadcast_to(MASK, (n, H, W)))
    np.testing.assert_array_equal(out["keypoints"][colour], np.broadcast_to(POINTS, (n, 2, 2)))
    np.testing.assert_array_equal(out["boxes"][colour], np.broadcast_to(BOXES, (n, 2, 4)))
    assert out["visible"][colour].all() and out["box_valid"][colour].all()
    assert np.abs(out["image"][colour] - IMG).max() > 0.1  # the steps did change the image


@functools.cache
def _crop_run():
    """random_resized_crop to 12 x 20 (nearest and bilinear) and warp_targets with
    random_resized_crop_matrix of the same keys."""
    size, scale = (12, 20), (0.25, 1.0)

    def run(key):
        m = ops.random_resized_crop_matrix(key, H, W, size=size, scale=scale)
        near = ops.random_resized_crop(key, IMG, size, scale, interpolation="nearest")
        bil = ops.random_resized_crop(key, IMG, size, scale, interpolation="bilinear")
        targets = ops.warp_targets(m, H, W, mask=MASK[..., None], keypoints=POINTS,
                                   boxes=BOXES, size=size)
        return dict(targets, nearest=near, bilinear=bil, matrix=m)

    return jax.tree.map(np.asarray, jax.jit(jax.vmap(run))(KEYS[:32]))


def test_random_resized_crop_moves_targets():
    out = _crop_run()
    assert out["mask"].shape == (32, 12, 20, 1)
    np.testing.assert_array_equal(np.stack([_classes(img) for img in out["nearest"]]),
                                  out["mask"][..., 0])
    ys, xs = np.mgrid[0:12, 0:20] + 0.5
    errors = []
    for img, pts, m in zip(out["bilinear"], out["keypoints"], out["matrix"]):
        zoom = 1.0 / min(m[0, 0], m[1, 1])
        margin = 3 * SIGMA * zoom + 1
        x, y = pts[0]
        if margin <= x <= 20 - margin and margin <= y <= 12 - margin:  # the whole dot is kept
            errors.append(np.abs(_centroid(img[..., 2]) - pts[0]).max())
    print(f"crop: max centroid error {max(errors):.4f} output px over {len(errors)} crops")
    # Upsampled up to 2x, the bilinear interpolant of the dot is sampled off its kinks.
    assert len(errors) >= 8 and max(errors) < 0.15
    for img, box in zip(out["nearest"], out["boxes"][:, 0]):
        painted = img[..., 1] > 0.5
        if not painted.any():
            continue
        x0, y0, x1, y1 = box
        assert ((xs[painted] >= x0) & (xs[painted] < x1) & (ys[painted] >= y0)
                & (ys[painted] < y1)).all()
        # Tight: an axis-aligned warp; the painted pixels' edges are within 1/2 px of the box.
        edges = np.asarray([xs[painted].min() - 0.5, ys[painted].min() - 0.5,
                            xs[painted].max() + 0.5, ys[painted].max() + 0.5])
        assert np.abs(edges - box).max() <= 0.5 + 1e-5, (edges, box)


@functools.cache
@jax.jit
def _closed_form_run():
    out_and_back = jnp.stack([ops.translate_x_matrix(-3.0), ops.translate_x_matrix(3.0)])
    img = jnp.ones((H, W, 1), jnp.float32)
    warped, _ = ops.warp_chain(img, out_and_back, interpolation="nearest", fill=0.0)
    back = ops.warp_targets(out_and_back, H, W, keypoints=jnp.asarray([[14.5, 8.5], [5.5, 8.5]]),
                            mask=jnp.ones((H, W), jnp.uint8), ignore_label=0)
    out = ops.warp_targets(ops.translate_x_matrix(-2.0), H, W,
                           keypoints=jnp.asarray([[15.5, 2.5], [-0.5, 2.5]]),
                           boxes=jnp.asarray([[14.5, 1.0, 15.5, 3.0], [10.0, 1.0, 15.0, 3.0]]))
    return dict(warped=warped, back=back, out=out)


def test_points_that_leave_the_frame_are_invisible():
    """A point moved right out of the frame is invisible; so is one moved out and back by a
    chain, where warp_chain fills the image (content moved out is lost) and the mask gets the
    ignore label; a box moved out is empty, one moved across the edge clipped."""
    r = jax.tree.map(np.asarray, _closed_form_run())
    np.testing.assert_allclose(r["out"]["keypoints"], [[17.5, 2.5], [1.5, 2.5]])
    np.testing.assert_array_equal(r["out"]["visible"], [False, False])  # the second started out
    np.testing.assert_allclose(r["out"]["boxes"], [[16.0, 1.0, 16.0, 3.0], [12.0, 1.0, 16.0, 3.0]])
    np.testing.assert_array_equal(r["out"]["box_valid"], [False, True])
    np.testing.assert_allclose(r["back"]["keypoints"], [[14.5, 8.5], [5.5, 8.5]])
    np.testing.assert_array_equal(r["back"]["visible"], [False, True])
    assert r["warped"][8, 14, 0] == 0.0 and r["warped"][8, 5, 0] == 1.0
    np.testing.assert_array_equal(r["back"]["mask"], r["warped"][..., 0].astype(np.uint8))


def test_keypoints_agree_with_the_pose_pipeline():
    """A second implementation: jaxaug.data.keypoints moves joints (pixel centres at integers)
    with its closed-form inverse of augment_matrix; warp_targets inverts the matrix itself."""
    cases = (jnp.asarray([0.8, 1.3, 1.0]), jnp.asarray([25.0, -40.0, 170.0]),
             jnp.asarray([False, True, True]))
    joints = jnp.asarray(np.random.default_rng(1).uniform(2, 13, (5, 2)), jnp.float32)

    def both(scale, degrees, flip):
        m = kp.augment_matrix(scale, degrees, flip, H, W)
        moved = ops.warp_targets(m, H, W, keypoints=joints + 0.5)
        ref, vis = kp.transform_joints(joints, jnp.ones(5, bool), (H, W), scale, degrees, flip, ())
        return moved["keypoints"] - 0.5, moved["visible"], ref, vis

    moved, visible, ref, vis = jax.jit(jax.vmap(both))(*cases)
    np.testing.assert_allclose(moved, ref, atol=1e-4)
    np.testing.assert_array_equal(visible, vis)
    assert not vis.all()  # the check covers invisible joints too


@pytest.mark.parametrize("kwargs, match", [
    (dict(matrices=jnp.eye(3)[None, :2]), r"matrices must have shape \[3, 3\] or \[T, 3, 3\]"),
    (dict(mask=jnp.zeros((H, W), jnp.float32)), "mask must hold integer labels"),
    (dict(mask=jnp.zeros((W, H + 1), jnp.int32)), "mask must have shape"),
    (dict(mask=jnp.zeros((H, W), jnp.uint8), ignore_label=256), "ignore_label 256"),
    (dict(keypoints=jnp.zeros((3, 3))), r"keypoints must have shape \[N, 2\]"),
    (dict(boxes=jnp.zeros((4,))), r"boxes must have shape \[N, 4\]"),
    (dict(matrices=jnp.stack([jnp.eye(3)] * 2), size=(8, 8)), "needs a single matrix"),
    (dict(interpolation="cubic"), "interpolation must be"),
])
def test_bad_arguments_raise(kwargs, match):
    kwargs = {"matrices": jnp.eye(3), **kwargs}
    with pytest.raises(ValueError, match=rf"^warp_targets: .*{match}"):
        jax.eval_shape(lambda: ops.warp_targets(kwargs.pop("matrices"), H, W, **kwargs))
