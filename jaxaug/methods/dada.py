"""Differentiable augmentation-policy search: DADA (Li et al., "DADA: Differentiable Automatic
Data Augmentation", ECCV 2020, arXiv 2003.03780, sec. 3) with Faster AutoAugment's policy
structure (Hataya et al., ECCV 2020, sec. 3), then training on the searched policy.

The policy phi: N_s sub-policies of T = 2 stages over the 15 ops of DADA's search space
(AutoAugment's without sample pairing, `OPS`); stage t of sub-policy s holds, for every op o,
an op logit alpha_sto, a probability p_sto in [0, 1] and a magnitude m_sto in [0, 1] (Faster
AutoAugment keeps a probability and a magnitude per op of each stage). Initialization as DADA's
code (``VDIGPKU/DADA``, ``search_relax/model_search.py``): uniform op weights, p = m = 1/2.

Relaxed augmentation of an image x (the search): a sub-policy s uniform (one per image), then,
stage by stage, with temperature tau (DADA's 0.5),

  op choice, Gumbel-softmax, straight-through:  y = softmax((alpha_st + g) / tau), g ~ Gumbel,
      h = onehot(argmax y) + y - stop(y)            (forward one-hot, gradient of y)
  application, relaxed Bernoulli, straight-through: z = logit(p_st,o*) + logit(u), u ~ U(0, 1),
      b = [z > 0] + sigma(z / tau) - stop(sigma(z / tau)),   o* = argmax y
  x_t = b sum_o h_o A_o(x_{t-1}; v_o(m_sto)) + (1 - b) x_{t-1}.

At the forward value h is one-hot and b is 0 or 1, so x_t is the hard op, applied or not
(`relaxed_stage`; tested against `jaxaug.policies.apply_steps`); the gradient reaches every op
logit through y, p through sigma and the magnitudes through A_o. Each op's parameter v_o(m)
interpolates its AutoAugment level mapping (`jaxaug.policies.level_to_arg`) linearly between
levels 0 and 10, with a random sign for rotate / shear / translate, so m = l / 10 is level l
(exactly for the geometric and enhance ops; within the reference's integer truncation for
solarize, posterize and cutout). The gradient in m is the op's own where the op is smooth in its
parameter (the geometric ops, resampled bilinearly during the search, and the four enhance
blends); where it is not (solarize, posterize, cutout) it is the straight-through estimator of
both papers' code, A + m - stop(m) (d A / d m = 1 per pixel); auto_contrast, equalize and invert
have no magnitude. The 8-bit point ops pass the image gradient through unchanged
(``straight_through``), so the second stage's gradient reaches the first stage.

The search is bilevel (DADA sec. 3.3, after DARTS): with the current target theta and its
learning rate eta, the policy minimises the clean validation loss after one training step on
relaxed-augmented images,

  min_phi L_val(theta - eta grad_theta L_tr(theta, phi)),

its gradient by `jaxaug.objectives.meta_loss` (``meta_mode``: DARTS' finite-difference
Hessian-vector product by default, DADA's ``--unrolled`` with step 0.01; ``"exact"`` through
the update), taken in the augmented training images and pulled back through the policy (phi
enters only through them). Each step's batch splits by position into training (even) and
validation (odd) images, as OnlineAugment's meta loss does: a per-batch split of the "small
split" DADA searches on (reduced CIFAR-10, halves). Per step: the policy takes one Adam step (DADA: lr 0.005, betas
(0.5, 0.999), no weight decay), p and m are clipped to [0, 1]; then the target takes its step on
the whole batch augmented by the updated policy (sampled, hard forward), Cutout after the
policy, its gradient clipped at global norm 5 (``grad_clip``; DADA's ``train_search.py`` clips
before its SGD step). The "train" stage is the trainer's plain step, unclipped like the
baselines it is compared with (DADA trains its searched policy with Fast AutoAugment's
``train.py``, which clips at 5 too). DADA's RELAX estimator for p and the sub-policy choice (with its learned control
variate) is not implemented: this is the straight-through Gumbel-softmax relaxation (its
``search_gumbel`` variant); DADA's inner step also has momentum and weight decay, here plain
SGD; and its code drops the factor eta of the implicit gradient (no difference under Adam).
The policy's structure is Faster AutoAugment's, not DADA's: DADA draws one of the 105 fixed op
pairs (a categorical over sub-policies, with p and m per pair and op) once per batch and exports
its 25 most likely pairs; here every image draws a sub-policy, and each of its stages chooses its
op (25 sub-policies by default, the size of the exported table). The searching target trains on
the whole batch (DADA's on the training half only).

Stages: ``"search"`` for ``search_epochs`` (DADA: 20 epochs), then ``"train"`` on the searched
policy, hard: per image a sub-policy uniform, each stage the op of largest weight, applied with
its probability at level round(10 m) (nearest resampling): exactly `policies.autoaugment` of the
table `export_table` returns. In one run the searching target goes on training on the searched
policy (the learning-rate schedule runs over the whole run), on the run's data. DADA's own
pipeline is two runs: the search on a small split (``--config.reduced=4000
--config.epochs=20``, ``search_epochs`` = ``epochs``: search only), its export, then a fresh
network on the full data with the table:

  python -m jaxaug.policies.export --workdir=SEARCH_WORKDIR [--out=policy.json]
  python train.py --config=configs/cifar10_wrn.py --config.augment.policy=table:policy.json

The export is JSON ([[op, probability, level], ...] per sub-policy), which
`jaxaug.policies.load_table` reads for ``jaxaug.policies.autoaugment(table)``.
"""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxaug import objectives
from jaxaug.data import augment
from jaxaug.methods import registry
from jaxaug.methods.base import (
    NetworkState,
    StagedMethod,
    TargetState,
    all_finite,
    check_int,
    count_skips,
    gradient_update,
    init_target,
    keep_if,
    predict_target,
    require,
)
from jaxaug.objectives.meta import MODES
from jaxaug.policies import apply, levels
from jaxaug.policies.policy import _signed_values, _value_table
from jaxaug.policies.tables import OP_NAMES

#: DADA's 15 ops: AutoAugment's without sample pairing.
OPS = OP_NAMES[:15]
#: Ops whose parameter enters smoothly (bilinear warps, enhance blends): their own gradient.
SMOOTH_OPS = apply.GEOMETRIC_OPS + apply.BLEND_OPS
#: Ops without a magnitude.
MAGNITUDE_FREE_OPS = ("auto_contrast", "equalize", "invert")
#: The policy's Adam (DADA's ``arch_learning_rate`` 0.005, betas (0.5, 0.999)).
POLICY_LR = 0.005
SEARCH = "search"
TRAIN = "train"


def init_policy(num_sub_policies: int = 25, num_stages: int = 2, num_ops: int = len(OPS)
                ) -> dict:
    """phi: ``logits`` 0 (uniform op weights), ``probability`` and ``magnitude`` 1/2, each
    [num_sub_policies, num_stages, num_ops]."""
    shape = (num_sub_policies, num_stages, num_ops)
    half = jnp.full(shape, 0.5, jnp.float32)  # not weak-typed: the step's updates are not
    return {"logits": jnp.zeros(shape, jnp.float32), "probability": half, "magnitude": half}


@functools.lru_cache(maxsize=8)
def _level_range(op_names: tuple[str, ...], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each op's parameter (positive sign) at level 0 and level 10, [len(op_names)] each."""
    table = _value_table(op_names, (0, levels.VARIANT_MAX_LEVEL["autoaugment"]), image_size,
                         "autoaugment")
    return table[:, 0], table[:, 1]


def op_values(magnitude: jax.Array, image_size: int, op_names: tuple[str, ...] = OPS
              ) -> jax.Array:
    """v_o(m) = v_o(0) + (v_o(10) - v_o(0)) m for every op o of ``op_names`` (last axis),
    positive sign."""
    low, high = (jnp.asarray(x) for x in _level_range(tuple(op_names), image_size))
    return low + (high - low) * magnitude


def relaxed_stage(img, weights, applied, magnitude, sign, center, *, op_names=OPS):
    """One stage of the relaxed policy on one image [H, W, C] in [0, 1]:

        applied * sum_o weights_o A_o(img; sign_o v_o(magnitude_o)) + (1 - applied) img,

    over the ops o of ``op_names`` (default `OPS`): ``weights`` [O] the op weights (one-hot in
    value when straight-through), ``applied`` a scalar in [0, 1], ``magnitude`` [O] in [0, 1],
    ``sign`` [O] of +-1 (used by the signed ops), ``center`` int [2] the cutout square's centre.
    Geometric ops resample bilinearly; solarize, posterize and cutout add m - stop(m)
    (straight-through in m)."""
    values = op_values(magnitude, max(img.shape[:2]), op_names)
    outs = []
    for o, name in enumerate(op_names):
        value = (sign[o] if levels.is_signed(name) else 1.0) * values[o]
        out = apply.apply_steps(None, img, jnp.zeros((1,), jnp.int32), value[None],
                                jnp.ones((1,), bool), op_names=(name,), interpolation="bilinear",
                                straight_through=True, cutout_center=center[None])
        if name not in SMOOTH_OPS + MAGNITUDE_FREE_OPS:
            out = out + (magnitude[o] - jax.lax.stop_gradient(magnitude[o]))
        outs.append(out)
    mixed = jnp.tensordot(weights, jnp.stack(outs), axes=1)
    return applied * mixed + (1.0 - applied) * img


def _straight_through(hard, soft):
    return hard + soft - jax.lax.stop_gradient(soft)


def relaxed_augment(phi, key, img, temperature, *, op_names=OPS):
    """One image through a sub-policy of ``phi`` (over ``op_names``) drawn uniformly, every
    stage relaxed (module docstring): the search's augmentation, differentiable in ``phi``."""
    sub_key, *stage_keys = jax.random.split(key, 1 + phi["logits"].shape[1])
    s = jax.random.randint(sub_key, (), 0, phi["logits"].shape[0])
    for t, k in enumerate(stage_keys):
        gumbel_key, coin_key, sign_key, center_key = jax.random.split(k, 4)
        logits, p, m = (phi[name][s, t] for name in ("logits", "probability", "magnitude"))
        soft = jax.nn.softmax((logits + jax.random.gumbel(gumbel_key, logits.shape)) / temperature)
        hard = jax.nn.one_hot(jnp.argmax(soft), len(op_names))
        eps = 1e-6
        chosen_p = jnp.clip(jnp.sum(jax.lax.stop_gradient(hard) * p), eps, 1 - eps)
        u = jax.random.uniform(coin_key, (), minval=eps, maxval=1 - eps)
        z = jnp.log(chosen_p) - jnp.log1p(-chosen_p) + jnp.log(u) - jnp.log1p(-u)
        applied = _straight_through((z > 0).astype(jnp.float32), jax.nn.sigmoid(z / temperature))
        sign = jnp.where(jax.random.bernoulli(sign_key, 0.5, (len(op_names),)), -1.0, 1.0)
        center = jax.random.randint(center_key, (2,), 0, jnp.asarray(img.shape[:2]))
        img = relaxed_stage(img, _straight_through(hard, soft), applied, m, sign, center,
                            op_names=op_names)
    return img


def hard_steps(phi, key, image_size: int, *, op_names=OPS):
    """The searched policy's draw for one image, as `jaxaug.policies.autoaugment` of
    `export_table` (phi) samples it: ``(op_index, value, applied)`` [T] each, op_index into
    ``op_names``: a sub-policy uniform, each stage its op of largest logit, applied with that op's
    probability, at level round(10 m), signed ops negated with probability 1/2."""
    sub_key, apply_key, sign_key = jax.random.split(key, 3)
    s = jax.random.randint(sub_key, (), 0, phi["logits"].shape[0])
    op_index = jnp.argmax(phi["logits"][s], -1)
    rows = jnp.arange(op_index.shape[0])
    probability = phi["probability"][s][rows, op_index]
    level = jnp.round(10 * phi["magnitude"][s][rows, op_index]).astype(jnp.int32)
    values = jnp.asarray(_value_table(op_names, tuple(range(11)), image_size, "autoaugment"))
    applied = jax.random.uniform(apply_key, op_index.shape) < probability
    value = _signed_values(sign_key, op_index, values[op_index, level], op_names, "autoaugment")
    return op_index, value, applied


def hard_augment(phi, key, img, *, op_names=OPS):
    """One image through the searched policy, hard (`hard_steps`, nearest resampling)."""
    steps_key, cutout_key = jax.random.split(key)
    op_index, value, applied = hard_steps(phi, steps_key, max(img.shape[:2]), op_names=op_names)
    return apply.apply_steps(cutout_key, img, op_index, value, applied, op_names=op_names)


def export_table(phi, op_names=OPS) -> tuple:
    """The searched policy as an AutoAugment table (`jaxaug.policies.tables`): per sub-policy,
    per stage, (op of largest logit, its probability, level round(10 m)); host-side."""
    phi = jax.device_get(phi)
    table = []
    for logits, probability, magnitude in zip(phi["logits"], phi["probability"],
                                              phi["magnitude"]):
        ops = np.argmax(logits, -1)
        table.append(tuple(
            (op_names[o], float(np.clip(probability[t, o], 0, 1)),
             int(np.round(10 * np.clip(magnitude[t, o], 0, 1)))) for t, o in enumerate(ops)))
    return tuple(table)


@flax.struct.dataclass
class DadaState:
    step: jax.Array
    target: TargetState
    policy: NetworkState
    skipped: jax.Array


def _augment_batch(augment_one, key, images, cutout, cutout_fill):
    keys = jax.random.split(key, images.shape[0])
    out = jax.vmap(augment_one)(keys, images)
    return augment.cutout(jax.random.fold_in(key, 1), out, cutout, cutout_fill)


def dada(
    model,
    optimizer: optax.GradientTransformation,
    *,
    lr_schedule: optax.Schedule,
    num_sub_policies: int = 25,
    num_stages: int = 2,
    op_names: tuple[str, ...] = OPS,
    temperature: float = 0.5,
    meta_mode: str = "darts",
    policy_optimizer: optax.GradientTransformation | None = None,
    grad_clip: float | None = 5.0,
    cutout: int = 0,
    cutout_fill: float | tuple[float, ...] = 0.0,
    target_loss: objectives.TargetLoss = objectives.softmax_cross_entropy,
) -> StagedMethod:
    """The method above on batches in [0, 1] (of even size: (train, validation) pairs):
    stages `SEARCH` and `TRAIN`. ``lr_schedule`` gives the inner step's learning rate (the
    target's current one); ``op_names`` the search space (default DADA's `OPS`; any ops of
    `jaxaug.policies.tables.OP_NAMES` but sample pairing); ``policy_optimizer`` defaults to DADA's Adam(0.005, b1 0.5).
    ``grad_clip``: the global-norm clip of the search's target step (DADA's ``--grad_clip`` 5,
    ``clip_grad_norm_`` before its SGD step; None or 0: none).
    Metrics of the search: ``loss``, ``accuracy``, ``grad_norm`` of the target step, ``meta``
    (the validation loss after the inner step), ``policy_entropy`` (mean op-choice entropy of a
    stage over its log(number of ops): 1 at the uniform start), ``probability`` and ``magnitude`` (means of the
    chosen ops'), ``skipped``."""
    check_int("dada", "num_sub_policies", num_sub_policies, 1)
    check_int("dada", "num_stages", num_stages, 1)
    check_int("dada", "cutout", cutout, 0)
    require(0 < temperature < float("inf"), "dada", "temperature", temperature,
            "must be positive and finite")
    require(meta_mode in MODES, "dada", "meta_mode", meta_mode,
            f"must be one of {', '.join(MODES)}")
    require(grad_clip is None or grad_clip == 0 or 0 < grad_clip < float("inf"), "dada",
            "grad_clip", grad_clip, "must be a positive finite number, or 0 or None for no clipping")
    op_names = apply.check_vocabulary(tuple(op_names))
    policy_optimizer = policy_optimizer or optax.adam(POLICY_LR, b1=0.5, b2=0.999)
    augment_batch = functools.partial(_augment_batch, cutout=cutout, cutout_fill=cutout_fill)

    def init(key, batch):
        phi = init_policy(num_sub_policies, num_stages, len(op_names))
        return DadaState(jnp.zeros((), jnp.int32),
                         init_target(key, batch["image"], model, optimizer),
                         NetworkState(phi, {}, policy_optimizer.init(phi)),
                         jnp.zeros((), jnp.int32))

    def ce(params, batch_stats, images, labels, key):
        return objectives.cross_entropy(params, {"image": images, "label": labels}, model=model,
                                        batch_stats=batch_stats, key=key, target_loss=target_loss)

    def search_step(state, batch, key):
        policy_key, meta_key, augment_key, model_key = jax.random.split(key, 4)
        target, policy = state.target, state.policy
        pairs = jax.tree.map(lambda a: a.reshape(-1, 2, *a.shape[1:]),
                             {"image": batch["image"], "label": batch["label"]})
        train, val = (jax.tree.map(lambda a, i=i: a[:, i], pairs) for i in (0, 1))

        # phi reaches the meta loss only through the augmented training images: the meta loss
        # is differentiated in those images and pulled back through the policy once (the chain
        # rule), not through the policy in each of DARTS' three inner-loss evaluations.
        augmented, pullback = jax.vjp(lambda phi: augment_batch(
            lambda k, x: relaxed_augment(phi, k, x, temperature, op_names=op_names),
            policy_key, train["image"]), policy.params)

        def inner_loss(theta, images, b):
            return ce(theta, target.batch_stats, images, b["label"], meta_key)

        def outer_loss(theta, b):
            return ce(theta, target.batch_stats, b["image"], b["label"], meta_key)

        (meta, _), image_grads = jax.value_and_grad(objectives.meta_loss, has_aux=True)(
            augmented, target.params, {"label": train["label"][None]}, val,
            inner_loss=inner_loss, outer_loss=outer_loss, lr=lr_schedule(target.step),
            mode=meta_mode)
        (grads,) = pullback(image_grads)
        updates, opt_state = policy_optimizer.update(grads, policy.opt_state, policy.params)
        phi = optax.apply_updates(policy.params, updates)
        phi = {**phi, "probability": jnp.clip(phi["probability"], 0, 1),
               "magnitude": jnp.clip(phi["magnitude"], 0, 1)}
        policy_ok = all_finite((meta, grads))
        new_policy = keep_if(policy_ok, NetworkState(phi, {}, opt_state), policy)

        sampled = jax.lax.stop_gradient(new_policy.params)
        images = augment_batch(
            lambda k, x: relaxed_augment(sampled, k, x, temperature, op_names=op_names),
            augment_key, batch["image"])
        new_target, aux, target_ok = gradient_update(
            target, objectives.cross_entropy, optimizer, {**batch, "image": images}, model=model,
            batch_stats=target.batch_stats, key=model_key, target_loss=target_loss,
            grad_clip=grad_clip)
        skipped = count_skips(policy_ok, target_ok)
        probs = jax.nn.softmax(sampled["logits"])
        entropy = -jnp.sum(probs * jnp.log(probs), -1).mean() / jnp.log(len(op_names))
        chosen = jax.nn.one_hot(jnp.argmax(sampled["logits"], -1), len(op_names))
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"], "grad_norm": aux["grad_norm"],
                   "meta": meta, "policy_entropy": entropy,
                   "probability": jnp.sum(chosen * sampled["probability"], -1).mean(),
                   "magnitude": jnp.sum(chosen * sampled["magnitude"], -1).mean(),
                   "skipped": skipped.astype(jnp.float32)}
        return state.replace(step=state.step + 1, target=new_target, policy=new_policy,
                             skipped=state.skipped + skipped), metrics

    def train_step(state, batch, key):
        augment_key, model_key = jax.random.split(key)
        phi = state.policy.params
        images = augment_batch(lambda k, x: hard_augment(phi, k, x, op_names=op_names),
                               augment_key, batch["image"])
        target, aux, ok = gradient_update(
            state.target, objectives.cross_entropy, optimizer, {**batch, "image": images},
            model=model, batch_stats=state.target.batch_stats, key=model_key,
            target_loss=target_loss)
        skipped = count_skips(ok)
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"], "grad_norm": aux["grad_norm"],
                   "skipped": skipped.astype(jnp.float32)}
        return state.replace(step=state.step + 1, target=target,
                             skipped=state.skipped + skipped), metrics

    def predict(state, images):
        return predict_target(model, state.target, images)

    return StagedMethod(init=init, steps={SEARCH: search_step, TRAIN: train_step},
                        predict=predict, applies_cutout=True)


def _stages(settings, config):
    return [(SEARCH, settings.search_epochs), (TRAIN, config.epochs - settings.search_epochs)]


def _validate(settings, config):
    s = settings.search_epochs
    if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= config.epochs:
        raise ValueError(f"Invalid config.dada.search_epochs={s!r}: must be an integer in "
                         f"[1, config.epochs={config.epochs}]")
    if config.augment.policy:
        raise ValueError(f"Invalid config.augment.policy={config.augment.policy!r}: dada "
                         "augments with the policy it searches; set config.augment.policy to ''")


@registry.register("dada", defaults={
    **registry.keyword_defaults(dada, "num_sub_policies", "temperature", "meta_mode", "grad_clip"),
    "policy_lr": POLICY_LR,
    "search_epochs": 20,  # DADA's search on reduced CIFAR-10: 20 epochs
}, stages=_stages, validate=_validate)
def _from_config(settings, context: registry.Context) -> StagedMethod:
    """``config.dada``; ``config.augment.cutout`` comes after the policy, filled with the
    dataset mean. The batch must split into (train, validation) pairs on every device."""
    require(settings.policy_lr > 0, "dada", "policy_lr", settings.policy_lr, "must be positive")
    if context.config.batch_size % (2 * context.device_count):
        raise ValueError(f"Invalid config.batch_size={context.config.batch_size}: dada splits "
                         f"each device's batch into (train, validation) pairs, so it must be a "
                         f"multiple of 2 x {context.device_count} devices")
    return dada(context.model, context.optimizer, lr_schedule=context.lr_schedule,
                num_sub_policies=settings.num_sub_policies, temperature=settings.temperature,
                meta_mode=settings.meta_mode, grad_clip=settings.grad_clip,
                policy_optimizer=optax.adam(settings.policy_lr, b1=0.5, b2=0.999),
                cutout=context.config.augment.cutout, cutout_fill=context.normalization.mean,
                target_loss=context.target_loss)


