"""A procedurally generated articulated-figure keypoint dataset (MPII 16-joint layout), no download.

Each image shows one stick figure facing the viewer over a textured, noisy background. The
skeleton is built joint by joint from a random body unit u (torso length in pixels), torso lean,
head tilt and limb angles within plausible ranges; the figure's right limbs hang from the
right hip/shoulder, which sits on the image's left. Limbs are capsules (thick segments), the head
a disc centred between the upper neck and the head top, reaching 1.25 px beyond both. The torso
(spine, neck, head, hip and shoulder bars) has one colour and each side's limbs another, all three
distinct and brighter than the background, so crossing limbs can be told apart.

Flip consistency: every random choice is mirror-symmetric in distribution (lean, tilt, limb
angles per side, which of the two limb colours goes to which side, which side is drawn on top,
texture direction), so a horizontally flipped image with left/right labels swapped
(`FLIP_PAIRS`) is itself a typical sample, as for real people; left and right are
told apart by where a limb attaches, as on a real body, and not by a fixed colour.

Rasterisation is vectorised numpy: coverage of a capsule of radius r at a pixel centre at distance d
from its segment is clip(r + 1/2 - d, 0, 1) (a one-pixel anti-aliased edge). Joints use the
`jaxaug.data.keypoints` convention (pixel centres at integers); a joint is visible when it lies
on the image. Sample i of a split depends only on (seed, split, i): every image has its own
numpy Generator, so `load(num=10)` is the prefix of `load(num=1000)`.
"""

import dataclasses
import math

import numpy as np

JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow",
    "l_wrist",
)  # fmt: skip
FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
SKELETON = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15),
)  # fmt: skip
SPLIT_IDS = {"train": 0, "test": 1}
SPLIT_SIZES = {"train": 5000, "test": 1000}
#: Head size factor of PCKh (MPII): 0.6 times the head box diagonal.
HEAD_SIZE_FACTOR = 0.6

# Layers: the torso (drawn first), then the two limb chains in a per-image random order.
_TORSO = ((2, 6), (6, 3), (6, 7), (7, 8), (12, 7), (7, 13))
_RIGHT = ((0, 1), (1, 2), (10, 11), (11, 12))
_LEFT = ((3, 4), (4, 5), (13, 14), (14, 15))
_NOISE = 0.02  # std of the final pixel noise, in [0, 1] units
_NUM_UNIFORMS = 32


@dataclasses.dataclass(frozen=True)
class KeypointData:
    """Keypoint samples: what `load` and the `keypoint_formats` loaders return.

    images: uint8 [N, S, S, 3]. joints: float32 [N, J, 2], (x, y) pixels, centres at integers.
    visible: bool [N, J], the joint is annotated and lies on the image (heatmap losses and PCK
      use exactly these; the coordinates of other joints are meaningless).
    norm: float32 [N], the layout's PCK normaliser in pixels of `images`, named by norm_kind:
      "head_size" (MPII, synthetic: 0.6 x head box diagonal), "torso" (LSP) or "inter_ocular"
      (300-W).
    occluded: bool [N, J] where the annotation marks joints as hidden but annotated, else None.
    sources: one string per sample naming where it came from (file, person), or None.
    """

    images: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    norm: np.ndarray
    norm_kind: str
    joint_names: tuple
    flip_pairs: tuple
    skeleton: tuple = ()
    occluded: np.ndarray | None = None
    sources: tuple | None = None

    def __post_init__(self):
        n, j = len(self.images), len(self.joint_names)
        checks = {"images": (self.images, (n,), 4), "joints": (self.joints, (n, j, 2), 3),
                  "visible": (self.visible, (n, j), 2), "norm": (self.norm, (n,), 1)}
        if self.occluded is not None:
            checks["occluded"] = (self.occluded, (n, j), 2)
        for name, (array, lead, ndim) in checks.items():
            shape = np.shape(array)
            if len(shape) != ndim or shape[:len(lead)] != lead:
                raise ValueError(f"KeypointData: {name} has shape {shape}, expected "
                                 f"{ndim} axes starting with {lead} (N={n}, J={j})")
        if self.sources is not None and len(self.sources) != n:
            raise ValueError(f"KeypointData: {len(self.sources)} sources for {n} samples")

    def __len__(self):
        return len(self.images)

    @property
    def metric(self):
        """The layout's usual score: "pckh" (head size), "pck" (torso) or "nme" (inter-ocular)."""
        metrics = {"head_size": "pckh", "torso": "pck", "inter_ocular": "nme"}
        if self.norm_kind not in metrics:
            raise ValueError(f"KeypointData: unknown norm_kind {self.norm_kind!r}, expected one "
                             f"of {sorted(metrics)}")
        return metrics[self.norm_kind]

    @property
    def metric_joints(self):
        """The joints the reported score pools: MPII's PCKh "Mean" leaves out pelvis and thorax
        (`jaxaug.objectives.MPII_PCKH_JOINTS`), so head-size layouts (MPII and the synthetic
        figures, which share MPII's 16 joints and are scored the same way) drop the joints
        named so; LSP's PCK and 300-W's NME use every joint."""
        skip = ("pelvis", "thorax") if self.norm_kind == "head_size" else ()
        return tuple(j for j, name in enumerate(self.joint_names) if name not in skip)

    @property
    def head_size(self):
        """The PCKh normaliser; only defined for head-size normalised layouts."""
        if self.norm_kind != "head_size":
            raise ValueError(
                f"KeypointData: no head size, this layout's norm is {self.norm_kind!r}")
        return self.norm


def _direction(angle):
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _pose(u):
    """Joints [N, 16, 2] (before placement), head radius [N] and limb thickness [N] from the
    uniforms u [N, K] (columns are documented inline)."""
    deg = np.pi / 180
    unit = u[:, 0:1]  # body unit in pixels, set by the caller
    lean = (u[:, 1] - 0.5) * 50 * deg  # torso lean, +-25 degrees from vertical
    tilt = lean + (u[:, 2] - 0.5) * 40 * deg
    # Image y points down: "up" at lean 0 is (0, -1); "side" points to the image's right.
    up = np.stack([np.sin(lean), -np.cos(lean)], axis=-1)
    side = np.stack([np.cos(lean), np.sin(lean)], axis=-1)

    def limb(angle):  # angle 0 hangs straight down the torso axis, > 0 turns to the image right
        return np.cos(angle)[:, None] * -up + np.sin(angle)[:, None] * side

    j = np.zeros((u.shape[0], 16, 2))
    j[:, 6] = 0.0
    j[:, 7] = unit * up
    head_dir = np.stack([np.sin(tilt), -np.cos(tilt)], axis=-1)
    j[:, 8] = j[:, 7] + 0.3 * unit * head_dir
    j[:, 9] = j[:, 8] + 0.45 * unit * head_dir
    j[:, 2], j[:, 3] = -0.22 * unit * side, 0.22 * unit * side
    j[:, 12], j[:, 13] = j[:, 7] - 0.38 * unit * side, j[:, 7] + 0.38 * unit * side
    # Per side s (-1: right, on the image's left; +1: left), outward angles are s * positive.
    for s, (hip, knee, ankle, sh, elbow, wrist), c in (
        (-1.0, (2, 1, 0, 12, 11, 10), 3), (1.0, (3, 4, 5, 13, 14, 15), 9)):
        thigh = s * (u[:, c] * 65 - 15) * deg  # -15..50 degrees of abduction
        shin = thigh + s * (u[:, c + 1] - 0.5) * 120 * deg  # knee bend +-60
        upper_arm = s * (u[:, c + 2] * 180 - 20) * deg  # hanging (-20) to overhead (160)
        forearm = upper_arm + s * (u[:, c + 3] - 0.5) * 240 * deg  # elbow bend +-120
        j[:, knee] = j[:, hip] + 0.85 * unit * limb(thigh)
        j[:, ankle] = j[:, knee] + 0.8 * unit * limb(shin)
        j[:, elbow] = j[:, sh] + 0.6 * unit * limb(upper_arm)
        j[:, wrist] = j[:, elbow] + 0.55 * unit * limb(forearm)
    return j


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB, all in [0, 1]; returns [..., 3]."""
    k = (np.stack([5.0, 3.0, 1.0], axis=-1) + h[..., None] * 6) % 6
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def _capsule(px, py, a, b, radius):
    """Coverage [N, S, S] of capsules from a [N, 2] to b [N, 2] with radius [N]."""
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    dx, dy = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    qx, qy = px - ax, py - ay
    t = np.clip((qx * dx + qy * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    dist = np.hypot(qx - t * dx, qy - t * dy)
    return np.clip(radius[:, None, None] + 0.5 - dist, 0.0, 1.0)


def _layer(px, py, joints, segments, radius):
    cov = np.zeros((len(joints),) + px.shape[1:], np.float32)
    for a, b in segments:
        cov = np.maximum(cov, _capsule(px, py, joints[:, a], joints[:, b], radius))
    return cov


def _render(size, u, noise):
    """Images and annotations from per-image uniforms u [N, K] and pixel noise [N, S, S, 3].

    Returns (images uint8, joints float32, visible, head_size float32, extras) where extras holds
    the float colours and per-layer coverages (for tests)."""
    u = u.copy()
    u[:, 0] = size * (0.14 + 0.1 * u[:, 0])  # body unit: figure height ~3u = 0.42..0.72 size
    joints = _pose(u)
    # Centre the figure's bounding box, with a jitter of +-10% of the image.
    lo, hi = joints.min(axis=1), joints.max(axis=1)
    centre = (size - 1) / 2 + (u[:, 14:16] - 0.5) * 0.2 * size
    joints = joints + (centre - (lo + hi) / 2)[:, None, :]
    thickness = np.maximum(u[:, 0] * (0.27 + 0.13 * u[:, 16]), 2.5)
    # A joint's nearest pixel centre is <= 0.71 px away, so it is fully covered (coverage
    # r + 1/2 - d >= 1) by limbs of radius >= 1.25 and by a head disc reaching 1.25 px beyond the
    # upper neck and the head top.
    head_radius = 0.5 * np.linalg.norm(joints[:, 9] - joints[:, 8], axis=-1) + 1.25
    # Rasterise in float32 (half the memory traffic of float64); annotations come from the
    # same float32 values, so drawing and labels agree.
    joints, thickness = joints.astype(np.float32), thickness.astype(np.float32)
    head_radius = head_radius.astype(np.float32)

    # Colours: background darker (value <= 0.45) than the figure (value >= 0.7); the two limb
    # hues are at least a quarter turn apart; the torso is pale.
    bg = _hsv_to_rgb(u[:, 17], 0.2 + 0.6 * u[:, 18], 0.05 + 0.4 * u[:, 19])
    hue_a = u[:, 20]
    hue_b = (hue_a + 0.25 + 0.5 * u[:, 21]) % 1.0
    swap = u[:, 22] < 0.5
    hue_r, hue_l = np.where(swap, hue_b, hue_a), np.where(swap, hue_a, hue_b)
    sat, val = 0.75 + 0.25 * u[:, 23], 0.8 + 0.2 * u[:, 24]
    c_right, c_left = _hsv_to_rgb(hue_r, sat, val), _hsv_to_rgb(hue_l, sat, val)
    c_torso = _hsv_to_rgb(u[:, 25], 0.1 + 0.2 * u[:, 26], 0.75 + 0.2 * u[:, 27])

    grid = np.arange(size, dtype=np.float32)
    px, py = grid[None, None, :], grid[None, :, None]
    # Background texture: 0 flat, 1 linear gradient, 2 stripes, at a random direction.
    angle = (2 * np.pi * u[:, 28]).astype(np.float32)
    proj = ((px - size / 2) * np.cos(angle)[:, None, None]
            + (py - size / 2) * np.sin(angle)[:, None, None]) / np.float32(size)
    kind = np.floor(u[:, 29] * 3).astype(int)[:, None, None]
    frequency = (3 + 5 * u[:, 30]).astype(np.float32)[:, None, None]  # 3..8 periods per image
    stripes = np.sin(np.float32(2 * np.pi) * frequency * proj)
    texture = np.where(kind == 0, 0.0, np.where(kind == 1, 2 * proj, stripes)).astype(np.float32)
    amplitude = (0.08 + 0.07 * u[:, 31]).astype(np.float32)[:, None, None, None]
    image = bg.astype(np.float32)[:, None, None, :] + amplitude * texture[..., None]

    cov_torso = _layer(px, py, joints, _TORSO, 0.8 * thickness)
    d_head = np.hypot(px - ((joints[:, 8, 0] + joints[:, 9, 0]) / 2)[:, None, None],
                      py - ((joints[:, 8, 1] + joints[:, 9, 1]) / 2)[:, None, None])
    cov_torso = np.maximum(cov_torso, np.clip(head_radius[:, None, None] + 0.5 - d_head, 0, 1))
    cov_right = _layer(px, py, joints, _RIGHT, thickness / 2)
    cov_left = _layer(px, py, joints, _LEFT, thickness / 2)
    right_on_top = u[:, 13] < 0.5
    top = right_on_top[:, None, None]
    cov_under, cov_top = np.where(top, cov_left, cov_right), np.where(top, cov_right, cov_left)
    c_under = np.where(right_on_top[:, None], c_left, c_right).astype(np.float32)
    c_top = np.where(right_on_top[:, None], c_right, c_left).astype(np.float32)

    def over(img, colour, cov):
        return img + cov[..., None] * (colour[:, None, None, :] - img)

    image = over(image.astype(np.float32), c_torso.astype(np.float32), cov_torso)
    image = over(over(image, c_under, cov_under), c_top, cov_top)
    image = np.clip(image + noise, 0.0, 1.0)
    images = np.round(image * 255).astype(np.uint8)

    inside = (joints >= -0.5) & (joints < size - 0.5)
    visible = inside.all(axis=-1)
    head_size = HEAD_SIZE_FACTOR * 2 * math.sqrt(2) * head_radius  # box = disc's bounding square
    extras = {"torso": c_torso, "right": c_right, "left": c_left, "background": bg,
              "cov_torso": cov_torso, "cov_right": cov_right, "cov_left": cov_left,
              "right_on_top": right_on_top}
    return images, joints, visible, head_size.astype(np.float32), extras


def _draws(split, num, size, seed):
    if split not in SPLIT_IDS:
        raise ValueError(f"keypoint_synthetic: unknown split {split!r}, expected one of "
                         f"{sorted(SPLIT_IDS)}")
    if isinstance(num, bool) or not isinstance(num, int) or num < 0:
        raise ValueError(f"keypoint_synthetic: num must be a non-negative int, got {num!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"keypoint_synthetic: size must be an int >= 8, got {size!r}")
    u = np.empty((num, _NUM_UNIFORMS))
    noise = np.empty((num, size, size, 3), np.float32)
    for i in range(num):
        rng = np.random.default_rng([seed, SPLIT_IDS[split], i])
        u[i] = rng.random(_NUM_UNIFORMS)
        noise[i] = rng.normal(0.0, _NOISE, (size, size, 3))
    return u, noise


def load(split="train", num=None, size=64, seed=0, *, chunk=256):
    """`num` samples (default SPLIT_SIZES[split]) of `split` at size x size pixels.

    Returns KeypointData with images uint8 [N, size, size, 3], joints float32 [N, 16, 2],
    visible bool [N, 16] (joints off the image are invisible), norm = head_size float32 [N]
    (0.6 x the diagonal of the head disc's bounding square), JOINT_NAMES, FLIP_PAIRS, SKELETON.
    Deterministic in (seed, split, index); drawn in chunks of `chunk` images to bound memory.
    """
    num = SPLIT_SIZES.get(split, 0) if num is None else num
    u, noise = _draws(split, num, size, seed)
    parts = [_render(size, u[s:s + chunk], noise[s:s + chunk])[:4]
             for s in range(0, num, chunk)] or [_render(size, u, noise)[:4]]
    images, joints, visible, head_size = (np.concatenate(p) for p in zip(*parts))
    return KeypointData(images=images, joints=joints, visible=visible, norm=head_size,
                        norm_kind="head_size", joint_names=JOINT_NAMES, flip_pairs=FLIP_PAIRS,
                        skeleton=SKELETON)
