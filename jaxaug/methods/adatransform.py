"""AdaTransform (Tang et al., ICCV 2019; Tang's thesis, ch. 3, cited by section): a transformer
network T picks data transformations step by step, rewarded by the target network's loss, with a
discriminator keeping them realistic.

The MDP. A state is the current image x_{t-1} (for the box modes, also the box position); an
action a_t ~ pi_T(. | x_{t-1}) = Categorical(softmax T(x_{t-1})) is one meta-transformation,
and x_t is x_0 transformed by a_1..a_t. An episode has K steps. Three action sets (``mode``):

* ``"transform"``: the 33 incremental meta-transformations of `TRANSFORM_ACTIONS`: rotate
  +-2.5, +-5 degrees; zoom 0.9, 1.1, 0.75, 1.25; shear (along x, about the centre) +-0.1,
  +-0.25; hue +-0.1, +-0.25 turns; brightness and colour (saturation) 0.75, 1.25, 0.5, 1.5;
  sharpness and contrast 0.75, 1.25, 0.5, 1.5; horizontal flip. All geometric actions (flip
  included) are 3x3 output->input matrices (`jaxaug.ops.geometry`), so a chain of them is the
  product M_t = A_1 @ ... @ A_t and x_t is rendered from the ORIGINAL x_0 with one bilinear
  resampling by M_t; the colour actions then follow, in the order drawn. This reorders a colour
  action drawn before a geometric one: brightness, colour and hue are pointwise and commute
  with the warp (up to interpolation), but contrast and sharpness take their statistics (mean
  grey, 3x3 blur) from the warped image. Pixels warped in from outside get the dataset mean.
* ``"cutout"`` (AdaCutout) / ``"erasing"`` (AdaErasing): x_0 carries a random Cutout square
  (centre uniform over the image, filled with the dataset mean) or a Random Erasing rectangle
  (`ops.random_erasing`'s distribution, filled with uniform noise), and each action moves that
  box by ``move_pixels`` up, right, down, left, or not at all (`BOX_ACTIONS`). Clipping at the
  border: a Cutout centre stays inside the image (the square may stick out, as in Cutout); an
  erasing rectangle stays wholly inside. T also sees the box centre, in [-1, 1] coordinates.

Rewards. With l(x) the target's per-image cross-entropy in evaluation mode (running BatchNorm
statistics, no gradient into the target) and D(x) = sigmoid(s(x)) the discriminator,

    competitive:  v(x) = l(x) + lambda log D(x),     cooperative:  v(x) = -l(x),
    r_t = v(x_t) - v(x_{t-1}),   so   sum_t r_t = v(x_K) - v(x_0)   (telescoping),

i.e. the thesis's r_t = l(x_t) - l(x_{t-1}) (eqs. 3.5-3.6), with the realness term
lambda log D(x) placed inside v so that the rewards still add up to the terminal objective (less
v(x_0), which no action changes). The returns R_t' = sum_{t >= t'} gamma^(t - t') r_t (gamma =
0.5, eq. 3.8) are credited to a_t', the baseline b_t is their mean over the h images x s samples
of the batch (per step t, eq. 3.9),
and T minimises the REINFORCE surrogate -mean (R_t - b_t) log pi_T(a_t | x_{t-1}).

Competitive mode (training) maximises E[l(x_K) + lambda log D(x_K)] (eq. 3.1): transformations
that are hard for the target but still look real. D is a DCGAN-style network (sec. 3.6.1)
trained real (clean x) vs transformed (x_K) with the binary cross-entropy of
`objectives.discriminator_loss` (eq. 3.3). Cooperative mode minimises l(x_K) (eq. 3.2) with its
own transformer T_c and its own rollouts (reward -(l(x_t) - l(x_{t-1})), no D term); at test time
`predict` applies T_c greedily (argmax) for K steps, then classifies: it moves test images
towards what the target knows. Cooperative mode is only defined for ``"transform"``: the box
modes' random start box would need a random key, which ``predict`` does not take.

The target N (eq. 3.4, Alg. 4, sec. 3.6.1). N's batch holds, per image, its first competitive
x_K with probability ``apply_prob`` and the clean x otherwise; N minimises the mean
cross-entropy of that batch plus ``clean_weight`` x that of the clean batch, both halves in one
training-mode forward (one set of BatchNorm statistics). The thesis's settings, the defaults by
mode (`THESIS_DEFAULTS`): AdaImgTransform (``"transform"``) on every image plus the clean term,
eq. 3.4 read as the sum of the two means (apply_prob 1, clean_weight 1); AdaCutout on each image
with probability 0.3, its batch mixing clean and transformed images as Alg. 4 does
(clean_weight 0). From step ``stop_step`` on, N takes a supervised step on the clean batch: the
thesis stops AdaImgTransform for the last ten epochs (`methods.create` turns
``config.adatransform.stop_epochs`` into the step; AdaCutout does not stop).

Schedule (sec. 3.4.3: N trains for "several" epochs, then T and D update once). Every step rolls
T out on the batch and updates N; T and D update on the steps that complete a period of
``update_every`` N updates (steps update_every - 1, 2 update_every - 1, ...). On the other steps
their updates are computed and dropped with `jnp.where`, not skipped by a `lax.cond` (XLA:CPU
runs convolutions inside conditionals many times slower), so the period changes what is learned,
not what a step costs. T and D keep their schedule after the stop, so T_c follows the N that
``predict`` uses.

T (sec. 3.6.1): `TransformerNet`, ResNet-18 (width ``transformer_width``, 64 in the thesis) with
dropout after every 3x3 convolution and before the linear layer. A rollout draws one dropout key
per step and T's actions are re-scored under the same keys, so the log-probabilities are those
of the distributions the actions were drawn from. T's optimizer: Adam with L2 weight decay,
learning rate / decay 1e-4 / 1e-4 for AdaImgTransform and 3e-5 / 1e-5 for AdaCutout (the thesis;
AdaErasing takes AdaCutout's, having none of its own).

Departures from the thesis, kept: T_c is a second network, where the thesis conditions one T on
a zero or one map added to its input (sec. 3.4.3); T normalizes with GroupNorm where ResNet-18
has BatchNorm (no running statistics to carry for T); one step does N's update and, when due,
T's and D's on the same batch, where Alg. 4 alternates a pass over the data for N with one for T
and D; x_K is rendered from x_0 by one resampling (above); N sees one competitive sample per
image (of the s), so its batch and BatchNorm statistics keep their meaning.

A non-finite loss or gradient skips that network's update (its state unchanged) and counts it in
``state.skipped`` and the metrics. The thesis has no entropy bonus, so ``entropy_weight``
defaults to 0; before the thesis's settings were followed (K = 3, a 3-conv T without dropout at
Adam 1e-3 updated every step, N on transformed images only) both policies collapsed onto one
action within 4 epochs on reduced CIFAR-10 (docs/results.md). ``entropy_weight`` > 0 subtracts
entropy_weight * (mean per-step entropy of both policies) from their loss. ``policy_entropy``
tracks the competitive policy's, ``augmented`` the fraction of N's batch transformed.
"""

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from ml_collections.config_dict import placeholder

from jaxaug import ops
from jaxaug.methods import registry
from jaxaug.methods.base import (
    Method,
    NetworkState,
    TargetState,
    check_int,
    count_skips,
    gradient_update,
    image_stats,
    init_target,
    keep_if,
    predict_target,
    require,
)
from jaxaug.models.discriminator import Discriminator
from jaxaug.objectives import (
    TargetLoss,
    discriminator_objective,
    log_realness,
    softmax_cross_entropy,
)
from jaxaug.objectives.classification import model_rngs
from jaxaug.objectives.reinforce import (
    batch_mean_baseline,
    categorical_entropy,
    discounted_returns,
    reinforce_loss,
)

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


def num_actions(mode: str) -> int:
    return len(TRANSFORM_ACTIONS) if mode == "transform" else len(BOX_ACTIONS)


class TransformerNet(nn.Module):
    """T: logits over the actions from the current (normalized) image and ``extra`` features
    [N, E] (the box centre; E = 0 for ``"transform"``). ResNet-18-like, as in the thesis
    (sec. 3.6.1): a 3x3 stem, four stages of two basic blocks of width w, 2w, 4w, 8w (stride 1,
    2, 2, 2; w = 64 is ResNet-18), global average pooling, one linear layer; dropout of rate
    ``dropout`` after every 3x3 convolution and before the linear layer (sec. 3.6.1). GroupNorm
    stands in for BatchNorm, so that T keeps no running statistics: the rollout, the re-scoring
    of its actions and the greedy test-time pass normalize each image alike. The output layer
    starts at zero, so the initial policy is exactly uniform. ``train`` draws dropout from the
    ``"dropout"`` stream."""

    num_actions: int
    width: int = 64
    dropout: float = 0.3

    @nn.compact
    def __call__(self, images: jax.Array, extra: jax.Array, train: bool = False) -> jax.Array:
        def conv(x, channels, strides=1):
            x = nn.Conv(channels, (3, 3), strides=strides, use_bias=False)(x)
            return nn.Dropout(self.dropout, deterministic=not train)(x)

        def norm(x):  # groups of at most 32, dividing the channels
            return nn.GroupNorm(num_groups=math.gcd(x.shape[-1], 32))(x)

        x = nn.relu(norm(conv(images, self.width)))
        for stage in range(4):
            channels = self.width * 2 ** stage
            for block in range(2):
                strides = 2 if stage > 0 and block == 0 else 1
                y = nn.relu(norm(conv(x, channels, strides)))
                y = norm(conv(y, channels))
                if strides != 1 or x.shape[-1] != channels:
                    x = norm(nn.Conv(channels, (1, 1), strides=strides, use_bias=False)(x))
                x = nn.relu(x + y)
        x = jnp.concatenate([jnp.mean(x, axis=(1, 2)), extra], axis=-1)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)(x)


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


def start_cutout(keys: jax.Array, x01: jax.Array, size: int, mean: jax.Array) -> Box:
    """Cutout's square: centre uniform over the image (kept inside when moved), mean fill."""
    n, h, w, _ = x01.shape
    centre = jax.vmap(lambda k: jax.random.randint(k, (2,), 0, jnp.asarray([h, w])))(keys)
    half = size // 2
    full = jnp.full((n, 2), 2 * half, jnp.int32)
    return Box(centre - half, full, jnp.full((n, 2), -half, jnp.int32),
               jnp.broadcast_to(jnp.asarray([h - 1 - half, w - 1 - half]), (n, 2)),
               jnp.broadcast_to(mean, x01.shape))


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
    images: jax.Array  # [K + 1, N, H, W, C] normalized: x_0 .. x_K
    extra: jax.Array  # [K, N, E]: the features T saw at each step
    actions: jax.Array  # [K, N] int32
    dropout_keys: jax.Array  # [K]: T's dropout stream at each step, to re-score the actions


def rollout(policy: Callable, x01: jax.Array, key: jax.Array, *, mode: str, num_steps: int,
            mean: jax.Array, std: jax.Array, cutout_size: int = 16, move_pixels: int = 2,
            greedy: bool = False) -> Rollout:
    """One K-step episode per image of ``x01`` [N, H, W, C] in [0, 1]: a_t ~ Categorical(logits)
    with logits = ``policy(x_{t-1}, extra, dropout_key_t)`` [N, A] (argmax if ``greedy``, and
    then the key is None: no dropout), from per-image keys, so sampling stays inside jit. The
    steps are one `lax.scan`, so T, the sampling and the rendering are compiled once, not K
    times."""
    n, h, w, c = x01.shape
    key, dropout_key = jax.random.split(key)
    dropout_keys = jax.random.split(dropout_key, num_steps)
    keys = jax.random.split(key, n)
    fill = jnp.broadcast_to(mean, (c,))
    if mode == "transform":
        state = jnp.full((n, num_steps), NO_ACTION, jnp.int32)  # the actions drawn so far
    else:
        start_keys = jax.vmap(lambda k: jax.random.fold_in(k, num_steps))(keys)
        state = (start_cutout(start_keys, x01, cutout_size, mean) if mode == "cutout"
                 else start_erasing(start_keys, x01))

    def render(state):
        if mode == "transform":
            image = jax.vmap(lambda x, a: render_transform(x, a, fill))(x01, state)
        else:
            image = render_box(x01, state)
        return (image - mean) / std

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

    x0 = (x01 - mean) / std if mode == "transform" else render(state)
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


def step_rewards(values: jax.Array) -> jax.Array:
    """r_t = v(x_t) - v(x_{t-1}) [N, K] from the values v(x_0..x_K) [K + 1, N]."""
    return jnp.diff(values, axis=0).T


def episode_values(losses: jax.Array, log_d: jax.Array | None = None, *,
                   cooperative: bool = False, disc_weight: float = 0.0) -> jax.Array:
    """v(x_t): competitive l(x_t) + lambda log D(x_t) (no D term when ``log_d`` is None),
    cooperative -l(x_t)."""
    if cooperative:
        return -losses
    return losses if log_d is None else losses + disc_weight * log_d


def reinforce_terms(log_probs: jax.Array, rewards: jax.Array, gamma: float, *,
                    entropy: jax.Array | None = None, entropy_weight: float = 0.0) -> jax.Array:
    """The REINFORCE surrogate of rewards [N, K]: discounted returns, baseline = their mean
    over the N = h x s episodes per step t; ``entropy`` / ``entropy_weight``: the bonus of
    `reinforce_loss`."""
    returns = discounted_returns(rewards, gamma)
    return reinforce_loss(log_probs, returns, batch_mean_baseline(returns, axis=0),
                          entropy=entropy, entropy_weight=entropy_weight)


@flax.struct.dataclass
class AdaTransformState:
    step: jax.Array
    target: TargetState
    policy: NetworkState  # params stacked along a leading axis: [competitive (, cooperative)]
    disc: NetworkState
    skipped: jax.Array  # updates skipped for non-finite values, cumulative


def action_probs(state: AdaTransformState, images: jax.Array, *, mode: str = "transform",
                 policy: int = 0, extra: jax.Array | None = None,
                 transformer_width: int = 64, transformer: nn.Module | None = None) -> jax.Array:
    """The mean action distribution [A] of policy ``policy`` (0 competitive, 1 cooperative) over
    normalized ``images``, dropout off; for the box modes ``extra`` are the box centres (default:
    centred). ``transformer`` (default: `TransformerNet` of ``transformer_width``) must be the
    method's."""
    if extra is None:
        extra = jnp.zeros((images.shape[0], 0 if mode == "transform" else 2), images.dtype)
    params = jax.tree.map(lambda p: p[policy], state.policy.params)
    net = transformer or TransformerNet(num_actions(mode), transformer_width)
    return jnp.mean(jax.nn.softmax(net.apply({"params": params}, images, extra)), axis=0)


#: The thesis's settings by mode (sec. 3.6.1): K, T's learning rate and weight decay, the
#: probability that an image of N's batch is transformed, the weight of N's clean term (eq. 3.4
#: for AdaImgTransform: N learns from x and T(x); AdaCutout's batch mixes them, Alg. 4) and the
#: closing epochs trained on clean images. AdaErasing, for which it gives none, takes AdaCutout's.
THESIS_DEFAULTS = {
    "transform": {"num_steps": 8, "policy_lr": 1e-4, "policy_weight_decay": 1e-4,
                  "apply_prob": 1.0, "clean_weight": 1.0, "stop_epochs": 10},
    "cutout": {"num_steps": 3, "policy_lr": 3e-5, "policy_weight_decay": 1e-5,
               "apply_prob": 0.3, "clean_weight": 0.0, "stop_epochs": 0},
}
THESIS_DEFAULTS["erasing"] = THESIS_DEFAULTS["cutout"]


def thesis_default(mode: str, name: str, value: Any = None) -> Any:
    """``value``, or the thesis's setting ``name`` for ``mode`` where it is None."""
    require(mode in THESIS_DEFAULTS, "adatransform", "mode", mode, f"must be one of {', '.join(MODES)}")
    return THESIS_DEFAULTS[mode][name] if value is None else value


def make_policy_optimizer(lr: float, weight_decay: float) -> optax.GradientTransformation:
    """T's optimizer: Adam with L2 weight decay added to the gradient (the thesis gives the rate
    and decay, sec. 3.6.1; Adam is our choice)."""
    require(0 < lr < math.inf, "adatransform", "policy_lr", lr, "must be positive and finite")
    require(0 <= weight_decay < math.inf, "adatransform", "policy_weight_decay", weight_decay,
            "must be finite and non-negative")
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(lr))


def mix_batch(key: jax.Array, transformed: jax.Array, clean: jax.Array, prob: float,
              active: jax.Array) -> tuple[jax.Array, jax.Array]:
    """N's batch (Alg. 4, line 3): image i is ``transformed[i]`` where a Bernoulli(``prob``)
    draw m_i comes up (and ``active``), else ``clean[i]``; returns it and the mask m [N]."""
    mask = jax.random.bernoulli(key, prob, clean.shape[:1]) & active
    return jnp.where(mask.reshape(-1, *(1,) * (clean.ndim - 1)), transformed, clean), mask


def _check_args(mode, num_steps, samples, gamma, disc_weight, cutout_size, move_pixels,
                cooperative_test, entropy_weight, apply_prob, clean_weight, update_every,
                stop_step, transformer_width, dropout):
    require(mode in MODES, "adatransform", "mode", mode, f"must be one of {', '.join(MODES)}")
    for name, value, low in (("num_steps", num_steps, 1), ("samples", samples, 1),
                             ("cutout_size", cutout_size, 2), ("move_pixels", move_pixels, 1),
                             ("update_every", update_every, 1),
                             ("transformer_width", transformer_width, 1)):
        check_int("adatransform", name, value, low)
    if stop_step is not None:
        check_int("adatransform", "stop_step", stop_step, 0)
    for name, value in (("gamma", gamma), ("apply_prob", apply_prob)):
        require(0 <= value <= 1, "adatransform", name, value, "must be in [0, 1]")
    require(0 <= dropout < 1, "adatransform", "dropout", dropout, "must be in [0, 1)")
    for name, value in (("entropy_weight", entropy_weight), ("disc_weight", disc_weight),
                        ("clean_weight", clean_weight)):
        require(0 <= value < math.inf, "adatransform", name, value, "must be finite and non-negative")
    require(not (cooperative_test and mode != "transform"), "adatransform", "cooperative_test",
            cooperative_test, f"needs mode 'transform', not {mode!r} (the box modes start from a "
            "random box and predict has no key)")


def adatransform(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    mode: str = "transform",
    num_steps: int | None = None,
    samples: int = 2,
    gamma: float = 0.5,
    disc_weight: float = 0.1,
    cutout_size: int = 16,
    move_pixels: int = 2,
    apply_prob: float | None = None,
    clean_weight: float | None = None,
    update_every: int = 5,
    stop_step: int | None = None,
    transformer_width: int = 64,
    dropout: float = 0.3,
    transformer: nn.Module | None = None,
    policy_optimizer: optax.GradientTransformation | None = None,
    disc_optimizer: optax.GradientTransformation | None = None,
    cooperative_test: bool | None = None,
    entropy_weight: float = 0.0,
    target_loss: TargetLoss = softmax_cross_entropy,
) -> Method:
    """AdaTransform / AdaCutout / AdaErasing (see the module docstring) for the target ``model``
    trained by ``optimizer``. ``mean``/``std``: the dataset's per-channel normalization (the
    batch is normalized; the ops need [0, 1]). ``num_steps`` K, ``samples`` s episodes per image,
    ``gamma`` the discount, ``disc_weight`` lambda. N's batch: each image transformed with
    probability ``apply_prob``, plus ``clean_weight`` x the clean batch's loss, until step
    ``stop_step`` (None: never), from which N trains on the clean batch alone. T and D update
    on every ``update_every``-th step. T: `TransformerNet` of width ``transformer_width`` and
    dropout rate ``dropout``, or ``transformer``, a module with its interface.
    ``cooperative_test`` (default: True for ``"transform"``, else False) trains a cooperative
    transformer and applies it in ``predict``. ``entropy_weight``: the policies' entropy bonus
    (0: none, as in the thesis).

    From the thesis: the action tables, gamma = 0.5 (sec. 3.4.2), 2-pixel moves, and by mode
    (None picks it, `THESIS_DEFAULTS`) K, ``apply_prob``, ``clean_weight``, and T's optimizer
    (default `make_policy_optimizer` with its learning rate and weight decay), sec. 3.6.1 and
    eq. 3.4; T's ResNet-18 with dropout (w = 64). Our choices (the thesis gives no value):
    s = 2, lambda = 0.1, ``update_every`` = 5 ("several"), ``dropout`` = 0.3, the mean-filled
    16-pixel Cutout square, Adam for T, GroupNorm in T, and the discriminator's base width 32
    and Adam(2e-4, b1=0.5) (DCGAN's optimizer settings; the thesis names DCGAN's
    discriminator)."""
    if mode in MODES:
        if cooperative_test is None:
            cooperative_test = mode == "transform"
        num_steps = thesis_default(mode, "num_steps", num_steps)
        apply_prob = thesis_default(mode, "apply_prob", apply_prob)
        clean_weight = thesis_default(mode, "clean_weight", clean_weight)
    _check_args(mode, num_steps, samples, gamma, disc_weight, cutout_size, move_pixels,
                cooperative_test, entropy_weight, apply_prob, clean_weight, update_every,
                stop_step, transformer_width, dropout)
    policy_optimizer = policy_optimizer or make_policy_optimizer(
        THESIS_DEFAULTS[mode]["policy_lr"], THESIS_DEFAULTS[mode]["policy_weight_decay"])
    disc_optimizer = disc_optimizer or optax.adam(2e-4, b1=0.5)
    mean_arr, std_arr = image_stats("adatransform", mean, std)
    net = transformer or TransformerNet(num_actions(mode), transformer_width, dropout)
    disc = Discriminator()
    num_policies = 2 if cooperative_test else 1

    def policies(params):
        """T of the P policies on episodes laid out [..., P] (the policy is the fastest index),
        each policy with its own dropout stream (no dropout when ``key`` is None)."""
        def apply(images, extra, key):
            episodes = images.shape[0] // num_policies
            images = images.reshape(episodes, num_policies, *images.shape[1:])
            extra = extra.reshape(episodes, num_policies, extra.shape[-1])
            if key is None:
                logits = jax.vmap(lambda p, x, e: net.apply({"params": p}, x, e),
                                  in_axes=(0, 1, 1), out_axes=1)(params, images, extra)
            else:
                logits = jax.vmap(
                    lambda p, x, e, k: net.apply({"params": p}, x, e, train=True,
                                                 rngs={"dropout": k}),
                    in_axes=(0, 1, 1, 0), out_axes=1)(params, images, extra,
                                                      jax.random.split(key, num_policies))
            return logits.reshape(-1, logits.shape[-1])
        return apply

    def run(params, x01, key):
        return rollout(policies(params), x01, key, mode=mode, num_steps=num_steps,
                       mean=mean_arr, std=std_arr, cutout_size=cutout_size,
                       move_pixels=move_pixels)

    def init(key, batch):
        target_key, disc_key, policy_key = jax.random.split(key, 3)
        images = batch["image"]
        target = init_target(target_key, images, model, optimizer)
        extra = jnp.zeros((images.shape[0], 0 if mode == "transform" else 2), images.dtype)
        params = jax.vmap(lambda k: net.init(k, images, extra)["params"])(
            jax.random.split(policy_key, num_policies))
        variables = disc.init(disc_key, images, train=False)
        return AdaTransformState(
            step=jnp.zeros((), jnp.int32), target=target,
            policy=NetworkState(params, {}, policy_optimizer.init(params)),
            disc=NetworkState(variables["params"], variables["batch_stats"],
                              disc_optimizer.init(variables["params"])),
            skipped=jnp.zeros((), jnp.int32))

    def episode_rewards(state, roll, labels):
        """Rewards [E, P, K] of the E x P episodes, and the losses [K + 1, E, P], from one target
        forward over all their images."""
        shape = roll.images.shape  # [K + 1, E * P, H, W, C]
        flat = roll.images.reshape(-1, *shape[2:])
        logits = predict_target(model, state.target, flat)
        losses = target_loss(logits, jnp.tile(labels, shape[0]))
        losses = losses.reshape(shape[0], -1, num_policies)
        competitive = roll.images.reshape(shape[0], -1, num_policies, *shape[2:])[:, :, 0]
        d_vars = {"params": state.disc.params, "batch_stats": state.disc.batch_stats}
        log_d = log_realness(disc.apply(d_vars, competitive.reshape(-1, *shape[2:]),
                                        train=False)).reshape(shape[0], -1)
        values = [episode_values(losses[..., 0], log_d, disc_weight=disc_weight)]
        if cooperative_test:
            values.append(episode_values(losses[..., 1], cooperative=True))
        return jnp.stack([step_rewards(v) for v in values], axis=1), losses

    def policy_loss(params, roll, rewards):
        log_p, logits = action_log_probs(policies(params), roll)
        log_p = log_p.reshape(-1, num_policies, num_steps)
        entropy = categorical_entropy(logits)  # every decision of both policies
        # The bonus, on the mean entropy of all decisions, is added once (with the first term).
        terms = [reinforce_terms(log_p[:, p], rewards[:, p], gamma,
                                 entropy=entropy if p == 0 else None, entropy_weight=entropy_weight)
                 for p in range(num_policies)]
        competitive = entropy.reshape(-1, num_policies)[:, 0]
        return sum(terms), {"policy_entropy": jnp.mean(competitive)}

    def target_objective(params, batch_stats, mixed, clean, labels, active, key):
        """N's loss (eq. 3.4): CE of the mixed batch + clean_weight x CE of the clean batch, in
        one forward (one set of BatchNorm statistics) when clean_weight > 0; once inactive, the
        CE of the clean batch alone (mixed is then the clean batch)."""
        images = jnp.concatenate([mixed, clean]) if clean_weight > 0 else mixed
        logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, images,
                                      train=True, rngs=model_rngs(key), mutable=["batch_stats"])
        per_image = target_loss(logits, jnp.tile(labels, images.shape[0] // labels.shape[0]))
        n = labels.shape[0]
        loss = jnp.mean(per_image[:n])
        if clean_weight > 0:
            clean_loss = jnp.mean(per_image[n:])
            loss = jnp.where(active, loss + clean_weight * clean_loss, clean_loss)
        accuracy = jnp.mean(jnp.argmax(logits[:n], -1) == labels)
        return loss, {"batch_stats": updates["batch_stats"], "loss": loss, "accuracy": accuracy}

    def step(state, batch, key):
        images, labels = batch["image"], batch["label"]
        roll_key, target_key, mix_key = jax.random.split(key, 3)
        # Episodes laid out [B, s, P]: image b's sample j under policy p is (b s + j) P + p.
        copies = samples * num_policies
        x01 = jnp.repeat(images * std_arr + mean_arr, copies, axis=0)
        roll = run(state.policy.params, x01, roll_key)
        rewards, losses = episode_rewards(state, roll, jnp.repeat(labels, copies))
        # D and the target see each image's first competitive x_K: the batch keeps its size.
        transformed = roll.images[-1].reshape(-1, copies, *images.shape[1:])[:, 0]
        active = jnp.asarray(True) if stop_step is None else state.step < stop_step
        mixed, mask = mix_batch(mix_key, transformed, images, apply_prob, active)
        policy, policy_aux, policy_ok = gradient_update(state.policy, policy_loss,
                                                        policy_optimizer, roll, rewards)
        disc_state, d_aux, disc_ok = gradient_update(
            state.disc, discriminator_objective, disc_optimizer, state.disc.batch_stats, images,
            transformed, discriminator=disc)
        # T and D move once per update_every steps of N (sec. 3.4.3), after N's update_every-th.
        due = (state.step + 1) % update_every == 0
        policy = keep_if(due, policy, state.policy)
        disc_state = keep_if(due, disc_state, state.disc)
        target, aux, target_ok = gradient_update(state.target, target_objective, optimizer,
                                                 state.target.batch_stats, mixed, images, labels,
                                                 active, target_key)
        skipped = count_skips(~due | policy_ok, ~due | disc_ok, target_ok)
        episode_reward = jnp.mean(jnp.sum(rewards, axis=-1), axis=0)  # [P]
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"],
                   "policy_entropy": policy_aux["policy_entropy"],
                   "reward": episode_reward[0], "augmented": jnp.mean(mask),
                   "loss_gain": jnp.mean(losses[-1, :, 0] - losses[0, :, 0]),
                   "skipped": skipped.astype(jnp.float32), "d_loss": d_aux["loss"],
                   **{k: d_aux[k] for k in ("d_real", "d_fake", "d_accuracy")}}
        if cooperative_test:
            metrics["coop_reward"] = episode_reward[1]
        new = state.replace(step=state.step + 1, target=target, policy=policy, disc=disc_state,
                            skipped=state.skipped + skipped)
        return new, metrics

    def predict(state, images):
        if cooperative_test:
            cooperative = jax.tree.map(lambda p: p[1], state.policy.params)
            roll = rollout(lambda x, e, _: net.apply({"params": cooperative}, x, e),
                           images * std_arr + mean_arr, jax.random.key(0), mode=mode,
                           num_steps=num_steps, mean=mean_arr, std=std_arr, greedy=True)
            images = roll.images[-1]
        return predict_target(model, state.target, images)

    return Method(init=init, step=step, predict=predict)


@registry.register("adatransform", defaults={
    **registry.keyword_defaults(adatransform, "mode", "num_steps", "samples", "gamma",
                                "disc_weight", "cutout_size", "move_pixels", "apply_prob",
                                "clean_weight", "update_every", "transformer_width", "dropout",
                                "entropy_weight", "cooperative_test"),
    # None: the thesis's value for the mode (THESIS_DEFAULTS).
    "policy_lr": placeholder(float), "policy_weight_decay": placeholder(float),
    "stop_epochs": placeholder(int),
})
def _from_config(settings, context: registry.Context) -> Method:
    """Fields left None take the thesis's value for the mode (`THESIS_DEFAULTS`); the transforms
    stop ``stop_epochs`` before the end, at step (epochs - stop_epochs) x steps per epoch."""
    setting = functools.partial(thesis_default, settings.mode)
    epochs = context.config.epochs
    stop_epochs = setting("stop_epochs", settings.stop_epochs)
    require(0 <= stop_epochs < epochs, "adatransform", "stop_epochs", stop_epochs,
            f"must be in [0, epochs) = [0, {epochs}): the transforms stop that many epochs before "
            "the end")
    mean, std = context.image_stats
    kwargs = {k: v for k, v in settings.items()
              if k not in ("stop_epochs", "policy_lr", "policy_weight_decay")}
    kwargs.update({k: setting(k, settings[k]) for k in ("num_steps", "apply_prob", "clean_weight")})
    return adatransform(
        context.model, context.optimizer, mean=mean, std=std,
        stop_step=(epochs - stop_epochs) * context.steps_per_epoch if stop_epochs else None,
        policy_optimizer=make_policy_optimizer(
            setting("policy_lr", settings.policy_lr),
            setting("policy_weight_decay", settings.policy_weight_decay)),
        target_loss=context.target_loss, **kwargs)
