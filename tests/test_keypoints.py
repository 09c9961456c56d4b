"""Heatmap keypoint pipeline: targets, decoding, pose warps, objectives, synthetic figures."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug.data import keypoint_synthetic, keypoints
from jaxaug.objectives import (
    MPII_PCKH_JOINTS,
    OUTER_EYE_CORNERS_68,
    heatmap_loss,
    heatmap_mse,
    mpii_head_size,
    nme,
    pck,
    pckh,
)
from jaxaug.ops.geometry import compose, rotate_matrix, scale_matrix

# ----------------------------------------------------------------------------------------------
# Gaussian targets and decoding


def test_gaussian_heatmaps_closed_form_and_masking():
    joints = jnp.array([[[2.3, 1.6], [0.0, 4.0]], [[5.5, 0.25], [3.0, 3.0]]])
    visible = jnp.array([[True, False], [1.0, 1.0]])
    maps = jax.jit(keypoints.gaussian_heatmaps, static_argnums=2)(joints, visible, (5, 7), 1.5)
    assert maps.shape == (2, 5, 7, 2) and maps.dtype == jnp.float32
    ys, xs = np.mgrid[0:5, 0:7]
    for n, k in ((0, 0), (1, 0), (1, 1)):
        x, y = np.asarray(joints[n, k])
        expected = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2))
        np.testing.assert_allclose(maps[n, :, :, k], expected, rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(maps[0, :, :, 1]).max()) == 0.0  # invisible: all zero
    # On a pixel centre the peak is exactly 1.
    assert float(maps[1, 3, 3, 1]) == pytest.approx(1.0)


def test_gaussian_heatmaps_gradient_points_towards_the_pixel():
    # d/dx exp(-(j - x)^2 / 2s^2) at pixel j = 3 for x = 2.5 is (j - x)/s^2 * value > 0.
    def value(x):
        joints = jnp.array([[x, 2.0]])
        return keypoints.gaussian_heatmaps(joints, jnp.array([True]), (5, 5))[2, 3, 0]

    grad = jax.jit(jax.grad(value))(2.5)
    np.testing.assert_allclose(grad, 0.5 * np.exp(-0.125), rtol=1e-5)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_encode_decode_round_trip_is_subpixel_exact(sigma):
    rng = np.random.default_rng(0)
    h, w, j = 32, 24, 64
    # Interior joints and joints within half a pixel of every border (border windows move inward).
    interior = rng.uniform([2, 2], [w - 3, h - 3], (j, 2))
    border = np.stack([rng.choice([-0.45, -0.2, 0.3, w - 1.3, w - 1, w - 0.55], j),
                       rng.choice([-0.45, 0.1, h - 1.2, h - 0.55], j)], axis=-1)
    mixed = np.stack([rng.uniform(-0.49, w - 0.51, j), rng.choice([-0.4, h - 0.6], j)], -1)
    joints = jnp.asarray(np.stack([interior, border, mixed]), jnp.float32)
    visible = jnp.ones(joints.shape[:-1], bool)
    maps = keypoints.gaussian_heatmaps(joints, visible, (h, w), sigma)
    coords, maxvals = jax.jit(keypoints.decode_heatmaps)(maps)
    err = np.abs(np.asarray(coords) - np.asarray(joints))
    assert err.max() < 1e-3, err.max()  # exact up to float32 rounding (~1e-6 px)
    # maxvals is the map at the integer argmax, the nearest pixel centre.
    nearest = np.round(np.asarray(joints))
    d2 = ((nearest - np.asarray(joints)) ** 2).sum(-1)
    np.testing.assert_allclose(maxvals, np.exp(-d2 / (2 * sigma**2)), rtol=1e-5)


def test_decode_plain_argmax_cases():
    # All-zero map (invisible joint): (0, 0) and value 0.
    maps = np.zeros((6, 6, 4), np.float32)
    maps[0:3, 0:3, 1] = 0.7  # flat around the argmax (0, 0), whose window moves to 0..2
    maps[4, 3, 2] = 1.0  # a lone positive pixel, zero neighbours: symmetric raw fit, no shift
    # A plateau's first element (row 2, col 1) has neighbours 0 and 0.7 on each axis: the
    # parabola through (0, 0.7, 0.7) peaks half a pixel into the plateau.
    maps[2:5, 1:4, 3] = 0.7
    decode = jax.jit(keypoints.decode_heatmaps)
    coords, maxvals = decode(jnp.asarray(maps))
    np.testing.assert_array_equal(coords, [[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [1.5, 2.5]])
    np.testing.assert_array_equal(maxvals, np.float32([0.0, 0.7, 1.0, 0.7]))
    # Parabola through (-1, 0), (0, 1), (1, 0.5) (a negative value forces the raw fit):
    # vertex = 0.5 * (0 - 0.5) / (0 - 2 + 0.5) = 1/6.
    line = np.full((1, 5, 1), -1.0, np.float32)
    line[0, 1:4, 0] = [0.0, 1.0, 0.5]
    maps = np.tile(line, (3, 1, 1))  # [3, 5, 1]: the row is repeated, so y is flat
    coords, _ = decode(jnp.asarray(maps))
    np.testing.assert_allclose(coords[0], [2 + 1 / 6, 0.0], atol=1e-6)


def test_decode_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"H, W >= 3"):
        keypoints.decode_heatmaps(jnp.zeros((2, 8, 4)))
    with pytest.raises(ValueError, match="visible must have shape"):
        keypoints.gaussian_heatmaps(jnp.zeros((4, 2)), jnp.ones(3), (8, 8))
    with pytest.raises(ValueError, match=r"joints must have shape \[\.\.\., J, 2\]"):
        keypoints.gaussian_heatmaps(jnp.zeros((4, 3)), jnp.ones(4), (8, 8))
    with pytest.raises(ValueError, match="size must be a pair of ints"):
        keypoints.gaussian_heatmaps(jnp.zeros((4, 2)), jnp.ones(4), 8)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        keypoints.gaussian_heatmaps(jnp.zeros((4, 2)), jnp.ones(4), (8, 8), sigma=0.0)


def test_heatmap_coordinate_scaling_is_pixel_centre_consistent():
    # A 256 -> 64 map: image pixels 0..3 fold into heatmap pixel 0, whose centre is image 1.5.
    joints = jnp.array([[1.5, 1.5], [-0.5, 255.5], [129.5, 65.5]])
    hm = keypoints.to_heatmap_coords(joints, (256, 256), (64, 64))
    np.testing.assert_allclose(hm, [[0.0, 0.0], [-0.5, 63.5], [32.0, 16.0]])
    # Non-square sizes scale per axis; to_image_coords inverts.
    joints = jnp.array([[3.0, 7.0]])
    hm = keypoints.to_heatmap_coords(joints, (40, 20), (10, 10))
    np.testing.assert_allclose(hm, [[(3.5 * 0.5) - 0.5, (7.5 * 0.25) - 0.5]])
    np.testing.assert_allclose(keypoints.to_image_coords(hm, (10, 10), (40, 20)), joints, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Pose warps


def _blob_image(points, size, sigma=1.2):
    """One Gaussian blob per channel at `points` [C, 2] (joint coordinates)."""
    ys, xs = np.mgrid[0:size[0], 0:size[1]]
    return np.stack([np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
                     for x, y in points], axis=-1).astype(np.float32)


def _centroids(image):
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    mass = image.sum((0, 1))
    return np.stack([(image * xs[..., None]).sum((0, 1)) / mass,
                     (image * ys[..., None]).sum((0, 1)) / mass], axis=-1)


FLIP3 = ((0, 2),)  # joints 0 and 2 are a left/right pair, 1 is central
# One jitted warp for the tests (flip_pairs is static): each op dispatched eagerly would compile
# on its own, which costs more than compiling the whole warp once per shape.
transform = jax.jit(keypoints.transform_sample, static_argnums=6)


@pytest.mark.parametrize("scale, degrees, flip", [
    (1.0, 0.0, True), (1.2, 25.0, False), (0.8, -30.0, True), (1.0, 90.0, False),
    (1.1, 137.0, True),
])
def test_warped_blobs_land_on_warped_joints(scale, degrees, flip):
    h, w = 40, 48
    joints = np.array([[14.3, 12.8], [24.6, 19.1], [31.2, 25.7]], np.float32)
    image = _blob_image(joints, (h, w))
    out, new_joints, vis = transform(jnp.asarray(image), jnp.asarray(joints), jnp.ones(3, bool),
                                     scale, degrees, flip, FLIP3)
    assert out.shape == image.shape and bool(vis.all())
    # Channel c holds the blob of original joint c; after a flip it is joint perm[c]'s label.
    perm = [2, 1, 0] if flip else [0, 1, 2]
    centroids = _centroids(np.asarray(out))
    np.testing.assert_allclose(np.asarray(new_joints)[perm], centroids, atol=0.15)


def test_rotation_by_90_and_flip_closed_form():
    h = w = 9
    c = (w - 1) / 2
    joints = jnp.array([[1.0, 2.0], [4.0, 4.0], [7.5, 0.25]])
    vis = jnp.ones(3, bool)
    image = np.random.default_rng(0).random((h, w, 2)).astype(np.float32)
    # CCW by 90 degrees (as displayed, y down): (dx, dy) -> (dy, -dx); zoom 1.5; then mirror x.
    _, out, _ = transform(jnp.asarray(image), joints, vis, 1.5, 90.0, True, ())
    d = np.asarray(joints) - c
    expected = c + 1.5 * np.stack([-d[:, 1], -d[:, 0]], -1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # The image: 90 degrees at scale 1 is np.rot90 (CCW), then a mirror: the anti-transpose.
    rotated, _, _ = transform(jnp.asarray(image), joints, vis, 1.0, 90.0, False, ())
    np.testing.assert_allclose(rotated, np.rot90(image), atol=1e-4)
    both, _, _ = transform(jnp.asarray(image), joints, vis, 1.0, 90.0, True, ())
    np.testing.assert_allclose(both, np.fliplr(np.rot90(image)), atol=1e-4)


def test_augment_matrix_matches_geometry_compose():
    mirror = jnp.array([[-1.0, 0.0, 20.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    for flip in (False, True):
        expected = compose(scale_matrix(1.3, 14, 20), rotate_matrix(-33.0, 14, 20),
                           *([mirror] if flip else []))
        np.testing.assert_allclose(keypoints.augment_matrix(1.3, -33.0, flip, 14, 20), expected,
                                   atol=1e-5)


def test_flip_swaps_left_right_joints_and_edges_become_invisible():
    h, w = 10, 10
    joints = jnp.array([[2.0, 3.0], [5.0, 5.0], [8.0, 3.0], [9.3, 1.0]])
    visible = jnp.array([True, True, True, False])
    _, out, vis = transform(jnp.zeros((h, w, 3)), joints, visible, 1.0, 0.0, True, ((0, 2),))
    # Mirror x -> 9 - x, then labels 0 and 2 swap: new joint 0 is the mirrored old joint 2.
    np.testing.assert_allclose(out, [[1.0, 3.0], [4.0, 5.0], [7.0, 3.0], [-0.3, 1.0]], atol=1e-5)
    np.testing.assert_array_equal(vis, [True, True, True, False])
    # Zooming x2 about the centre (4.5, 4.5) pushes joint 0 (2, 3) to (-0.5, 1.5): still on the
    # image (-0.5 is the left edge of pixel 0); joint 2 (8, 3) to (11.5, 1.5): off it.
    _, out, vis = transform(jnp.zeros((h, w, 3)), joints, jnp.ones(4, bool), 2.0, 0.0, False,
                            ((0, 2),))
    np.testing.assert_allclose(out[:3], [[-0.5, 1.5], [5.5, 5.5], [11.5, 1.5]], atol=1e-5)
    np.testing.assert_array_equal(vis, [True, True, False, False])


def test_flip_pairs_are_validated():
    args = (jnp.zeros((8, 8, 1)), jnp.zeros((3, 2)), jnp.ones(3), 1.0, 0.0, True)
    for pairs, message in ((((0, 3),), "outside"), (((0, 0),), "two different"),
                           (((0, 1), (1, 2)), "more than one pair"), ((1, 2), "pairs")):
        with pytest.raises(ValueError, match=message):
            keypoints.transform_sample(*args, pairs)


def test_affine_augment_vmaps_and_draws_in_range():
    n, h, w = 64, 16, 16
    keys = jax.random.split(jax.random.key(0), n)
    # Centre (7.5, 7.5). Joint 1 (unpaired) sits at d = (2, 0) from it, so its image is
    # c + scale * (f * 2 cos(theta), -2 sin(theta)): it reveals the drawn scale, angle and flip.
    joints = jnp.array([[4.0, 7.5], [9.5, 7.5], [11.0, 6.0]])
    augment = jax.jit(jax.vmap(lambda k: keypoints.affine_augment(
        k, jnp.zeros((h, w, 1)), joints, jnp.ones(3, bool), flip_pairs=FLIP3,
        scale_range=(0.8, 1.2), max_rotation=20.0)))
    _, out, vis = augment(keys)
    v = np.asarray(out[:, 1]) - 7.5
    scale = np.linalg.norm(v, axis=-1) / 2
    flip = v[:, 0] < 0  # cos(theta) > 0 for |theta| <= 20
    degrees = np.degrees(np.arcsin(-v[:, 1] / (2 * scale)))
    assert 0.8 - 1e-5 <= scale.min() and scale.max() <= 1.2 + 1e-5 and np.ptp(scale) > 0.3
    assert np.abs(degrees).max() <= 20 + 1e-3 and np.ptp(degrees) > 30
    assert 0.2 < flip.mean() < 0.8 and bool(vis.all())
    # Every joint moved by those parameters, with the pair (0, 2) swapped when flipped.
    expected, _ = jax.jit(jax.vmap(lambda s, d, f: keypoints.transform_joints(
        joints, jnp.ones(3), (h, w), s, d, f, FLIP3)))(scale, degrees, flip)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    with pytest.raises(ValueError, match="scale_range"):
        keypoints.affine_augment(keys[0], jnp.zeros((h, w, 1)), joints, jnp.ones(3),
                                 flip_pairs=(), scale_range=(1.2, 0.8))


# ----------------------------------------------------------------------------------------------
# Objectives


def test_heatmap_mse_masked_normalisation():
    pred = np.zeros((2, 3, 4, 2), np.float32)
    target = np.zeros_like(pred)
    pred[0, 1, 2, 0] = 2.0  # visible error: 4
    pred[1, :, :, 1] = 1.0  # 12 unit errors, but joint 1 of sample 1 is invisible
    pred[1, 0, 0, 0] = -1.0  # visible error: 1
    visible = np.array([[1.0, 1.0], [1.0, 0.0]])
    # sum of visible squared errors / (N H W J) = (4 + 1) / (2 * 3 * 4 * 2)
    assert float(heatmap_mse(pred, target, visible)) == pytest.approx(5 / 48)
    assert float(heatmap_mse(pred, target, visible.astype(bool))) == pytest.approx(5 / 48)
    stack = [pred, 2 * pred]  # intermediate supervision: sum over stacks
    assert float(heatmap_loss(stack, target, visible)) == pytest.approx(5 / 48 * 5)
    assert float(heatmap_loss(np.stack(stack), target, visible)) == pytest.approx(5 / 48 * 5)
    grad = jax.grad(heatmap_mse)(jnp.asarray(pred), target, visible)
    assert float(jnp.abs(grad[1, :, :, 1]).max()) == 0.0  # no gradient into hidden joints
    with pytest.raises(ValueError, match="visible must have shape"):
        heatmap_mse(pred, target, visible[:, :1])
    with pytest.raises(ValueError, match="pred_stack"):
        heatmap_loss(pred, target, visible)


def test_pckh_hand_made():
    gt = np.zeros((2, 3, 2), np.float32)
    pred = gt.copy()
    pred[0, :, 0] = [1.0, 2.0, 3.0]  # errors 1, 2, 3 with head size 4 -> threshold 2
    pred[1, :, 1] = [0.5, 4.0, 9.0]  # errors 0.5, 4, 9 with head size 10 -> threshold 5
    visible = np.array([[True, True, True], [True, False, True]])
    head = np.array([4.0, 10.0])
    overall, per_joint = pckh(pred, gt, visible, head)
    # Sample 0: joints 0, 1 hit (1 <= 2, 2 <= 2), 2 misses; sample 1: joint 0 hits, 2 misses.
    assert float(overall) == pytest.approx(3 / 5)
    np.testing.assert_allclose(per_joint, [1.0, 1.0, 0.0])
    overall, per_joint = pck(pred, gt, visible, head, 0.2, joints=(0, 2))
    # alpha 0.2: thresholds 0.8 and 2 -> only sample 1 joint 0; over joints {0, 2}: 1 / 4.
    assert float(overall) == pytest.approx(1 / 4)
    np.testing.assert_allclose(per_joint, [0.5, 0.0, 0.0])
    # A joint that is never visible has an undefined (NaN) PCK.
    _, per_joint = pckh(pred, gt, np.array([[1, 0, 1], [1, 0, 1]]), head)
    assert np.isnan(per_joint[1])
    assert MPII_PCKH_JOINTS == (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)
    with pytest.raises(ValueError, match="norm must have one value per sample"):
        pck(pred, gt, visible, head[:1], 0.5)


def test_mpii_head_size():
    boxes = np.array([[10.0, 20.0, 13.0, 24.0], [0.0, 0.0, 6.0, 8.0]])
    np.testing.assert_allclose(mpii_head_size(boxes), [0.6 * 5, 0.6 * 10])
    with pytest.raises(ValueError, match="head_box"):
        mpii_head_size(np.zeros((2, 3)))


def test_nme_hand_computed():
    gt = np.zeros((2, 68, 2), np.float32)
    gt[0, 36], gt[0, 45] = (0.0, 0.0), (40.0, 0.0)  # inter-ocular 40
    gt[1, 36], gt[1, 45] = (0.0, 0.0), (30.0, 40.0)  # inter-ocular 50
    pred = gt.copy()
    pred[0, 10] += (3.0, 4.0)  # error 5 on one of 68 points
    pred[1, :, 0] += 2.0  # error 2 everywhere
    expected = (5 / 68 / 40 + 2 / 50) / 2
    assert float(nme(pred, gt)) == pytest.approx(expected)
    assert OUTER_EYE_CORNERS_68 == (36, 45)
    with pytest.raises(ValueError, match="left_eye = 70"):
        nme(pred, gt, 70, 45)


# ----------------------------------------------------------------------------------------------
# The synthetic figures


@pytest.fixture(scope="module")
def figures():
    u, noise = keypoint_synthetic._draws("train", 64, 64, 0)
    return keypoint_synthetic._render(64, u, noise)


def test_synthetic_layout_constants_are_consistent():
    names = keypoint_synthetic.JOINT_NAMES
    assert len(names) == 16 and names[6] == "pelvis" and names[9] == "head_top"
    paired = set()
    for left_index, right_index in keypoint_synthetic.FLIP_PAIRS:
        a, b = names[left_index], names[right_index]
        assert {a[:2], b[:2]} == {"r_", "l_"} and a[2:] == b[2:]
        paired |= {left_index, right_index}
    assert all(names[k][:2] not in ("r_", "l_") for k in range(16) if k not in paired)
    # The skeleton is a tree over all 16 joints, and mirroring maps limbs to limbs.
    assert len(keypoint_synthetic.SKELETON) == 15
    assert {j for edge in keypoint_synthetic.SKELETON for j in edge} == set(range(16))
    perm = keypoints.flip_permutation(keypoint_synthetic.FLIP_PAIRS, 16)
    limbs = {frozenset(e) for e in keypoint_synthetic.SKELETON}
    assert {frozenset(perm[list(e)]) for e in limbs} == limbs


def test_synthetic_joints_lie_on_drawn_limbs(figures):
    images, joints, visible, head_size, extras = figures
    px = np.clip(np.round(joints).astype(int), 0, 63)
    n = np.arange(len(images))[:, None]
    cover = np.maximum(np.maximum(extras["cov_torso"], extras["cov_right"]), extras["cov_left"])
    assert cover[n, px[..., 1], px[..., 0]][visible].min() == pytest.approx(1.0)
    # Limb joints whose pixel is covered by their own side only show that side's colour
    # (up to the pixel noise, std 0.02); torso joints free of limbs show the torso colour.
    pixel = images[n, px[..., 1], px[..., 0]].astype(np.float64) / 255  # [N, 16, 3]
    checked = 0
    for side, other, idx in (("right", "left", (0, 1, 10, 11)),
                             ("left", "right", (3, 4, 5, 14, 15))):
        for k in idx:
            own = extras[f"cov_{side}"][np.arange(64), px[:, k, 1], px[:, k, 0]]
            rival = extras[f"cov_{other}"][np.arange(64), px[:, k, 1], px[:, k, 0]]
            ok = visible[:, k] & (own == 1) & (rival == 0)
            err = np.abs(pixel[ok, k] - extras[side][ok]).max()
            assert err < 0.1, (side, k, err)
            checked += ok.sum()
    for k in (6, 7):
        free = visible[:, k] & (extras["cov_right"][np.arange(64), px[:, k, 1], px[:, k, 0]] == 0) \
            & (extras["cov_left"][np.arange(64), px[:, k, 1], px[:, k, 0]] == 0)
        assert np.abs(pixel[free, k] - extras["torso"][free]).max() < 0.1
        checked += free.sum()
    assert checked > 400  # most joints were checked
    # Left and right limb colours are far apart; the figure is brighter than the background.
    assert np.linalg.norm(extras["right"] - extras["left"], axis=-1).min() > 0.2
    assert (extras["right"].max(-1) > extras["background"].max(-1)).all()
    # head size = 0.6 * diagonal of the head disc's bounding square, radius |top - neck| / 2 + 1.25.
    radius = np.linalg.norm(joints[:, 9] - joints[:, 8], axis=-1) / 2 + 1.25
    np.testing.assert_allclose(head_size, 0.6 * 2 * np.sqrt(2) * radius, rtol=1e-5)


def test_synthetic_load_is_deterministic_and_fast():
    start = time.perf_counter()
    data = keypoint_synthetic.load("train", num=1000, size=64, seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, elapsed
    assert data.images.shape == (1000, 64, 64, 3) and data.images.dtype == np.uint8
    assert data.joints.shape == (1000, 16, 2) and data.joints.dtype == np.float32
    assert data.visible.shape == (1000, 16) and data.visible.dtype == bool
    assert data.head_size.shape == (1000,) and data.head_size.dtype == np.float32
    assert data.flip_pairs == keypoint_synthetic.FLIP_PAIRS and data.norm_kind == "head_size"
    on_image = ((data.joints >= -0.5) & (data.joints < 63.5)).all(-1)
    np.testing.assert_array_equal(data.visible, on_image)
    prefix = keypoint_synthetic.load("train", num=10, size=64, seed=0)
    assert prefix.images.tobytes() == data.images[:10].tobytes()
    np.testing.assert_array_equal(prefix.joints, data.joints[:10])
    other = keypoint_synthetic.load("test", num=10, size=64, seed=0)
    assert np.mean(other.images != prefix.images) > 0.5
    assert np.mean(keypoint_synthetic.load("train", num=10, seed=1).images != prefix.images) > 0.5
    with pytest.raises(ValueError, match="unknown split 'val'"):
        keypoint_synthetic.load("val", num=2)
    with pytest.raises(ValueError, match="no head size"):
        _ = keypoint_synthetic.KeypointData(
            data.images[:1], data.joints[:1], data.visible[:1], data.norm[:1], "torso",
            data.joint_names, data.flip_pairs).head_size


def test_synthetic_pipeline_end_to_end():
    # Augment the figures, encode 16 x 16 targets, decode them back: the round trip recovers the
    # augmented joints (in heatmap coordinates) and PCKh of the decoded joints is 1.
    data = keypoint_synthetic.load("test", num=8, size=64)

    @jax.jit
    def pipeline(keys, images, joints, visible, head_size):
        augment = jax.vmap(lambda k, i, j, v: keypoints.affine_augment(
            k, i, j, v, flip_pairs=keypoint_synthetic.FLIP_PAIRS))
        _, joints, visible = augment(keys, images, joints, visible)
        hm_joints = keypoints.to_heatmap_coords(joints, (64, 64), (16, 16))
        maps = keypoints.gaussian_heatmaps(hm_joints, visible, (16, 16), sigma=1.0)
        decoded, _ = keypoints.decode_heatmaps(maps)
        back = keypoints.to_image_coords(decoded, (16, 16), (64, 64))
        return pckh(back, joints, visible, head_size, 0.1)[0], back, joints, visible

    keys = jax.random.split(jax.random.key(1), 8)
    overall, back, joints, visible = pipeline(keys, jnp.asarray(data.images, jnp.float32) / 255,
                                              data.joints, data.visible, data.head_size)
    assert float(overall) == 1.0 and 0 < int(visible.sum()) < visible.size
    assert float(jnp.abs(back - joints)[visible].max()) < 0.05
