"""OnlineAugment (Tang et al., ECCV 2020): generators trained jointly with the target network.

One iteration on a batch with labels y, as the reference code runs it (Tang thesis, sec. 4.3: the
target theta and the generators phi updated alternately; the official training loops): the
generators G_1..G_n (one, or all three for the papers' "Comb.") read x, the normalized image
*before* the standard augmentation, and only the clean branch gets it (x_aug: crop, flip, the
policy, Cutout). The method's batches are in [0, 1], as every method's; given the dataset's
``normalization`` (the config path passes it), the generators read and write the normalized
space, as in the papers (A-STN's zero padding is then the dataset mean, and the regularizers
and ``generated_distance`` are in normalized units), and their images are mapped back to [0, 1]
before the target, which normalizes as its first operation, reads them:

  repeat inner_num times, with fresh generator noise each time:
    x_i, y_i, R_i = G_i(phi_i; x, y)                     # generated batch and its regularizer
    the target sees every x_i through gradient_reversal(., beta_i) on BatchNorm set i;
    L(theta, phi) = CE(x_1..x_n) + sum_i R_i(phi_i) [+ L_meta(phi)]
    theta <- SGD(clip(grad_theta L)),  phi <- Adam(grad_phi L)
  then one clean update, a supervised step on x_aug with BatchNorm set 0:
    theta <- SGD(clip(grad_theta CE(x_aug)))

clip(g) = g min(1, grad_clip / ||g||) with the global norm, grad_clip = 5 by default (the
reference's ``--grad_clip``; it clips the loss gradient, before the optimizer adds weight decay).
One backward pass gives both gradients of a generated update: the target receives dCE/dtheta,
while the reversal flips the cotangent reaching x_i, so generator i receives
-beta_i dCE/dphi_i + dR_i/dphi_i (+ dL_meta/dphi_i): it minimises L_meta + R_i - beta_i CE(x_i),
the papers' total objective. So a step makes inner_num + 1 target updates, each at full weight.

Merging the clean update into the last generated one (one call, one target update fewer) was
not faster on CPU (docs/benchmarks.md), so there is no such option. One departure is left: for
Comb. the reference updates the target inner_num times per generator, one generator after the
other; here every generated update holds all generators' images (each on its own set).

With ``meta=True`` the generators also minimise the meta loss `objectives.meta_loss` (one inner
step at the current learning rate, mode ``meta_mode``; the reference defines it but its released
training loops do not call it). The thesis computes this meta-gradient with DARTS' second-order
(finite-difference) approximation (sec. 4.3), ``meta_mode="darts"`` (step 0.01 / ||v||; the
reference's unused ``_hessian_vector_product`` defaults to 0.02 / ||v||); the default
``"exact"`` differentiates through the inner step instead, which that approximation estimates.
With no validation split, its x_tr and x_val are the even and
odd positions of the generators' batch x (positions, not halves, so that every device keeps its
own shard): the inner step trains on the generated x_tr, and the loss is measured on the clean
x_val. The target still trains on the whole batch.

To look at what a generator learned, ``method.generate(state, images, key, generator=0)`` (an
`OnlineAugmentMethod`) samples it the way the step does.

Metrics: "loss", "accuracy" and "grad_norm" (before clipping) of the clean update;
"generated_loss", "regularizer", "meta" and "generated_distance" (`generated_distance`, how far
the generators moved the images) of the last generated one. Outside the trainer, a
batch without ``batch[UNAUGMENTED]`` gives the generators ``batch["image"]``. A non-finite loss
or gradient skips that update (states unchanged) and counts it in ``state.skipped`` and the
metrics.
"""

import dataclasses
from collections.abc import Callable, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxaug import generators, models, objectives
from jaxaug.methods import registry
from jaxaug.methods.base import (
    UNAUGMENTED,
    InvalidArgument,
    Method,
    TargetState,
    all_finite,
    check_int,
    clip_by_global_norm,
    count_skips,
    gradient_update,
    init_target,
    keep_if,
    predict_target,
    require,
)


@flax.struct.dataclass
class GeneratorState:
    params: tuple  # one entry per generator
    batch_stats: tuple
    opt_state: optax.OptState


@flax.struct.dataclass
class OnlineAugmentState:
    step: jax.Array
    target: TargetState
    generator: GeneratorState
    skipped: jax.Array  # updates skipped for non-finite values, cumulative


@dataclasses.dataclass(frozen=True)
class OnlineAugmentMethod(Method):
    """A `Method` that can also show its generators' work: ``generate(state, images, key,
    generator=0) -> images`` (see `online_augment`)."""

    generate: Callable = dataclasses.field(kw_only=True)


@dataclasses.dataclass(frozen=True)
class Generator:
    """A generator, its adversarial weight ``beta``, and how it augments: ``augment(outputs,
    images, labels) -> (images_aug, labels_aug, regularizer)`` from the module's outputs."""

    module: nn.Module
    augment: Callable
    beta: float


def astn(beta: float = 0.1, cycle_weight: float = 0.1, align_corners: bool = True,
         **module_kwargs) -> Generator:
    """A-STN: the doubled batch [T(x), T^-1(x)]; R = cycle_weight * cycle consistency of
    ``generators.cycle_images`` (every warp continuous in theta, grid_sample's zeros padding).
    ``align_corners``: the convention of theta (True, the reference's PyTorch 1.2)."""
    _check_weights("astn", beta=beta, cycle_weight=cycle_weight)

    def augment(theta, images, labels):
        aug, aug_labels, _ = generators.apply_astn(images, theta, labels=labels,
                                                   align_corners=align_corners)
        there_back, back_there = generators.cycle_images(aug, theta, align_corners=align_corners)
        reg = objectives.stn_cycle_consistency(images, there_back, back_there)
        return aug, aug_labels, cycle_weight * reg
    return Generator(generators.ASTN(**module_kwargs), augment, beta)


def deform_vae(beta: float = 1e-2, kl_weight: float = 1.0, smooth_weight: float = 10.0,
               **module_kwargs) -> Generator:
    """D-VAE: R = lambda_v (KL + mean squared offset) + lambda_s smoothness of the offsets."""
    _check_weights("deform_vae", beta=beta, kl_weight=kl_weight, smooth_weight=smooth_weight)

    def augment(out, images, labels):
        del images
        offset = out["grid_offset"]
        reg = kl_weight * (objectives.gaussian_kl(out["mean"], out["logvar"])
                           + objectives.deformation_magnitude(offset))
        reg += smooth_weight * objectives.deformation_smoothness(offset)
        return out["images"], labels, reg
    return Generator(generators.DeformVAE(**module_kwargs), augment, beta)


def perturb_vae(beta: float = 10.0, weight: float = 1e-3, **module_kwargs) -> Generator:
    """P-VAE: R = lambda (reconstruction + KL)."""
    _check_weights("perturb_vae", beta=beta, weight=weight)

    def augment(out, images, labels):
        reg = objectives.reconstruction_loss(out["reconstruction"], images)
        reg += objectives.gaussian_kl(out["mean"], out["logvar"])
        return out["images"], labels, weight * reg
    return Generator(generators.PerturbVAE(**module_kwargs), augment, beta)


GENERATORS = {"astn": astn, "deform_vae": deform_vae, "perturb_vae": perturb_vae}


def default_generator_optimizer() -> optax.GradientTransformation:
    """The generators' optimizer (Tang thesis, sec. 4.5.1: Adam, lr 1e-3, weight decay 1e-4,
    beta_1 0.5, PyTorch's other defaults; the reference's main.py ``--aug_net_lr``,
    ``--aug_net_weight_decay``, ``--adam_beta1``): PyTorch's Adam adds the weight decay to the
    gradient (L2, coupled), not to the update as AdamW does."""
    return optax.chain(optax.add_decayed_weights(1e-4), optax.adam(1e-3, b1=0.5, b2=0.999))


def _check_weights(generator: str, **weights: float) -> None:
    for name, value in weights.items():
        require(0 <= value < float("inf"), generator, name, value, "must be finite and non-negative")


def generator_names(spec: str) -> tuple[str, ...]:
    """Generator names from a config string: one name, a comma-separated list, or ``"comb"`` for
    all three (the papers' Comb.). Raises ``ValueError`` naming an unknown or repeated entry."""
    names = tuple(GENERATORS) if spec == "comb" else tuple(n.strip() for n in spec.split(","))
    for name in names:
        require(name in GENERATORS, "online_augment", "generator", spec,
                f"has an unknown generator {name!r}; valid: {', '.join(GENERATORS)}, a "
                "comma-separated list of them, or 'comb'")
    require(len(set(names)) == len(names), "online_augment", "generator", spec,
            "repeats a generator")
    return names


def online_augment(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    generator: Generator | Sequence[Generator],
    *,
    inner_num: int = 1,
    meta: bool = False,
    meta_mode: str = "exact",
    lr_schedule: Callable = lambda step: 0.1,
    generator_optimizer: optax.GradientTransformation | None = None,
    grad_clip: float | None = 5.0,
    target_loss: objectives.TargetLoss = objectives.softmax_cross_entropy,
    normalization: models.Normalization | None = None,
) -> OnlineAugmentMethod:
    """The OnlineAugment method (see the module docstring) with one generator or several (Comb.).
    ``model`` needs a BatchNorm set for the clean images plus one per generator. ``grad_clip``
    bounds the global norm of the target's gradient in every update (None or 0: no clipping).
    ``generator_optimizer``: None is the reference's, `default_generator_optimizer`.
    ``normalization``: the space the generators work in (see the module docstring); None: the
    batches' own [0, 1].

    The returned method's ``generate(state, images, key, generator=0)`` is what generator number
    ``generator`` (its position in ``generator``) makes of ``images`` [B, H, W, C] in [0, 1]
    with ``key``, in [0, 1], sampled exactly as a generated update samples it from its generator key: in
    training mode (dropout on, BatchNorm on the batch's statistics, which are not kept). A-STN
    gives [T(x), T^-1(x)], 2B images; the VAEs B images."""
    gens = tuple(generator) if isinstance(generator, Sequence) else (generator,)
    if not gens:
        raise ValueError("online_augment: needs at least one generator")
    check_int("online_augment", "inner_num", inner_num, 1)
    require(meta_mode in objectives.meta.MODES, "online_augment", "meta_mode", meta_mode,
            f"must be one of {', '.join(objectives.meta.MODES)}")
    require(grad_clip is None or grad_clip == 0 or 0 < grad_clip < float("inf"), "online_augment",
            "grad_clip", grad_clip, "must be a positive finite number, or 0 or None for no clipping")
    gen_optimizer = generator_optimizer or default_generator_optimizer()
    to_generators = normalization or (lambda images: images)
    to_images = normalization.invert if normalization else (lambda images: images)

    def generate_all(gen_params, gen_stats, images, labels, key):
        """Every generator on the same batch in [0, 1]: their images (a list, in the generators'
        space), labels and BatchNorm sets (concatenated), the summed regularizer and the
        generators' new batch statistics."""
        augs, aug_labels, bn_sets, reg, new_stats = [], [], [], 0.0, []
        images = to_generators(images)
        keys = jax.random.split(key, len(gens))
        for index, (gen, params, stats, k) in enumerate(zip(gens, gen_params, gen_stats, keys)):
            noise, dropout = jax.random.split(k)
            out, updates = gen.module.apply(
                {"params": params, "batch_stats": stats}, images, train=True,
                rngs={"noise": noise, "dropout": dropout}, mutable=["batch_stats"])
            aug, aug_y, r = gen.augment(out, images, labels)
            augs.append(aug)
            aug_labels.append(aug_y)
            bn_sets += [index + 1] * (aug.shape[0] // images.shape[0])
            reg += r
            new_stats.append(updates["batch_stats"])
        return augs, jnp.concatenate(aug_labels), tuple(bn_sets), reg, tuple(new_stats)

    def init(key, batch):
        target_key, *gen_keys = jax.random.split(key, 1 + 2 * len(gens))
        target = init_target(target_key, batch["image"], model, optimizer)
        params, stats = [], []
        for gen, param_key, noise_key in zip(gens, gen_keys[::2], gen_keys[1::2]):
            variables = gen.module.init(
                {"params": param_key, "noise": noise_key, "dropout": noise_key},
                to_generators(batch["image"]), train=False)
            params.append(variables["params"])
            stats.append(variables.get("batch_stats", {}))
        params, stats = tuple(params), tuple(stats)
        gen = GeneratorState(params, stats, gen_optimizer.init(params))
        return OnlineAugmentState(jnp.zeros((), jnp.int32), target, gen, jnp.zeros((), jnp.int32))

    def target_ce(params, batch_stats, images, labels, bn_set, key):
        return objectives.cross_entropy(params, {"image": images, "label": labels}, model=model,
                                        target_loss=target_loss,
                                        batch_stats=batch_stats, key=key, bn_set=bn_set)

    def update(state, x, y, meta_batches, key, lr):
        """One joint update of the target and the generators on the generated batches;
        ``meta_batches`` is the meta loss's (x_tr, x_val) (meta only)."""
        gen_key, target_key, meta_key = jax.random.split(key, 3)
        target, gen = state.target, state.generator

        def loss_fn(params, gen_params):
            augs, aug_y, bn_sets, reg, gen_stats = generate_all(gen_params, gen.batch_stats, x, y,
                                                            gen_key)
            seen = [objectives.gradient_reversal(to_images(a), g.beta) for a, g in zip(augs, gens)]
            ce, aux = target_ce(params, target.batch_stats, jnp.concatenate(seen), aug_y, bn_sets,
                                target_key)
            total = ce + reg
            meta_value = jnp.zeros(())
            if meta:
                meta_value = meta_term(gen_params, params, target.batch_stats, gen.batch_stats,
                                       *meta_batches, gen_key, meta_key, lr)
                total = total + meta_value
            return total, (aux, gen_stats, reg, meta_value, augs)

        (total, (aux, gen_stats, reg, meta_value, augs)), (g_target, g_gen) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True)(target.params, gen.params)
        g_target, grad_norm = clip_by_global_norm(g_target, grad_clip)
        new_target = target.apply_gradients(g_target, aux["batch_stats"], optimizer)
        updates, opt_state = gen_optimizer.update(g_gen, gen.opt_state, gen.params)
        new_gen = GeneratorState(optax.apply_updates(gen.params, updates), gen_stats, opt_state)
        ok = all_finite((total, augs, g_target, g_gen))
        skipped = count_skips(ok)
        state = state.replace(target=keep_if(ok, new_target, target),
                              generator=keep_if(ok, new_gen, gen),
                              skipped=state.skipped + skipped)
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"], "regularizer": reg,
                   "meta": meta_value, "grad_norm": grad_norm, "skipped": skipped.astype(jnp.float32),
                   "generated_distance": generated_distance(augs, to_generators(x))}
        return state, metrics

    def clean_update(state, batch, key):
        """The supervised step on the standard-augmented batch, BatchNorm set 0, clipped."""
        target, aux, ok = gradient_update(
            state.target, objectives.cross_entropy, optimizer, batch, model=model,
            target_loss=target_loss,
            batch_stats=state.target.batch_stats, key=key, grad_clip=grad_clip)
        skipped = count_skips(ok)
        state = state.replace(target=target, skipped=state.skipped + skipped)
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"], "grad_norm": aux["grad_norm"],
                   "skipped": skipped.astype(jnp.float32)}
        return state, metrics

    def meta_term(gen_params, params, batch_stats, gen_stats, train, val, gen_key, key, lr):
        def inner_loss(theta, phi, batch):
            augs, aug_y, bn_sets, _, _ = generate_all(phi, gen_stats, batch["image"],
                                                      batch["label"], gen_key)
            return target_ce(theta, batch_stats, to_images(jnp.concatenate(augs)), aug_y, bn_sets,
                             key)

        def outer_loss(theta, batch):
            return target_ce(theta, batch_stats, batch["image"], batch["label"], 0, key)

        train = jax.tree.map(lambda a: a[None], train)  # K = 1 inner step
        loss, _ = objectives.meta_loss(gen_params, params, train, val, inner_loss=inner_loss,
                                       outer_loss=outer_loss, lr=lr, mode=meta_mode)
        return loss

    def step(state, batch, key):
        images, labels = batch.get(UNAUGMENTED, batch["image"]), batch["label"]
        clean = {"image": batch["image"], "label": labels}
        meta_batches = None
        if meta:
            pairs = jax.tree.map(lambda a: a.reshape(-1, 2, *a.shape[1:]),
                                 {"image": images, "label": labels})
            meta_batches = tuple(jax.tree.map(lambda a, i=i: a[:, i], pairs) for i in (0, 1))
        lr = lr_schedule(state.target.step)
        keys = jax.random.split(key, inner_num + 1)

        # A Python loop, unrolled at trace time: inner_num is small, and a lax.scan over these
        # updates ran about 10x slower per update on CPU (measured with bench/step_cost.py).
        skipped = jnp.zeros(())
        for k in keys[:inner_num]:
            state, metrics = update(state, images, labels, meta_batches, k, lr)
            skipped += metrics["skipped"]
        state, clean_metrics = clean_update(state, clean, keys[inner_num])
        metrics = {**metrics, "generated_loss": metrics["loss"], **clean_metrics}
        metrics["skipped"] += skipped
        return state.replace(step=state.step + 1), metrics

    def predict(state, images):
        return predict_target(model, state.target, images)

    def generate(state, images, key, generator=0):
        if isinstance(generator, bool) or not isinstance(generator, int) or not (
                0 <= generator < len(gens)):
            raise ValueError(f"online_augment.generate: generator must be an index in "
                             f"[0, {len(gens)}), got {generator!r}")
        labels = jnp.zeros(images.shape[:1], jnp.int32)  # the augment functions want labels
        augs, *_ = generate_all(state.generator.params, state.generator.batch_stats, images,
                                labels, key)
        return to_images(augs[generator])

    return OnlineAugmentMethod(init=init, step=step, predict=predict, generate=generate,
                               unaugmented_input=True)


def generated_distance(generated: Sequence[jax.Array], images: jax.Array) -> jax.Array:
    """How far the generators moved the images: the mean over generators of mean |G_i(x) - x|
    (in the units of ``images``; a generator that returns several images per input, as A-STN's
    [T(x), T^-1(x)], is compared image by image with the input repeated). 0 at the identity:
    the diagnosis of a generator that never left it."""
    def one(g):
        return jnp.mean(jnp.abs(g - jnp.tile(images, (g.shape[0] // images.shape[0], 1, 1, 1))))
    return jax.lax.stop_gradient(sum(one(g) for g in generated) / len(generated))


# The config fields of each generator: its adversarial weight and its regularizer weights.
_WEIGHTS = {"astn": ("beta", "cycle_weight"), "deform_vae": ("beta", "kl_weight", "smooth_weight"),
            "perturb_vae": ("beta", "weight")}


def _generator_sections() -> dict:
    return {name: registry.keyword_defaults(make, *_WEIGHTS[name]) for name, make in GENERATORS.items()}


@registry.register(
    "online_augment",
    defaults={"generator": "astn", **registry.keyword_defaults(
        online_augment, "inner_num", "meta", "meta_mode", "grad_clip"), **_generator_sections()},
    updates_per_step=lambda settings: settings.inner_num + 1,
)
def _from_config(settings, context: registry.Context) -> Method:
    """``settings.generator`` names one generator, a comma-separated list or "comb"; each
    generator's weights come from its subsection. The model needs one BatchNorm set per
    generator besides the clean one, and the meta-gradient's (train, validation) pairs must not
    straddle devices."""
    names = generator_names(settings.generator)
    config = context.config
    if config.num_bn_sets < 1 + len(names):
        raise ValueError(f"Invalid config.num_bn_sets={config.num_bn_sets}: online_augment with "
                         f"{len(names)} generator(s) needs {1 + len(names)} (clean + one per "
                         "generator)")
    if settings.meta and config.batch_size % (2 * context.device_count):
        raise ValueError(f"Invalid config.batch_size={config.batch_size}: must split into (train, "
                         f"validation) pairs on every one of the {context.device_count} devices "
                         "when online_augment.meta is on")
    gens = []
    for name in names:
        try:
            gens.append(GENERATORS[name](**settings[name]))
        except InvalidArgument as e:
            raise InvalidArgument("online_augment", f"{name}.{e.argument}", e.value, e.why) from e
    return online_augment(context.model, context.optimizer, gens, inner_num=settings.inner_num,
                          meta=settings.meta, meta_mode=settings.meta_mode,
                          lr_schedule=context.lr_schedule, grad_clip=settings.grad_clip,
                          target_loss=context.target_loss, normalization=context.normalization)
