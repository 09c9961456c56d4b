"""Loaders for the real keypoint datasets (MPII, LSP / LSP-extended, 300-W) into `KeypointData`.

Every loader is eager: it decodes each image once, crops one square box per person (or face)
and resizes it to size x size uint8 RGB, moving the joints with the same map. The box is given
in joint coordinates (pixel centres at integers, as in `jaxaug.data.keypoints`) by its centre c
and side L; the crop covers [c - L/2, c + L/2] in both axes, so

    joint' = (joint - (c - L/2)) * size / L - 1/2.

Pixels of the box outside the photo are black. Resizing uses PIL's BILINEAR filter, which PIL
widens when shrinking, so downscaled crops are anti-aliased. Missing files raise
DatasetPathError, undecodable images CorruptImageError, malformed annotations DataError; each
message names the file (and sample).
"""

import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from jaxaug.data.errors import (
    CorruptImageError,
    DataError,
    DatasetPathError,
    SplitNotFoundError,
)
from jaxaug.data.keypoint_synthetic import FLIP_PAIRS as MPII_FLIP_PAIRS
from jaxaug.data.keypoint_synthetic import JOINT_NAMES as MPII_JOINT_NAMES
from jaxaug.data.keypoint_synthetic import SKELETON as MPII_SKELETON
from jaxaug.data.keypoint_synthetic import KeypointData
from jaxaug.objectives.keypoints import MPII_HEAD_SIZE_FACTOR, OUTER_EYE_CORNERS_68

__all__ = [
    "LSP_FLIP_PAIRS",
    "LSP_JOINT_NAMES",
    "LSP_SKELETON",
    "MPII_FLIP_PAIRS",
    "MPII_JOINT_NAMES",
    "MPII_SKELETON",
    "W300_FLIP_PAIRS",
    "W300_JOINT_NAMES",
    "W300_OUTER_EYE_CORNERS",
    "W300_SPLITS",
    "crop_box",
    "load_300w",
    "load_lsp",
    "load_mpii",
    "lsp_torso",
    "read_pts",
]  # fmt: skip

LSP_JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
    "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top",
)  # fmt: skip
LSP_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9))
LSP_SKELETON = (
    (0, 1), (1, 2), (2, 8), (3, 9), (3, 4), (4, 5), (2, 3), (8, 9),
    (6, 7), (7, 8), (9, 10), (10, 11), (8, 12), (9, 12), (12, 13),
)  # fmt: skip


def _w300_names():
    # The iBUG 68-point markup, 0-based; "r_"/"l_" are the subject's sides (for a frontal
    # face the subject's right eye, 36-41, is on the image's left).
    groups = (("jaw", 17), ("r_brow", 5), ("l_brow", 5), ("nose_bridge", 4), ("nose_base", 5),
              ("r_eye", 6), ("l_eye", 6), ("mouth_outer", 12), ("mouth_inner", 8))
    return tuple(f"{name}_{i}" for name, count in groups for i in range(count))


W300_JOINT_NAMES = _w300_names()
W300_FLIP_PAIRS = (
    tuple((i, 16 - i) for i in range(8))  # jaw
    + tuple((17 + i, 26 - i) for i in range(5))  # eyebrows
    + ((31, 35), (32, 34))  # nostrils
    + ((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46))  # eyes
    + ((48, 54), (49, 53), (50, 52), (55, 59), (56, 58))  # outer lips
    + ((60, 64), (61, 63), (65, 67))  # inner lips
)
W300_OUTER_EYE_CORNERS = OUTER_EYE_CORNERS_68


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _open_image(path):
    path = Path(path)
    if not path.is_file():
        raise DatasetPathError(f"image file {path} does not exist")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"cannot decode image {path}: {exc}") from exc


def crop_box(image, centre, side, size):
    """Crop the square of side `side` centred on `centre` (x, y) (joint coordinates) from the PIL
    `image` and resize it to size x size: uint8 [size, size, 3]. Outside the photo is black."""
    # PIL coordinates put pixel centres at +1/2, so the box's PIL edges are c + 1/2 -+ L/2.
    x0, y0 = centre[0] + 0.5 - side / 2, centre[1] + 0.5 - side / 2
    ix0, iy0 = math.floor(x0), math.floor(y0)
    ix1, iy1 = math.ceil(x0 + side), math.ceil(y0 + side)
    # crop() pads with zeros outside the image; resize(box=...) then takes the exact float box.
    region = image.crop((ix0, iy0, ix1, iy1))
    box = (x0 - ix0, y0 - iy0, x0 - ix0 + side, y0 - iy0 + side)
    return np.asarray(region.resize((size, size), Image.BILINEAR, box=box), np.uint8)


def _to_crop(joints, centre, side, size):
    return (np.asarray(joints, np.float64) - (np.asarray(centre) - side / 2)) * (size / side) - 0.5


def _on_image(joints, size):
    return np.all((joints >= -0.5) & (joints < size - 0.5), axis=-1)


def _check_size(loader, size):
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{loader}: size must be a positive int, got {size!r}")


def _pack(images, joints, visible, norm, norm_kind, names, flips, skeleton, occluded, sources,
          size):
    n = len(images)
    return KeypointData(
        images=np.stack(images) if n else np.zeros((0, size, size, 3), np.uint8),
        joints=np.asarray(joints, np.float32).reshape(n, len(names), 2),
        visible=np.asarray(visible, bool).reshape(n, len(names)),
        norm=np.asarray(norm, np.float32).reshape(n),
        norm_kind=norm_kind, joint_names=names, flip_pairs=flips, skeleton=skeleton,
        occluded=None if occluded is None else np.asarray(occluded, bool).reshape(n, len(names)),
        sources=tuple(sources))


def _loadmat(path, what):
    import scipy.io  # deferred: only these loaders need scipy

    path = Path(path)
    if not path.is_file():
        raise DatasetPathError(f"{what} file {path} does not exist")
    try:
        return scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, ... on bad files
        raise DataError(f"cannot read {what} file {path}: {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# MPII


def _items(value):
    """A MATLAB struct array read with squeeze_me=True as a list: one struct is squeezed to a
    scalar, an empty field to an empty array."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _number(value, what):
    array = np.asarray(value, dtype=object).ravel()
    if array.size != 1:
        raise DataError(f"{what}: expected one number, got {array.size} values")
    try:
        return float(array[0])
    except (TypeError, ValueError):
        raise DataError(f"{what}: expected a number, got {array[0]!r}") from None


def _mpii_visible_flag(value, what):
    """is_visible is a number, a '0'/'1' string or empty (unknown, mostly head joints) in the
    release; returns 0, 1 or None."""
    if isinstance(value, str):
        value = value.strip()
        if value not in ("0", "1"):
            raise DataError(f"{what}: is_visible must be 0 or 1, got {value!r}")
        return int(value)
    if isinstance(value, np.ndarray) and value.size == 0:
        return None
    flag = _number(value, what)
    if flag not in (0.0, 1.0):
        raise DataError(f"{what}: is_visible must be 0 or 1, got {flag}")
    return int(flag)


def _field(struct, name, what):
    value = getattr(struct, name, None)
    if value is None or (isinstance(value, np.ndarray) and value.size == 0):
        raise DataError(f"{what}: missing field {name!r}")
    return value


def _mpii_people(release, path):
    """(image name, person index, joints [16, 2], annotated [16], occluded [16], objpos (x, y),
    scale, head box (x1, y1, x2, y2)) for every annotated person of a training image, in file
    coordinates."""
    annolist = _items(_field(release, "annolist", f"{path}: RELEASE"))
    img_train = np.asarray(_field(release, "img_train", f"{path}: RELEASE")).ravel()
    if len(img_train) != len(annolist):
        raise DataError(f"{path}: RELEASE.img_train has {len(img_train)} entries for "
                        f"{len(annolist)} annolist entries")
    for i, (anno, train) in enumerate(zip(annolist, img_train)):
        if not train:
            continue  # test images: their joints are withheld by the benchmark
        name = _field(_field(anno, "image", f"{path}: annolist({i + 1})"), "name",
                      f"{path}: annolist({i + 1}).image")
        rects = getattr(anno, "annorect", None)
        rects = [] if rects is None else _items(rects)
        for p, rect in enumerate(rects):
            what = f"{path}: annolist({i + 1}) ({name}) annorect({p + 1})"
            annopoints = getattr(rect, "annopoints", None)
            if annopoints is None or (isinstance(annopoints, np.ndarray) and annopoints.size == 0):
                continue  # a person without joint annotations (the field is absent or [])
            if isinstance(annopoints, np.ndarray):
                raise DataError(f"{what}: annopoints must be one struct, got {annopoints.size}")
            joints = np.zeros((16, 2))
            annotated = np.zeros(16, bool)
            occluded = np.zeros(16, bool)
            for point in _items(_field(annopoints, "point", what + ".annopoints")):
                joint = int(_number(_field(point, "id", what + " point"), what + " point id"))
                if not 0 <= joint < 16:
                    raise DataError(f"{what}: joint id {joint} outside MPII's 0..15")
                joints[joint] = (_number(_field(point, "x", what), f"{what} joint {joint} x"),
                                 _number(_field(point, "y", what), f"{what} joint {joint} y"))
                annotated[joint] = True
                flag = _mpii_visible_flag(getattr(point, "is_visible", np.zeros(0)),
                                          f"{what} joint {joint}")
                occluded[joint] = flag == 0
            try:
                objpos = _field(rect, "objpos", what)
                centre = (_number(_field(objpos, "x", what + ".objpos"), what + ".objpos.x"),
                          _number(_field(objpos, "y", what + ".objpos"), what + ".objpos.y"))
                scale = _number(_field(rect, "scale", what), what + ".scale")
                box = tuple(_number(_field(rect, k, what), f"{what}.{k}")
                            for k in ("x1", "y1", "x2", "y2"))
            except DataError as exc:
                yield exc  # the caller raises or skips, as asked
                continue
            yield str(name), p, joints, annotated, occluded, centre, scale, box


def load_mpii(annotation_file, image_dir=None, *, split="all", size=64, holdout=None,
              limit=None, one_based=True, box_factor=1.25, centre_shift=15.0,
              incomplete="raise"):
    """Annotated people of MPII Human Pose's training images, cropped to size x size.

    annotation_file: the release's `mpii_human_pose_v1_u12_1.mat`; image_dir: the release's
    `images/` folder (default: `images/` beside annotation_file).
    Splits: MPII publishes joints for its training images only, so "all" and "train" are every
    annotated person of them. A held-out set needs `holdout`, a collection of image names (e.g.
    the validation images of Tompson et al.): "train" then leaves those images out and "test" is
    exactly them; "test" without `holdout` raises SplitNotFoundError.
    Reads RELEASE.annolist(i).image.name, annorect(p).{x1, y1, x2, y2 (head box), scale, objpos,
    annopoints.point(k).{id, x, y, is_visible}} and RELEASE.img_train. Only training images
    (img_train = 1) carry joints, and only people with annopoints are loaded. MPII joint ids
    0..15 are `MPII_JOINT_NAMES` order. Coordinates are 1-based in the file; `one_based`
    subtracts 1.

    Crop (the stacked-hourglass convention): centre = objpos moved down by centre_shift * scale
    pixels, side = 200 * scale * box_factor. visible = annotated and inside the crop; occluded =
    is_visible == 0 (an empty is_visible, as for many head joints, counts as not occluded);
    norm = head_size = 0.6 * head-box diagonal * size / side. `limit` caps the number of people.
    A person with joints but without objpos, scale or head box raises DataError naming it
    (incomplete="raise"), or is left out with one warning giving the count (incomplete="skip").
    Returns KeypointData with sources "<image name>#<person index>".
    """
    _check_size("load_mpii", size)
    if split not in ("all", "train", "test"):
        raise SplitNotFoundError(f"load_mpii: no split {split!r}; available: "
                                 "['all', 'test' (needs holdout), 'train']")
    if split == "test" and holdout is None:
        raise SplitNotFoundError(
            f"load_mpii: MPII's test joints are not public, so split='test' of {annotation_file} "
            "needs holdout=<image names to hold out> (e.g. Tompson et al.'s validation images)")
    holdout = frozenset() if holdout is None else frozenset(map(str, holdout))
    image_dir = Path(annotation_file).parent / "images" if image_dir is None else Path(image_dir)
    if incomplete not in ("raise", "skip"):
        raise ValueError(f"load_mpii: incomplete must be 'raise' or 'skip', got {incomplete!r}")
    mat = _loadmat(annotation_file, "MPII annotation")
    if "RELEASE" not in mat:
        raise DataError(f"MPII annotation file {annotation_file} has no RELEASE struct "
                        f"(variables: {sorted(k for k in mat if not k.startswith('__'))})")
    offset = 1.0 if one_based else 0.0
    out = {k: [] for k in ("images", "joints", "visible", "norm", "occluded", "sources")}
    cache = (None, None)  # consecutive people share their image: decode it once
    skipped = []
    for person in _mpii_people(mat["RELEASE"], annotation_file):
        if limit is not None and len(out["images"]) >= limit:
            break
        if isinstance(person, DataError):
            if incomplete == "raise":
                raise person
            skipped.append(str(person))
            continue
        name, p, joints, annotated, occluded, centre, scale, box = person
        if split != "all" and (name in holdout) != (split == "test"):
            continue
        if cache[0] != name:
            cache = (name, _open_image(image_dir / name))
        side = 200.0 * scale * box_factor
        if not side > 0:
            raise DataError(f"{annotation_file}: {name} person {p + 1} has scale {scale}")
        c = np.array([centre[0] - offset, centre[1] - offset + centre_shift * scale])
        crop_joints = _to_crop(joints - offset, c, side, size)
        out["images"].append(crop_box(cache[1], c, side, size))
        out["joints"].append(np.where(annotated[:, None], crop_joints, 0.0))
        out["visible"].append(annotated & _on_image(crop_joints, size))
        diagonal = math.hypot(box[2] - box[0], box[3] - box[1])
        out["norm"].append(MPII_HEAD_SIZE_FACTOR * diagonal * size / side)
        out["occluded"].append(occluded & annotated)
        out["sources"].append(f"{name}#{p}")
    if skipped:
        warnings.warn(f"load_mpii: left out {len(skipped)} incomplete annotated people, "
                      f"the first: {skipped[0]}", stacklevel=2)
    return _pack(out["images"], out["joints"], out["visible"], out["norm"], "head_size",
                 MPII_JOINT_NAMES, MPII_FLIP_PAIRS, MPII_SKELETON, out["occluded"],
                 out["sources"], size)


# ---------------------------------------------------------------------------------------------
# LSP and LSP-extended


def lsp_torso(joints, annotated):
    """LSP's PCK@0.2 normaliser per person: the distance |l_shoulder - r_hip| (joints 9 and 2),
    as the CU-Net thesis states it (Tang thesis, sec. 5.4: "20% of the L2 distance between the
    left shoulder and right hip"). joints [N, 14, 2], annotated [N, 14] bool.

    Where that pair is not annotated (LSP-extended only; LSP annotates every joint, so its test
    split never gets here), the other diagonal |r_shoulder - l_hip| stands in (our fallback);
    NaN where neither is annotated, which scores every joint of that person as missed."""
    joints = np.asarray(joints, np.float64)
    result = np.full(len(joints), np.nan)
    for a, b in ((8, 3), (9, 2)):  # the fallback first, so the thesis's pair overrides it
        ok = annotated[:, a] & annotated[:, b]
        result = np.where(ok, np.linalg.norm(joints[:, a] - joints[:, b], axis=-1), result)
    return result


def load_lsp(root, *, split="all", size=64, box_factor=1.25):
    """Leeds Sports Pose (`root`/joints.mat, `root`/images/im0001.jpg ...) or LSP-extended
    (im00001.jpg ...), told apart by the shape of `joints`.

    LSP: joints is 3 x 14 x 2000 (x, y, flag); every joint is annotated and flag = 1 marks it
    occluded (0 visible). Splits: "train" = images 1-1000, "test" = 1001-2000, "all".
    LSP-extended: joints is 14 x 3 x 10000; flag = 1 marks an annotated joint, 0 an unannotated
    one. Splits: "train" = "all".
    Coordinates are used as stored (LSP has no stated origin convention). Crop: the square around
    the annotated joints' bounding box, centred on it, side = box_factor * its longer side.
    visible = annotated and inside the crop; norm = `lsp_torso`, in crop pixels.
    """
    _check_size("load_lsp", size)
    root = Path(root)
    path = root / "joints.mat"
    mat = _loadmat(path, "LSP annotation")
    if "joints" not in mat:
        raise DataError(f"LSP annotation file {path} has no 'joints' variable")
    raw = np.asarray(mat["joints"], np.float64)
    if raw.ndim == 2:  # squeeze_me drops N = 1
        raw = raw[..., None]
    if raw.ndim == 3 and raw.shape[:2] == (3, 14):
        extended, data = False, raw.transpose(2, 1, 0)  # -> [N, 14, 3]
        splits = {"train": range(min(1000, len(data))), "test": range(1000, len(data))}
    elif raw.ndim == 3 and raw.shape[:2] == (14, 3):
        extended, data = True, raw.transpose(2, 0, 1)
        splits = {"train": range(len(data))}
    else:
        raise DataError(f"LSP annotation file {path}: joints has shape {raw.shape}, expected "
                        f"3 x 14 x N (LSP) or 14 x 3 x N (LSP-extended)")
    splits["all"] = range(len(data))
    if split not in splits:
        raise SplitNotFoundError(f"{'LSP-extended' if extended else 'LSP'} at {root} has no split "
                                 f"{split!r}; available: {sorted(splits)}")
    flags = data[..., 2]
    if not np.isin(flags, (0.0, 1.0)).all():
        raise DataError(f"LSP annotation file {path}: visibility flags must be 0 or 1")
    annotated = flags == 1 if extended else np.ones(flags.shape, bool)
    occluded = np.zeros(flags.shape, bool) if extended else flags == 1
    pattern = "im{:05d}.jpg" if extended else "im{:04d}.jpg"
    out = {k: [] for k in ("images", "joints", "visible", "occluded", "sources")}
    crops = []
    for i in splits[split]:
        joints, ann = data[i, :, :2], annotated[i]
        if not ann.any():
            raise DataError(f"{path}: image {i + 1} has no annotated joint to crop around")
        lo, hi = joints[ann].min(axis=0), joints[ann].max(axis=0)
        side = box_factor * max(float((hi - lo).max()), 1.0)
        centre = (lo + hi) / 2
        name = pattern.format(i + 1)
        image = _open_image(root / "images" / name)
        crop_joints = _to_crop(joints, centre, side, size)
        out["images"].append(crop_box(image, centre, side, size))
        out["joints"].append(np.where(ann[:, None], crop_joints, 0.0))
        out["visible"].append(ann & _on_image(crop_joints, size))
        out["occluded"].append(occluded[i])
        out["sources"].append(name)
        crops.append((crop_joints, ann))
    joints = np.array([c[0] for c in crops]).reshape(-1, 14, 2)
    norm = lsp_torso(joints, np.array([c[1] for c in crops], bool).reshape(-1, 14))
    return _pack(out["images"], out["joints"], out["visible"], norm, "torso", LSP_JOINT_NAMES,
                 LSP_FLIP_PAIRS, LSP_SKELETON, out["occluded"], out["sources"], size)


# ---------------------------------------------------------------------------------------------
# 300-W


def read_pts(path):
    """Points [n, 2] of a .pts file: `version: 1`, `n_points: n`, `{`, n lines `x y`, `}`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetPathError(f"landmark file {path} does not exist")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read landmark file {path}: {exc}") from exc
    lines = [(k + 1, line.strip()) for k, line in enumerate(lines) if line.strip()]

    def fail(lineno, message):
        raise DataError(f"{path}, line {lineno}: {message}")

    header = {}
    while lines and lines[0][1] != "{":
        lineno, text = lines.pop(0)
        key, sep, value = text.partition(":")
        if not sep:
            fail(lineno, f"expected 'key: value' or '{{', got {text!r}")
        header[key.strip()] = value.strip()
    if "n_points" not in header:
        fail(lines[0][0] if lines else 0, "missing 'n_points' header")
    try:
        n = int(header["n_points"])
    except ValueError:
        fail(0, f"n_points must be an int, got {header['n_points']!r}")
    if not lines:
        fail(0, "missing '{'")
    lines.pop(0)
    points = []
    for lineno, text in lines[:n]:
        if text == "}":
            fail(lineno, f"found {len(points)} points, n_points is {n}")
        parts = text.split()
        try:
            if len(parts) != 2:
                raise ValueError
            points.append((float(parts[0]), float(parts[1])))
        except ValueError:
            fail(lineno, f"expected 'x y', got {text!r}")
    if len(points) != n:
        fail(lines[-1][0] if lines else 0, f"found {len(points)} points, n_points is {n}")
    if len(lines) <= n or lines[n][1] != "}":
        fail(lines[n][0] if len(lines) > n else (lines[-1][0] if lines else 0),
             "expected '}' after the points")
    return np.array(points, np.float64).reshape(n, 2)


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _image_for(pts):
    found = [pts.with_suffix(s) for s in _IMAGE_SUFFIXES if pts.with_suffix(s).is_file()]
    if not found:
        raise DatasetPathError(f"no image next to {pts} (looked for "
                               f"{', '.join(pts.with_suffix(s).name for s in _IMAGE_SUFFIXES)})")
    if len(found) > 1:
        raise DataError(f"several images match {pts}: {[p.name for p in found]}")
    return found[0]


#: The usual 300-W protocol as sub-folders of the release: training images, the full test set and
#: its common (LFPW + HELEN test) and challenging (iBUG) subsets.
W300_SPLITS = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "test": ("helen/testset", "lfpw/testset", "ibug"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenging": ("ibug",),
}


def load_300w(roots, *, split="all", size=64, box_factor=1.25, one_based=True):
    """300-W faces: every `*.pts` (recursive, sorted) under the folder(s) `roots` (split="all") or
    under the sub-folders W300_SPLITS[split] of the release folder `roots`, each with its image of
    the same stem (.png, .jpg or .jpeg) beside it.

    68 points in the iBUG layout (W300_JOINT_NAMES, W300_FLIP_PAIRS). The .pts coordinates are
    1-based; `one_based` subtracts 1. Crop: the square around the landmarks' bounding box, centred
    on it, side = box_factor * its longer side. All points are annotated, so visible = inside the
    crop; norm = inter-ocular distance |p36 - p45| in crop pixels (the NME normaliser).
    """
    _check_size("load_300w", size)
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    if split != "all":
        if split not in W300_SPLITS:
            raise SplitNotFoundError(f"load_300w: no split {split!r}; available: "
                                     f"{sorted(['all', *W300_SPLITS])}")
        if len(roots) != 1:
            raise ValueError(f"load_300w: split={split!r} needs the one release folder, "
                             f"got {len(roots)} folders")
        roots = [Path(roots[0]) / sub for sub in W300_SPLITS[split]]
    files = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise DatasetPathError(f"300-W folder {root} does not exist")
        found = sorted(root.rglob("*.pts"))
        if not found:
            raise DatasetPathError(f"no .pts files under {root}")
        files += found
    offset = 1.0 if one_based else 0.0
    out = {k: [] for k in ("images", "joints", "visible", "norm", "sources")}
    left, right = W300_OUTER_EYE_CORNERS
    for pts in files:
        points = read_pts(pts) - offset
        if len(points) != 68:
            raise DataError(f"{pts}: {len(points)} points, the 300-W layout has 68")
        lo, hi = points.min(axis=0), points.max(axis=0)
        side = box_factor * max(float((hi - lo).max()), 1.0)
        centre = (lo + hi) / 2
        image = _open_image(_image_for(pts))
        crop_joints = _to_crop(points, centre, side, size)
        out["images"].append(crop_box(image, centre, side, size))
        out["joints"].append(crop_joints)
        out["visible"].append(_on_image(crop_joints, size))
        out["norm"].append(np.linalg.norm(crop_joints[left] - crop_joints[right]))
        out["sources"].append(str(pts))
    return _pack(out["images"], out["joints"], out["visible"], out["norm"], "inter_ocular",
                 W300_JOINT_NAMES, W300_FLIP_PAIRS, (), None, out["sources"], size)
