"""AdaTransform (Tang et al., ICCV 2019; Tang's thesis, ch. 3, cited by section): a transformer
network T picks data transformations step by step, rewarded by the target network's loss, with a
discriminator keeping them realistic.

The MDP. A state is the current image x_{t-1} (for the box modes, also the box position); an
action a_t ~ pi_T(. | x_{t-1}) = Categorical(softmax T(x_{t-1})) is one meta-transformation,
and x_t is x_0 transformed by a_1..a_t. An episode has K steps; the action sets (``mode``
"transform", "cutout", "erasing") and their rendering are `jaxaug.policies.episodes`.

Rewards (`jaxaug.objectives.adatransform`): r_t = v(x_t) - v(x_{t-1}) with the competitive
v(x) = l(x) + lambda log D(x) (l the target's per-image loss, D the discriminator) or the
cooperative v(x) = -l(x); discounted returns (gamma = 0.5, eq. 3.8), a batch-mean baseline per
step (eq. 3.9), and T minimises the REINFORCE surrogate -mean (R_t - b_t) log pi_T(a_t | x_{t-1}).

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
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from ml_collections.config_dict import placeholder

from jaxaug.methods import registry
from jaxaug.methods.base import (
    Method,
    NetworkState,
    TargetState,
    check_int,
    count_skips,
    gradient_update,
    init_target,
    keep_if,
    predict_target,
    require,
)
from jaxaug.models.discriminator import Discriminator
from jaxaug.models.normalized import Normalized
from jaxaug.models.transformer_net import TransformerNet
from jaxaug.objectives import (
    TargetLoss,
    discriminator_objective,
    log_realness,
    softmax_cross_entropy,
)
from jaxaug.objectives.adatransform import episode_values, reinforce_terms, step_rewards
from jaxaug.objectives.classification import hard_labels, model_rngs
from jaxaug.objectives.reinforce import categorical_entropy
from jaxaug.policies.episodes import (
    MODES,
    action_log_probs,
    num_actions,
    rollout,
)


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
    ``images`` in [0, 1], dropout off; for the box modes ``extra`` are the box centres (default:
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
    discriminator: nn.Module | None = None,
    fill: float | tuple[float, ...] = 0.0,
    policy_optimizer: optax.GradientTransformation | None = None,
    disc_optimizer: optax.GradientTransformation | None = None,
    cooperative_test: bool | None = None,
    entropy_weight: float = 0.0,
    target_loss: TargetLoss = softmax_cross_entropy,
) -> Method:
    """AdaTransform / AdaCutout / AdaErasing (see the module docstring) for the target ``model``
    trained by ``optimizer``, on batches in [0, 1]. ``num_steps`` K, ``samples`` s episodes per image,
    ``gamma`` the discount, ``disc_weight`` lambda. N's batch: each image transformed with
    probability ``apply_prob``, plus ``clean_weight`` x the clean batch's loss, until step
    ``stop_step`` (None: never), from which N trains on the clean batch alone. T and D update
    on every ``update_every``-th step. T: `TransformerNet` of width ``transformer_width`` and
    dropout rate ``dropout``, or ``transformer``, a module with its interface; D:
    `models.Discriminator` or ``discriminator`` (the config path wraps both in the dataset's
    `models.Normalized`, as the target). ``fill``: the Cutout square's colour and that of pixels
    warped in from outside (a scalar or one value per channel; the config path: the dataset
    mean).
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
    net = transformer or TransformerNet(num_actions(mode), transformer_width, dropout)
    disc = discriminator or Discriminator()
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
                       fill=fill, cutout_size=cutout_size,
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
        losses = target_loss(logits, jnp.concatenate([labels] * shape[0]))
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
        copies = images.shape[0] // labels.shape[0]
        per_image = target_loss(logits, jnp.concatenate([labels] * copies))
        n = labels.shape[0]
        loss = jnp.mean(per_image[:n])
        if clean_weight > 0:
            clean_loss = jnp.mean(per_image[n:])
            loss = jnp.where(active, loss + clean_weight * clean_loss, clean_loss)
        accuracy = jnp.mean(jnp.argmax(logits[:n], -1) == hard_labels(labels))
        return loss, {"batch_stats": updates["batch_stats"], "loss": loss, "accuracy": accuracy}

    def step(state, batch, key):
        images, labels = batch["image"], batch["label"]
        roll_key, target_key, mix_key = jax.random.split(key, 3)
        # Episodes laid out [B, s, P]: image b's sample j under policy p is (b s + j) P + p.
        copies = samples * num_policies
        roll = run(state.policy.params, jnp.repeat(images, copies, axis=0), roll_key)
        rewards, losses = episode_rewards(state, roll, jnp.repeat(labels, copies, axis=0))
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
                           images, jax.random.key(0), mode=mode, num_steps=num_steps,
                           fill=fill, greedy=True)
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
    kwargs = {k: v for k, v in settings.items()
              if k not in ("stop_epochs", "policy_lr", "policy_weight_decay")}
    kwargs.update({k: setting(k, settings[k]) for k in ("num_steps", "apply_prob", "clean_weight")})
    normalization = context.normalization
    transformer = TransformerNet(num_actions(settings.mode), settings.transformer_width,
                                 settings.dropout)
    return adatransform(
        context.model, context.optimizer, fill=normalization.mean,
        transformer=Normalized(transformer, normalization),
        discriminator=Normalized(Discriminator(), normalization),
        stop_step=(epochs - stop_epochs) * context.steps_per_epoch if stop_epochs else None,
        policy_optimizer=make_policy_optimizer(
            setting("policy_lr", settings.policy_lr),
            setting("policy_weight_decay", settings.policy_weight_decay)),
        target_loss=context.target_loss, **kwargs)
