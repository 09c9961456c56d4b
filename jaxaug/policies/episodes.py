"""K-step episodes of discrete image actions: AdaTransform's meta-transformations and box moves
(Tang's thesis, ch. 3), rendered with `jaxaug.ops`, sampled from a policy network inside jit.

Three action sets (``mode``):

* ``"transform"``: the 33 incremental meta-transformations of `TRANSFORM_ACTIONS`: rotate
  +-2.5, +-5 degrees; zoom 0.9, 1.1, 0.75, 1.25; shear (along x, about the centre) +-0.1,
  +-0.25; hue +-0.1, +-0.25 turns; brightness and colour (saturation) 0.75, 1.25, 0.5, 1.5;
  sharpness and contrast 0.75, 1.25, 0.5, 1.5; horizontal flip. All geometric actions (flip
  included) are 3x3 output->input matrices (`jaxaug.ops.geometry`), so a chain of them is the
  product M_t = A_1 @ ... @ A_t and x_t is rendered from the ORIGINAL x_0 with one bilinear
  resampling by M_t; the colour actions then follow, in the order drawn. This reorders a colour
  action drawn before a geometric one: brightness, colour and hue are pointwise and commute
  with the warp (up to interpolation), but contrast and sharpness take their statistics (mean
  grey, 3x3 blur) from the warped image. Pixels warped in from outside get ``fill`` (the
  dataset mean from a config). The values are those of the thesis's Table 3.1 (sec. 3.4.3), which
  repeats TANDA's CIFAR-10 TF list (HazyResearch/tanda ``experiments/cifar10/train.py``); its
  units are read from there: the "Shear/Swirl" values (0.1, 0.25, marked as degrees in the table)
  are skimage shear angles in radians there, taken here as shear factors (tan 0.1 = 0.1003), the
  swirl is left out, and a hue shift is added to HSV hue in [0, 1], i.e. in turns.
* ``"cutout"`` (AdaCutout) / ``"erasing"`` (AdaErasing): x_0 carries a random Cutout square
  (centre uniform over the image, filled with ``fill``) or a Random Erasing rectangle
  (`ops.random_erasing`'s distribution, filled with uniform noise), and each action moves that
  box by ``move_pixels`` up, right, down, left, or not at all (`BOX_ACTIONS`). Clipping at the
  border: a Cutout centre stays inside the image (the square may stick out, as in Cutout); an
  erasing rectangle stays wholly inside. The policy also sees the box centre, in [-1, 1]
  coordinates.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxaug import ops

#: The meta-transformations of AdaTransform, (op, parameter): degrees, zoom factor, shear,
#: hue turns, enhance factor; the flip has none.
TRANSFORM_ACTIONS = (
    *(("rotate", d) for d in (2.5, -2.5, 5.0, -5.0)),
    *(("zoom", z) for z in (0.9, 1.1, 0.75, 1.25)),
    *(("shear", s) for s in (0.1, -0.1, 0.25, -0.25)),
    *(("hue", h) for h in (0.1, -0.1, 0.25, -0.25)),
    *((op, f) for op in ("brightness", "color") for f in (0.75, 1.25, 0.5, 1.5)),
    *((op, f) for op in ("sharpness", "contrast") for f in (0.75, 1.25, 0.5, 1.5)),
    ("hflip", 0.0),
)

#: The box moves of AdaCutout / AdaErasing, (name, (rows, columns)) in units of move_pixels.
BOX_ACTIONS = (("up", (-1, 0)), ("right", (0, 1)), ("down", (1, 0)), ("left", (0, -1)),
               ("stay", (0, 0)))

#: The padding of a transformation chain shorter than K: no geometric or colour effect.
NO_ACTION = len(TRANSFORM_ACTIONS)

NO_ACTION_ENTRY = ("none", 0.0)

MODES = ("transform", "cutout", "erasing")

GEOMETRIC_OPS = ("rotate", "zoom", "shear", "hflip")

COLOUR_OPS = {"hue": ops.hue_shift, "brightness": ops.brightness, "color": ops.color,
              "sharpness": ops.sharpness, "contrast": ops.contrast}

def check_mode(mode: str) -> str:
    """`mode` itself, or a ValueError naming it: every other name would run as "erasing"."""
    if mode not in MODES:
        raise ValueError(f"episodes: mode must be one of {MODES}, got {mode!r}")
    return mode

def num_actions(mode: str) -> int:
    """Size of `mode`'s action set: 33 meta-transformations or the 5 box moves."""
    return len(TRANSFORM_ACTIONS) if check_mode(mode) == "transform" else len(BOX_ACTIONS)

def action_matrix(op: str, value: float, height: int, width: int) -> jax.Array:
    """The 3x3 output->input matrix of a meta-transformation (identity for colour ops)."""
    if op == "rotate":
        return ops.rotate_matrix(value, height, width)
    if op == "zoom":
        return ops.scale_matrix(value, height, width)
    if op == "shear":  # about the centre row, so the shear does not also translate the image
        cy = height / 2.0
        return ops.compose(ops.translate_y_matrix(cy), ops.shear_x_matrix(value),
                           ops.translate_y_matrix(-cy))
    if op == "hflip":  # input x = W - x maps pixel centres onto pixel centres: exact
        return jnp.asarray([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return jnp.eye(3)

def _colour_tables() -> dict[str, jax.Array]:
    """Per colour op, its parameter for every action and for `NO_ACTION`: the action's own
    value where the action is that op, the op's identity (factor 1, hue shift 0) elsewhere."""
    return {op: jnp.asarray([v if name == op else float(op != "hue")
                             for name, v in (*TRANSFORM_ACTIONS, NO_ACTION_ENTRY)], jnp.float32)
            for op in COLOUR_OPS}

def _colour(img: jax.Array, action: jax.Array) -> jax.Array:
    """One image through the colour op of a (traced) action; geometric actions and `NO_ACTION`
    leave it alone. Each of the five ops runs once with the action's parameter and the drawn one
    is selected: no branching on traced values."""
    out = img
    for op, params in _colour_tables().items():
        is_op = jnp.asarray([name == op for name, _ in (*TRANSFORM_ACTIONS, NO_ACTION_ENTRY)])
        out = jnp.where(is_op[action], COLOUR_OPS[op](img, params[action]), out)
    return out

def transform_matrix(actions: jax.Array, height: int, width: int) -> jax.Array:
    """M = A_1 @ ... @ A_t, the one output->input matrix of the geometric actions among
    ``actions`` [t] (applying A then B is the warp by A @ B; other actions are the identity)."""
    table = jnp.stack([action_matrix(op, v, height, width)
                       for op, v in (*TRANSFORM_ACTIONS, NO_ACTION_ENTRY)])
    matrix = jnp.eye(3)
    for t in range(actions.shape[0]):
        matrix = matrix @ table[actions[t]]
    return matrix

def render_transform(x0: jax.Array, actions: jax.Array, fill: jax.Array) -> jax.Array:
    """x_t of one image [H, W, C] in [0, 1] after ``actions`` [t] (traced ints, `NO_ACTION`
    for none): one bilinear resampling of x_0 by `transform_matrix`, then the colour actions in
    the order drawn (one traced colour pass, looped)."""
    h, w, _ = x0.shape
    img = ops.affine(x0, transform_matrix(actions, h, w), interpolation="bilinear", fill=fill)
    return jax.lax.fori_loop(0, actions.shape[0], lambda t, im: _colour(im, actions[t]), img)

class Box(NamedTuple):
    """Boxes of a batch, int32 [N, 2] (rows, columns): top-left corner, size, and the corner's
    allowed range [lo, hi]; ``fill`` [N, H, W, C] is what the box shows."""

    corner: jax.Array
    size: jax.Array
    lo: jax.Array
    hi: jax.Array
    fill: jax.Array

def start_cutout(keys: jax.Array, x01: jax.Array, size: int, fill: jax.Array) -> Box:
    """Cutout's square: centre uniform over the image (kept inside when moved), showing ``fill``
    (a scalar or one value per channel)."""
    n, h, w, _ = x01.shape
    centre = jax.vmap(lambda k: jax.random.randint(k, (2,), 0, jnp.asarray([h, w])))(keys)
    half = size // 2
    full = jnp.full((n, 2), 2 * half, jnp.int32)
    return Box(centre - half, full, jnp.full((n, 2), -half, jnp.int32),
               jnp.broadcast_to(jnp.asarray([h - 1 - half, w - 1 - half]), (n, 2)),
               jnp.broadcast_to(jnp.asarray(fill, x01.dtype), x01.shape))

def start_erasing(keys: jax.Array, x01: jax.Array) -> Box:
    """Random Erasing's rectangle, drawn by `ops.random_erasing` (read back from its mask), kept
    inside the image when moved; filled with uniform noise fixed in image coordinates."""
    def one(key, img):
        box_key, noise_key = jax.random.split(key)
        mask = ops.random_erasing(box_key, jnp.zeros_like(img[..., :1]), fill=1.0)[..., 0] > 0
        rows, cols = jnp.any(mask, axis=1), jnp.any(mask, axis=0)
        corner = jnp.stack([jnp.argmax(rows), jnp.argmax(cols)]).astype(jnp.int32)
        size = jnp.stack([rows.sum(), cols.sum()]).astype(jnp.int32)
        hi = jnp.asarray(img.shape[:2], jnp.int32) - size
        return Box(corner, size, jnp.zeros(2, jnp.int32), hi,
                   jax.random.uniform(noise_key, img.shape, img.dtype))
    return jax.vmap(one)(keys, x01)

def move_box(box: Box, actions: jax.Array, move_pixels: int) -> Box:
    """Each box moved by ``move_pixels`` in its action's direction, clipped to its range."""
    delta = jnp.asarray([d for _, d in BOX_ACTIONS], jnp.int32)[actions] * move_pixels
    return box._replace(corner=jnp.clip(box.corner + delta, box.lo, box.hi))

def render_box(x01: jax.Array, box: Box) -> jax.Array:
    """The images with their boxes (clipped to the frame) showing ``box.fill``."""
    _, h, w, _ = x01.shape
    rows = jnp.arange(h)[None, :, None]
    cols = jnp.arange(w)[None, None, :]
    top, left = (box.corner[:, i, None, None] for i in (0, 1))
    inside = ((rows >= top) & (rows < top + box.size[:, 0, None, None])
              & (cols >= left) & (cols < left + box.size[:, 1, None, None]))
    return jnp.where(inside[..., None], box.fill, x01)

def box_features(box: Box, height: int, width: int) -> jax.Array:
    """The box centres in [-1, 1] image coordinates, [N, 2]."""
    centre = box.corner + box.size / 2.0
    return 2.0 * centre / jnp.asarray([height, width]) - 1.0

class Rollout(NamedTuple):
    images: jax.Array  # [K + 1, N, H, W, C] in [0, 1]: x_0 .. x_K
    extra: jax.Array  # [K, N, E]: the features T saw at each step
    actions: jax.Array  # [K, N] int32
    dropout_keys: jax.Array  # [K]: T's dropout stream at each step, to re-score the actions

def rollout(policy: Callable, x01: jax.Array, key: jax.Array, *, mode: str, num_steps: int,
            fill: ArrayLike = 0.0, cutout_size: int = 16, move_pixels: int = 2,
            greedy: bool = False) -> Rollout:
    """One K-step episode per image of ``x01`` [N, H, W, C] in [0, 1]: a_t ~ Categorical(logits)
    with logits = ``policy(x_{t-1}, extra, dropout_key_t)`` [N, A] (argmax if ``greedy``, and
    then the key is None: no dropout), from per-image keys, so sampling stays inside jit. The
    steps are one `lax.scan`, so T, the sampling and the rendering are compiled once, not K
    times. ``fill`` (a scalar or one value per channel): the Cutout square's colour and that of
    pixels warped in from outside."""
    check_mode(mode)
    n, h, w, c = x01.shape
    key, dropout_key = jax.random.split(key)
    dropout_keys = jax.random.split(dropout_key, num_steps)
    keys = jax.random.split(key, n)
    fill = jnp.broadcast_to(jnp.asarray(fill, x01.dtype), (c,))
    if mode == "transform":
        state = jnp.full((n, num_steps), NO_ACTION, jnp.int32)  # the actions drawn so far
    else:
        start_keys = jax.vmap(lambda k: jax.random.fold_in(k, num_steps))(keys)
        state = (start_cutout(start_keys, x01, cutout_size, fill) if mode == "cutout"
                 else start_erasing(start_keys, x01))

    def render(state):
        if mode == "transform":
            return jax.vmap(lambda x, a: render_transform(x, a, fill))(x01, state)
        return render_box(x01, state)

    def features(state):
        return jnp.zeros((n, 0), x01.dtype) if mode == "transform" else box_features(state, h, w)

    def step(carry, t):
        state, image = carry
        extra = features(state)
        logits = policy(image, extra, None if greedy else dropout_keys[t])
        if greedy:
            a = jnp.argmax(logits, axis=-1)
        else:
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
            a = jax.vmap(jax.random.categorical)(step_keys, logits)
        a = a.astype(jnp.int32)
        state = state.at[:, t].set(a) if mode == "transform" else move_box(state, a, move_pixels)
        image = render(state)
        return (state, image), (image, extra, a)

    x0 = x01 if mode == "transform" else render(state)
    _, (images, extras, actions) = jax.lax.scan(step, (state, x0), jnp.arange(num_steps))
    return Rollout(jnp.concatenate([x0[None], images]), extras, actions, dropout_keys)

def action_log_probs(policy: Callable, roll: Rollout) -> tuple[jax.Array, jax.Array]:
    """log pi_T(a_t | x_{t-1}) [N, K] of a rollout's actions, and the logits [K * N, A]: ``policy``
    mapped over the K steps, each call as in `rollout` (same batch, same dropout key), so the
    dropout masks, and the distributions, are the ones the actions were drawn from."""
    k, n = roll.actions.shape
    logits = jax.vmap(policy)(roll.images[:-1], roll.extra, roll.dropout_keys)
    log_p = jax.nn.log_softmax(logits)
    taken = jnp.take_along_axis(log_p, roll.actions[..., None], axis=-1)[..., 0]
    return taken.T, logits.reshape(k * n, -1)
