"""Keypoint dataset loaders on small files written in the real formats (MPII .mat, LSP joints.mat,
300-W .pts): joints, visibility and normalisers after the crop, image/joint consistency, errors."""

import math

import numpy as np
import pytest
import scipy.io
from PIL import Image

from jaxaug.data import DataError, keypoint_formats
from jaxaug.data.errors import CorruptImageError, DatasetPathError, SplitNotFoundError
from jaxaug.data.keypoints import flip_permutation

EMPTY = np.zeros((0, 0))  # MATLAB's []


def _struct_array(fields, rows):
    """A 1 x K MATLAB struct array for scipy.io.savemat (as annolist, annorect, point)."""
    array = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for k, row in enumerate(rows):
        array[0, k] = tuple(row[f] for f in fields)
    return array


def _blob_image(width, height, blobs, sigma=3.0):
    """Black RGB image with a Gaussian blob (peak 255) per (x, y, channel), x/y 0-based."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3))
    for x, y, channel in blobs:
        image[..., channel] += 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8))


def _centroid(image, channel):
    weights = image[..., channel].astype(np.float64)
    weights = np.where(weights > 0.2 * weights.max(), weights, 0.0)  # ignore JPEG ringing
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


def _crop(points, centre, side, size):
    return (np.asarray(points, np.float64) - (np.asarray(centre) - side / 2)) * size / side - 0.5


# ----------------------------------------------------------------------------------------------
# MPII

POINT_FIELDS = ("id", "x", "y", "is_visible")
RECT_FIELDS = ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")
# Person A of image 1 (file coordinates, 1-based): id -> (x, y, is_visible as stored).
PERSON_A = {0: (50.0, 80.0, 1), 5: (72.5, 81.0, "0"), 6: (61.0, 60.0, EMPTY),
            9: (70.0, 40.0, "1"), 12: (48.0, 45.0, 0), 15: (140.0, 50.0, 1)}
A_OBJPOS, A_SCALE, A_BOX = (61.0, 51.0), 0.3, (55.0, 30.0, 67.0, 39.0)
# Person B of image 1: a single annotated point (squeeze_me turns the 1 x 1 point array into
# one struct, as in the release).
B_POINT, B_OBJPOS, B_SCALE, B_BOX = (3, 120.0, 90.0, 1), (118.0, 80.0), 0.2, (110, 60, 116, 68)


def _mpii_release(tmp_path, incomplete=False):
    def rect(points, objpos, scale, box):
        return {"x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3],
                "annopoints": EMPTY if points is None else {"point": _struct_array(
                    POINT_FIELDS, [dict(zip(POINT_FIELDS, (i, *p))) for i, p in points])},
                "scale": scale, "objpos": {"x": objpos[0], "y": objpos[1]}}

    image1 = _struct_array(RECT_FIELDS, [
        rect(list(PERSON_A.items()), A_OBJPOS, A_SCALE, A_BOX),
        rect([(B_POINT[0], B_POINT[1:])], B_OBJPOS, B_SCALE, B_BOX),
        rect(None, (20.0, 20.0), 1.0, (0, 0, 1, 1)),  # a person without annotated joints
    ])
    if incomplete:  # an annotated person without objpos
        person = rect(list(PERSON_A.items()), A_OBJPOS, A_SCALE, A_BOX)
        image1 = _struct_array(RECT_FIELDS, [*(dict(zip(RECT_FIELDS, r)) for r in image1[0]),
                                             {**person, "objpos": EMPTY}])
    # A test image (img_train = 0): only scale and objpos, as in the release.
    image2 = _struct_array(("scale", "objpos"), [{"scale": 1.0, "objpos": {"x": 5, "y": 5}}])
    image3 = EMPTY  # a training image without people
    annolist = _struct_array(("image", "annorect"), [
        {"image": {"name": "one.jpg"}, "annorect": image1},
        {"image": {"name": "two.jpg"}, "annorect": image2},
        {"image": {"name": "three.jpg"}, "annorect": image3},
    ])
    path = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    scipy.io.savemat(path, {"RELEASE": {"annolist": annolist, "img_train": np.array([[1, 0, 1]]),
                                        "version": "12"}})
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    # Blobs at person A's head top (red) and person B's point (green), 0-based.
    _blob_image(160, 120, [(69.0, 39.0, 0), (119.0, 89.0, 1)]).save(images / "one.jpg",
                                                                       quality=95)
    return path, images


def test_mpii_loader_matches_the_written_annotation(tmp_path):
    path, images = _mpii_release(tmp_path)
    data = keypoint_formats.load_mpii(path, images, size=32)
    assert len(data) == 2 and data.sources == ("one.jpg#0", "one.jpg#1")
    assert data.images.shape == (2, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.joint_names[9] == "head_top" and data.norm_kind == "head_size"
    # Person A: centre = objpos - 1 moved down by 15 * scale, side = 200 * scale * 1.25.
    centre = np.array([A_OBJPOS[0] - 1, A_OBJPOS[1] - 1 + 15 * A_SCALE])
    side = 200 * A_SCALE * 1.25
    for joint, (x, y, _) in PERSON_A.items():
        np.testing.assert_allclose(data.joints[0, joint], _crop([x - 1, y - 1], centre, side, 32),
                                   atol=1e-4)
    # Annotated and inside the crop; joint 15 (x = 140) lies outside it, 1..4 etc. are missing.
    expected_visible = np.zeros(16, bool)
    expected_visible[[0, 5, 6, 9, 12]] = True
    np.testing.assert_array_equal(data.visible[0], expected_visible)
    np.testing.assert_array_equal(np.flatnonzero(data.occluded[0]), [5, 12])  # is_visible 0
    diagonal = math.hypot(A_BOX[2] - A_BOX[0], A_BOX[3] - A_BOX[1])
    assert data.head_size[0] == pytest.approx(0.6 * diagonal * 32 / side, rel=1e-6)
    # Person B: the single point.
    centre_b = np.array([B_OBJPOS[0] - 1, B_OBJPOS[1] - 1 + 15 * B_SCALE])
    side_b = 200 * B_SCALE * 1.25
    np.testing.assert_allclose(data.joints[1, 3], _crop([119, 89], centre_b, side_b, 32),
                               atol=1e-4)
    assert np.flatnonzero(data.visible[1]).tolist() == [3]
    # The crop moved the image with the joints: each blob is where its joint now is.
    np.testing.assert_allclose(_centroid(data.images[0], 0), data.joints[0, 9], atol=0.3)
    np.testing.assert_allclose(_centroid(data.images[1], 1), data.joints[1, 3], atol=0.3)
    assert len(keypoint_formats.load_mpii(path, images, size=32, limit=1)) == 1
    assert data.metric == "pckh"


def test_mpii_splits_need_a_holdout_for_test(tmp_path):
    path, _ = _mpii_release(tmp_path)  # images/ beside the .mat: the default image_dir
    assert len(keypoint_formats.load_mpii(path, split="train", size=16)) == 2
    with pytest.raises(SplitNotFoundError, match="needs holdout"):
        keypoint_formats.load_mpii(path, split="test")
    held = keypoint_formats.load_mpii(path, split="test", size=16, holdout={"one.jpg"})
    assert held.sources == ("one.jpg#0", "one.jpg#1")
    assert len(keypoint_formats.load_mpii(path, split="train", size=16, holdout=["one.jpg"])) == 0
    with pytest.raises(SplitNotFoundError, match="no split 'val'"):
        keypoint_formats.load_mpii(path, split="val")


def test_mpii_loader_errors_name_the_file(tmp_path):
    path, images = _mpii_release(tmp_path)
    with pytest.raises(DatasetPathError, match="missing.mat"):
        keypoint_formats.load_mpii(tmp_path / "missing.mat", images)
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" + bytes(200))
    with pytest.raises(DataError, match="bad.mat"):
        keypoint_formats.load_mpii(tmp_path / "bad.mat", images)
    scipy.io.savemat(tmp_path / "other.mat", {"joints": np.zeros((3, 14, 2))})
    with pytest.raises(DataError, match="other.mat has no RELEASE struct"):
        keypoint_formats.load_mpii(tmp_path / "other.mat", images)
    path, images = _mpii_release(tmp_path, incomplete=True)
    message = r"annolist\(1\) \(one.jpg\) annorect\(4\): missing field 'objpos'"
    with pytest.raises(DataError, match=message):
        keypoint_formats.load_mpii(path, images)
    with pytest.warns(UserWarning, match="left out 1 incomplete annotated people"):
        assert len(keypoint_formats.load_mpii(path, images, size=16, incomplete="skip")) == 2
    (images / "one.jpg").unlink()
    with pytest.raises(DatasetPathError, match="one.jpg"):
        keypoint_formats.load_mpii(path, images)
    (images / "one.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CorruptImageError, match="one.jpg"):
        keypoint_formats.load_mpii(path, images)


# ----------------------------------------------------------------------------------------------
# LSP and LSP-extended


def _lsp_joints(rng, n, width, height):
    x = rng.uniform(0.2 * width, 0.8 * width, (n, 14))
    y = rng.uniform(0.15 * height, 0.85 * height, (n, 14))
    return np.stack([x, y], axis=-1)


def test_lsp_loader_reads_flags_splits_and_torso(tmp_path):
    rng = np.random.default_rng(0)
    n = 1002  # images 1001 and 1002 form the test split
    joints = _lsp_joints(rng, n, 90, 120)
    flags = (rng.random((n, 14)) < 0.3).astype(float)  # LSP: 1 = occluded, all annotated
    raw = np.concatenate([joints, flags[..., None]], axis=-1).transpose(2, 1, 0)  # 3 x 14 x N
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": raw})
    (tmp_path / "images").mkdir()
    for i in (1000, 1001):
        x, y = joints[i, 13]
        _blob_image(90, 120, [(x, y, 2)]).save(tmp_path / "images" / f"im{i + 1:04d}.jpg",
                                                quality=95)
    data = keypoint_formats.load_lsp(tmp_path, split="test", size=48)
    assert data.sources == ("im1001.jpg", "im1002.jpg") and data.norm_kind == "torso"
    assert data.metric == "pck"
    for k, i in enumerate((1000, 1001)):
        lo, hi = joints[i].min(0), joints[i].max(0)
        side = 1.25 * (hi - lo).max()
        expected = _crop(joints[i], (lo + hi) / 2, side, 48)
        np.testing.assert_allclose(data.joints[k], expected, atol=1e-4)
        assert data.visible[k].all()  # LSP annotates every joint
        np.testing.assert_array_equal(data.occluded[k], flags[i] == 1)
        torso = np.linalg.norm(expected[9] - expected[2])  # left shoulder to right hip
        assert data.norm[k] == pytest.approx(torso, rel=1e-5)
        np.testing.assert_allclose(_centroid(data.images[k], 2), expected[13], atol=0.3)
    with pytest.raises(SplitNotFoundError, match=r"no split 'val'.*\['all', 'test', 'train'\]"):
        keypoint_formats.load_lsp(tmp_path, split="val")
    with pytest.raises(DatasetPathError, match="im0001.jpg"):
        keypoint_formats.load_lsp(tmp_path, split="train")


def test_lsp_torso_is_left_shoulder_to_right_hip():
    """A person whose diagonals differ: l_shoulder (9) - r_hip (2) is a 3-4-5 triangle, r_shoulder
    (8) - l_hip (3) is 10 long, so only the thesis's pair gives 5 (the max of both gave 10)."""
    joints = np.zeros((3, 14, 2))
    joints[:, 9], joints[:, 2] = (0.0, 0.0), (3.0, 4.0)
    joints[:, 8], joints[:, 3] = (10.0, 0.0), (10.0, 10.0)
    annotated = np.ones((3, 14), bool)
    annotated[1, 9] = False  # LSP-extended: the fallback diagonal stands in
    annotated[2, [2, 3]] = False  # neither diagonal: undefined
    norm = keypoint_formats.lsp_torso(joints, annotated)
    assert norm[0] == 5.0 and norm[1] == 10.0 and np.isnan(norm[2])


def test_lsp_extended_flags_mark_annotated_joints(tmp_path):
    rng = np.random.default_rng(1)
    joints = _lsp_joints(rng, 2, 100, 80)
    flags = np.ones((2, 14))
    flags[0, [4, 11]] = 0  # LSP-extended: 0 = not annotated
    joints[0, [4, 11]] = 0.0
    raw = np.concatenate([joints, flags[..., None]], axis=-1).transpose(1, 2, 0)  # 14 x 3 x N
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": raw})
    (tmp_path / "images").mkdir()
    for i in range(2):
        _blob_image(100, 80, []).save(tmp_path / "images" / f"im{i + 1:05d}.jpg")
    data = keypoint_formats.load_lsp(tmp_path, split="train", size=32)
    assert data.sources == ("im00001.jpg", "im00002.jpg")
    np.testing.assert_array_equal(data.visible, flags == 1)
    assert not data.occluded.any()
    # The crop box only uses annotated joints.
    ann = joints[0, flags[0] == 1]
    lo, hi = ann.min(0), ann.max(0)
    expected = _crop(joints[0], (lo + hi) / 2, 1.25 * (hi - lo).max(), 32)
    np.testing.assert_allclose(data.joints[0, flags[0] == 1], expected[flags[0] == 1], atol=1e-4)
    np.testing.assert_array_equal(data.joints[0, [4, 11]], 0.0)
    with pytest.raises(SplitNotFoundError, match="LSP-extended.*'test'"):
        keypoint_formats.load_lsp(tmp_path, split="test")
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": np.zeros((2, 14, 5))})
    with pytest.raises(DataError, match=r"joints.mat: joints has shape \(2, 14, 5\)"):
        keypoint_formats.load_lsp(tmp_path)


def test_lsp_layout_constants():
    names = keypoint_formats.LSP_JOINT_NAMES
    for a, b in keypoint_formats.LSP_FLIP_PAIRS:
        assert names[a][:2] == "r_" and names[b] == "l_" + names[a][2:]
    perm = flip_permutation(keypoint_formats.LSP_FLIP_PAIRS, 14)
    limbs = {frozenset(e) for e in keypoint_formats.LSP_SKELETON}
    assert {frozenset(perm[list(e)]) for e in limbs} == limbs


# ----------------------------------------------------------------------------------------------
# 300-W


def _write_pts(path, points, n_points=None):
    lines = ["version: 1", f"n_points:  {len(points) if n_points is None else n_points}", "{"]
    lines += [f"{x:.3f} {y:.3f}" for x, y in points] + ["}"]
    path.write_text("\n".join(lines) + "\n")


def _face(rng, width, height):
    centre = np.array([width / 2, height / 2])
    return centre + rng.uniform(-0.3, 0.3, (68, 2)) * [width, height]


def test_300w_loader_matches_the_pts_files(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "lfpw").mkdir()
    faces = {}
    for stem, suffix, (w, h) in (("lfpw/image_0001", ".png", (80, 70)),
                                 ("ibug_0002", ".jpg", (64, 96))):
        points = np.round(_face(rng, w, h), 3)
        faces[stem] = points
        _write_pts(tmp_path / f"{stem}.pts", points)
        x, y = points[30] - 1  # nose tip blob, 0-based
        _blob_image(w, h, [(x, y, 0)]).save(tmp_path / f"{stem}{suffix}")
    data = keypoint_formats.load_300w(tmp_path, size=40)
    assert [s.split("/")[-1] for s in data.sources] == ["ibug_0002.pts", "image_0001.pts"]
    assert data.norm_kind == "inter_ocular" and data.metric == "nme"
    assert len(data.joint_names) == 68
    for k, stem in enumerate(("ibug_0002", "lfpw/image_0001")):
        points = faces[stem] - 1  # .pts coordinates are 1-based
        lo, hi = points.min(0), points.max(0)
        expected = _crop(points, (lo + hi) / 2, 1.25 * (hi - lo).max(), 40)
        np.testing.assert_allclose(data.joints[k], expected, atol=1e-4)
        assert data.visible[k].all()
        assert data.norm[k] == pytest.approx(np.linalg.norm(expected[36] - expected[45]), rel=1e-5)
    # PNG is lossless: the nose-tip blob lands on the moved joint.
    np.testing.assert_allclose(_centroid(data.images[1], 0), data.joints[1, 30], atol=0.2)


def test_300w_splits_are_release_subfolders(tmp_path):
    rng = np.random.default_rng(4)
    for folder in ("afw", "helen/trainset", "lfpw/trainset", "helen/testset", "lfpw/testset",
                   "ibug"):
        (tmp_path / folder).mkdir(parents=True)
        stem = tmp_path / folder / f"{folder.replace('/', '_')}_1"
        _write_pts(stem.with_suffix(".pts"), _face(rng, 40, 40))
        Image.new("RGB", (40, 40)).save(stem.with_suffix(".jpg"))

    def folders(split):
        data = keypoint_formats.load_300w(tmp_path, split=split, size=8)
        return [s.split("/")[-1].rsplit("_", 1)[0] for s in data.sources]

    assert folders("train") == ["afw", "helen_trainset", "lfpw_trainset"]
    assert folders("test") == ["helen_testset", "lfpw_testset", "ibug"]
    assert folders("common") == ["helen_testset", "lfpw_testset"]
    assert folders("challenging") == ["ibug"]
    assert len(folders("all")) == 6
    with pytest.raises(SplitNotFoundError, match="no split 'val'"):
        keypoint_formats.load_300w(tmp_path, split="val")
    (tmp_path / "ibug" / "ibug_1.pts").unlink()
    (tmp_path / "ibug" / "ibug_1.jpg").unlink()
    (tmp_path / "ibug").rmdir()
    with pytest.raises(DatasetPathError, match="ibug does not exist"):
        keypoint_formats.load_300w(tmp_path, split="test")


def test_300w_errors_name_the_file(tmp_path):
    rng = np.random.default_rng(3)
    points = _face(rng, 50, 50)
    _write_pts(tmp_path / "a.pts", points)
    with pytest.raises(DatasetPathError, match="no image next to .*a.pts"):
        keypoint_formats.load_300w(tmp_path)
    (tmp_path / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(CorruptImageError, match="a.png"):
        keypoint_formats.load_300w(tmp_path)
    _write_pts(tmp_path / "a.pts", points, n_points=70)
    with pytest.raises(DataError, match=r"a.pts, line 72: found 68 points, n_points is 70"):
        keypoint_formats.read_pts(tmp_path / "a.pts")
    _write_pts(tmp_path / "a.pts", points[:5])
    Image.new("RGB", (50, 50)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match="a.pts: 5 points, the 300-W layout has 68"):
        keypoint_formats.load_300w(tmp_path)
    (tmp_path / "a.pts").write_text("version: 1\nn_points: 2\n{\n1 2\n3 x\n}\n")
    with pytest.raises(DataError, match=r"a.pts, line 5: expected 'x y', got '3 x'"):
        keypoint_formats.read_pts(tmp_path / "a.pts")
    (tmp_path / "a.pts").write_text("version: 1\nn_points: 1\n{\n1 2\n")
    with pytest.raises(DataError, match=r"a.pts, line 4: expected '}'"):
        keypoint_formats.read_pts(tmp_path / "a.pts")
    with pytest.raises(DatasetPathError, match="nowhere"):
        keypoint_formats.load_300w(tmp_path / "nowhere")


def test_300w_layout_constants():
    names = keypoint_formats.W300_JOINT_NAMES
    assert len(names) == 68 and names[36] == "r_eye_0" and names[45] == "l_eye_3"
    assert keypoint_formats.W300_OUTER_EYE_CORNERS == (36, 45)
    perm = flip_permutation(keypoint_formats.W300_FLIP_PAIRS, 68)  # also validates the pairs
    # 29 pairs; the 10 unpaired points lie on the face's midline.
    assert len(keypoint_formats.W300_FLIP_PAIRS) == 29
    assert np.flatnonzero(perm == np.arange(68)).tolist() == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]
    for a, b in keypoint_formats.W300_FLIP_PAIRS:  # brows and eyes swap the subject's sides
        if names[a][:2] in ("r_", "l_"):
            assert {names[a][:2], names[b][:2]} == {"r_", "l_"}
