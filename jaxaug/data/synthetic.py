"""`synthetic`: a procedurally generated 10-class image dataset that needs no download.

Each image shows one shape (the class) at a random position, scale and rotation, in a random
foreground colour over a random, darker background colour; foreground and background each carry a random
texture (flat, linear gradient, stripes or pixel noise), and mild pixel noise is added on top.
Colours are drawn independently of the class, so only geometry identifies it.

Shapes are rasterised with signed distance functions (SDFs) on the pixel grid: with `d` the
signed distance from a pixel centre to the shape outline in pixels (negative inside), coverage is
`clip(0.5 - d, 0, 1)`, a one-pixel anti-aliased edge. Every random number comes from
`Generator.random` (PCG64 uniform doubles) and the per-pixel maths uses only IEEE-exact
operations (+ - * / sqrt abs floor min max, no sin/cos/exp), so the bytes are identical on every
machine and numpy build. Rotations and directions use the rational parametrisation
`(cos, sin) = ((1 - t^2) / (1 + t^2), 2t / (1 + t^2))` for that reason.
"""

import math

import numpy as np

CLASS_NAMES = (
    "circle", "square", "triangle", "cross", "star",
    "ring", "diamond", "hexagon", "crescent", "ellipse",
)  # fmt: skip
SPLIT_SEEDS = {"train": 0, "test": 1}
SPLIT_SIZES = {"train": 10_000, "test": 2_000}


def _box(u, v, half_w, half_h):
    """Exact SDF of an axis-aligned box with half-sides (half_w, half_h)."""
    dx, dy = np.abs(u) - half_w, np.abs(v) - half_h
    outside = np.sqrt(np.maximum(dx, 0) ** 2 + np.maximum(dy, 0) ** 2)
    return outside + np.minimum(np.maximum(dx, dy), 0)


def _regular_polygon(u, v, sides, circumradius):
    """SDF of a regular polygon with a vertex pointing up: max over edges of (p . n_k) - apothem.
    Exact inside and near edges, which is all the anti-aliasing needs."""
    angles = [math.pi / 2 + math.pi / sides + 2 * math.pi * k / sides for k in range(sides)]
    # Edge normals are constants; rounding them to float32 makes them identical everywhere.
    normals = np.array([[math.cos(a), math.sin(a)] for a in angles], np.float32)
    apothem = np.float32(circumradius * math.cos(math.pi / sides))
    dist = u * normals[0, 0] + v * normals[0, 1]
    for nx, ny in normals[1:]:
        dist = np.maximum(dist, u * nx + v * ny)
    return dist - apothem


def _star(u, v, radius=1.0, inner=0.45):
    """SDF of a five-pointed star (Inigo Quilez's sdStar5): fold the plane into one spike's
    wedge by reflections, then measure the distance to that spike's edge."""
    k1x, k1y = np.float32(0.809016994375), np.float32(-0.587785252292)  # (cos 36deg, -sin 36deg)
    px, py = np.abs(u), -v  # -v: image rows grow downwards, so the star points up
    d = 2 * np.maximum(k1x * px + k1y * py, 0)
    px, py = px - d * k1x, py - d * k1y
    d = 2 * np.maximum(-k1x * px + k1y * py, 0)
    px, py = px + d * k1x, py - d * k1y
    px, py = np.abs(px), py - np.float32(radius)
    bax, bay = np.float32(inner * -k1y), np.float32(inner * k1x - 1)
    h = np.clip((px * bax + py * bay) / (bax * bax + bay * bay), 0, radius)
    dist = np.sqrt((px - bax * h) ** 2 + (py - bay * h) ** 2)
    return dist * np.sign(py * bax - px * bay)


def _sdf(label, u, v):
    """Signed distance to the outline of class `label`, in units of the shape's scale."""
    radius = np.sqrt(u * u + v * v)
    if label == 0:
        return radius - 0.9
    if label == 1:
        return _box(u, v, 0.7, 0.7)
    if label == 2:
        return _regular_polygon(u, v, 3, 1.0)
    if label == 3:
        return np.minimum(_box(u, v, 0.9, 0.28), _box(u, v, 0.28, 0.9))
    if label == 4:
        return _star(u, v)
    if label == 5:
        return np.abs(radius - 0.7) - 0.2
    if label == 6:  # rhombus with half-diagonals 0.6 and 1.0: distance to its edge lines
        return (np.abs(u) / 0.6 + np.abs(v) - 1) * np.float32(0.6 / math.hypot(0.6, 1.0))
    if label == 7:
        return _regular_polygon(u, v, 6, 0.9)
    if label == 8:  # disc minus an offset disc
        return np.maximum(radius - 0.9, 0.75 - np.sqrt((u - 0.45) ** 2 + v * v))
    if label == 9:  # ellipse with semi-axes 1.0 and 0.5; first-order distance estimate
        return (np.sqrt(u * u + 4 * v * v) - 1) * 0.5
    raise ValueError(f"no shape for label {label}")


def _unit_vectors(rng, n):
    """n random unit vectors (cos, sin) from the rational parametrisation; `sign` covers the
    half-plane the parametrisation with t in [-1, 1] misses."""
    t = rng.random(n) * 2 - 1
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return sign * (1 - t * t) / (1 + t * t), sign * 2 * t / (1 + t * t)


def _textures(rng, grid_x, grid_y):
    """A random texture per image, float32 [n, S, S] in [-1, 1]: flat, linear gradient along a
    random direction, triangle-wave stripes of random frequency, or uniform pixel noise."""
    n, size = len(grid_x), grid_x.shape[-1]
    kind = np.floor(rng.random(n) * 4)[:, None, None]
    dx, dy = (c.astype(np.float32)[:, None, None] for c in _unit_vectors(rng, n))
    frequency = (1.5 + 2.5 * rng.random(n)).astype(np.float32)[:, None, None]
    noise = rng.random((n, size, size), dtype=np.float32) * 2 - 1
    along = grid_x * dx + grid_y * dy  # in [-sqrt 2, sqrt 2]
    phase = along * frequency
    stripes = 4 * np.abs(phase - np.floor(phase) - 0.5) - 1
    gradient = along / np.float32(math.sqrt(2))
    return np.where(
        kind == 0, 0, np.where(kind == 1, gradient, np.where(kind == 2, stripes, noise))
    )


_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luminance weights


def _contrasting_colours(rng, n, min_contrast=0.3):
    """Foreground and background RGB colours in [0, 1] with random hues, the foreground brighter
    than the background by at least `min_contrast` in luminance; pairs are redrawn until they are.

    Why: with unconstrained colours many pairs are near-isoluminant (red on green), and a CNN then
    needs thousands of steps before it finds the shape at all; with a guaranteed light-on-dark
    edge the demo learns within minutes on a CPU while colour still carries no class signal."""
    fg, bg = rng.random((n, 3)), rng.random((n, 3))
    low = (fg - bg) @ _LUMA < min_contrast
    while low.any():
        count = int(low.sum())
        fg[low], bg[low] = rng.random((count, 3)), rng.random((count, 3))
        low = (fg - bg) @ _LUMA < min_contrast
    return fg.astype(np.float32), bg.astype(np.float32)


def generate(
    num_examples: int, *, seed: int, image_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Generate `num_examples` images uint8 [N, S, S, 3] and labels int32 [N], example i having
    label i % 10 (so any multiple of 10 examples is class-balanced). A pure function of its
    arguments."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n, size = num_examples, image_size
    labels = (np.arange(n) % len(CLASS_NAMES)).astype(np.int32)
    # Image coordinates in [-1, 1] at pixel centres; the shape is drawn in its own frame
    # (u, v) = R^T (p - centre) / scale.
    axis = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(2 / size) - 1
    grid_x = np.broadcast_to(axis[None, None, :], (n, size, size))
    grid_y = np.broadcast_to(axis[None, :, None], (n, size, size))
    centre_x, centre_y = ((rng.random(n) * 0.6 - 0.3).astype(np.float32) for _ in range(2))
    scale = (0.45 + 0.3 * rng.random(n)).astype(np.float32)
    cos, sin = (c.astype(np.float32) for c in _unit_vectors(rng, n))
    fg, bg = _contrasting_colours(rng, n)
    fg_amp, bg_amp = ((0.04 + 0.12 * rng.random(n)).astype(np.float32) for _ in range(2))
    fg_texture, bg_texture = _textures(rng, grid_x, grid_y), _textures(rng, grid_x, grid_y)

    coverage = np.empty((n, size, size), np.float32)
    for label in range(len(CLASS_NAMES)):
        idx = np.flatnonzero(labels == label)
        dx = grid_x[idx] - centre_x[idx, None, None]
        dy = grid_y[idx] - centre_y[idx, None, None]
        c, s, r = (a[idx, None, None] for a in (cos, sin, scale))
        u, v = (c * dx + s * dy) / r, (c * dy - s * dx) / r
        distance_px = _sdf(label, u, v) * r * np.float32(size / 2)
        coverage[idx] = np.clip(0.5 - distance_px, 0, 1)

    # image = background + coverage * (foreground - background) + noise, computed in place
    # because these [N, S, S, 3] float arrays dominate the generation time.
    image = bg[:, None, None, :] + (bg_amp[:, None, None] * bg_texture)[..., None]
    foreground = fg[:, None, None, :] + (fg_amp[:, None, None] * fg_texture)[..., None]
    foreground -= image
    foreground *= coverage[..., None]
    image += foreground
    noise = rng.random((n, size, size, 3), dtype=np.float32)
    noise -= 0.5
    image += noise * np.float32(0.06)
    image *= 255
    return np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8), labels


def read_arrays(image_size: int = 32) -> dict[str, np.ndarray]:
    """The fixed splits as `{split}_images`, `{split}_labels` (train: 10,000, test: 2,000) and
    `class_names`."""
    arrays = {"class_names": np.array(CLASS_NAMES)}
    for split, size in SPLIT_SIZES.items():
        images, labels = generate(size, seed=SPLIT_SEEDS[split], image_size=image_size)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays
