"""OnlineAugment (Tang et al., ECCV 2020): a generator trained jointly with the target network.

One iteration on a batch x (already standard-augmented and normalized), labels y:

  repeat inner_num times, with fresh generator noise each time:
    x_g, y_g, R = generator(phi; x_tr, y_tr)          # generated batch and its regularizer
    the target sees x_g through gradient_reversal(., beta) on BatchNorm set 1,
    and, in the last repetition only, the clean x on BatchNorm set 0, in the same call;
    L(theta, phi) = CE(x_g) [+ CE(x)] + R(phi) [+ L_meta(phi)]
    theta <- SGD(grad_theta L),  phi <- Adam(grad_phi L)

One backward pass gives both gradients: the target receives dCE/dtheta, while the reversal flips
the cotangent reaching x_g, so the generator receives -beta dCE(x_g)/dphi + dR/dphi
(+ dL_meta/dphi): it minimises L_meta + R - beta CE(x_g), the papers' total objective. The clean
update of the reference (a separate SGD step after the generated ones) is merged into the last
generated one, so the clean and generated images go through the multi-BN network in one call.

With ``meta=True`` the batch is split into pairs: x_tr (even positions) feeds the generator,
x_val (odd positions) the meta loss `objectives.meta_loss` (one inner step at the current
learning rate, mode ``meta_mode``); positions, not halves, so that every device keeps its own
shard. A non-finite loss or gradient skips that update (states unchanged) and counts it in
``state.skipped`` and the metrics.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxaug import generators, objectives
from jaxaug.methods.base import Method, TargetState, init_target, predict_target
from jaxaug.ops import affine


@flax.struct.dataclass
class GeneratorState:
    params: Any
    batch_stats: Any
    opt_state: optax.OptState


@flax.struct.dataclass
class OnlineAugmentState:
    step: jax.Array
    target: TargetState
    generator: GeneratorState
    skipped: jax.Array  # updates skipped for non-finite values, cumulative


@dataclasses.dataclass(frozen=True)
class Generator:
    """A generator and how it augments: ``augment(outputs, images, labels) -> (images_aug,
    labels_aug, regularizer)`` from the module's outputs."""

    module: nn.Module
    augment: Callable


def _cycle_images(aug, theta):
    """T^-1(T(x)) and T(T^-1(x)) from the doubled batch aug = [T(x), T^-1(x)] of `apply_astn`
    (same sampling: bilinear, fill 0), for the cycle-consistency regularizer."""
    height, width = aug.shape[1:3]
    forward = generators.normalized_to_pixel(theta, height, width)
    inverse = generators.normalized_to_pixel(generators.invert(theta), height, width)
    there, back = jnp.split(aug, 2)

    def warp(x, m):
        return jax.vmap(lambda img, mat: affine(img, mat, fill=0.0))(x, m)

    return warp(there, inverse), warp(back, forward)


def astn(cycle_weight: float = 0.1, **module_kwargs) -> Generator:
    """A-STN: the doubled batch [T(x), T^-1(x)]; R = cycle_weight * cycle consistency."""
    def augment(theta, images, labels):
        aug, aug_labels, _ = generators.apply_astn(images, theta, labels=labels)
        there_back, back_there = _cycle_images(aug, theta)
        reg = objectives.stn_cycle_consistency(images, there_back, back_there)
        return aug, aug_labels, cycle_weight * reg
    return Generator(generators.ASTN(**module_kwargs), augment)


def deform_vae(kl_weight: float = 1.0, smooth_weight: float = 10.0, **module_kwargs) -> Generator:
    """D-VAE: R = lambda_v (KL + mean squared offset) + lambda_s smoothness of the offsets."""
    def augment(out, images, labels):
        del images
        offset = out["grid_offset"]
        reg = kl_weight * (objectives.gaussian_kl(out["mean"], out["logvar"])
                           + objectives.deformation_magnitude(offset))
        reg += smooth_weight * objectives.deformation_smoothness(offset)
        return out["images"], labels, reg
    return Generator(generators.DeformVAE(**module_kwargs), augment)


def perturb_vae(weight: float = 1e-3, **module_kwargs) -> Generator:
    """P-VAE: R = lambda (reconstruction + KL)."""
    def augment(out, images, labels):
        reg = objectives.reconstruction_loss(out["reconstruction"], images)
        reg += objectives.gaussian_kl(out["mean"], out["logvar"])
        return out["images"], labels, weight * reg
    return Generator(generators.PerturbVAE(**module_kwargs), augment)


def _finite(tree):
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def online_augment(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    generator: Generator,
    *,
    beta: float,
    inner_num: int = 1,
    meta: bool = False,
    meta_mode: str = "exact",
    lr_schedule: Callable = lambda step: 0.1,
    generator_optimizer: optax.GradientTransformation | None = None,
) -> Method:
    """The OnlineAugment method (see the module docstring). ``model`` needs two BatchNorm sets."""
    if inner_num < 1:
        raise ValueError(f"online_augment: inner_num must be at least 1, got {inner_num}")
    if meta_mode not in objectives.meta.MODES:
        raise ValueError(f"online_augment: unknown meta_mode {meta_mode!r}")
    gen_optimizer = generator_optimizer or optax.adamw(1e-3, b1=0.5, weight_decay=1e-4)

    def generate(gen_params, gen_stats, images, labels, key):
        noise, dropout = jax.random.split(key)
        out, updates = generator.module.apply(
            {"params": gen_params, "batch_stats": gen_stats}, images, train=True,
            rngs={"noise": noise, "dropout": dropout}, mutable=["batch_stats"])
        aug, aug_labels, reg = generator.augment(out, images, labels)
        return aug, aug_labels, reg, updates["batch_stats"]

    def init(key, batch):
        target_key, gen_key, noise_key = jax.random.split(key, 3)
        target = init_target(target_key, batch["image"], model, optimizer)
        variables = generator.module.init(
            {"params": gen_key, "noise": noise_key, "dropout": noise_key}, batch["image"],
            train=False)
        gen = GeneratorState(variables["params"], variables.get("batch_stats", {}),
                             gen_optimizer.init(variables["params"]))
        return OnlineAugmentState(jnp.zeros((), jnp.int32), target, gen, jnp.zeros((), jnp.int32))

    def target_ce(params, batch_stats, images, labels, bn_set, key):
        return objectives.cross_entropy(params, {"image": images, "label": labels}, model=model,
                                        batch_stats=batch_stats, key=key, bn_set=bn_set)

    def update(state, x, y, clean, val, key, lr):
        """One joint update on a generated batch (and the clean one when ``clean`` is given);
        ``val`` is the meta loss's validation batch (meta only)."""
        gen_key, target_key, meta_key = jax.random.split(key, 3)
        target, gen = state.target, state.generator

        def loss_fn(params, gen_params):
            aug, aug_y, reg, gen_stats = generate(gen_params, gen.batch_stats, x, y, gen_key)
            seen = objectives.gradient_reversal(aug, beta)
            if clean is None:
                images, labels, bn_set = seen, aug_y, 1
            else:
                repeats = aug.shape[0] // clean[0].shape[0]
                images = jnp.concatenate([clean[0], seen])
                labels = jnp.concatenate([clean[1], aug_y])
                bn_set = (0,) + (1,) * repeats
            ce, aux = target_ce(params, target.batch_stats, images, labels, bn_set, target_key)
            total = ce + reg
            meta_value = jnp.zeros(())
            if meta:
                meta_value = meta_term(gen_params, params, target.batch_stats, gen.batch_stats,
                                       x, y, val, gen_key, meta_key, lr)
                total = total + meta_value
            return total, (aux, gen_stats, reg, meta_value, aug)

        (total, (aux, gen_stats, reg, meta_value, aug)), (g_target, g_gen) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True)(target.params, gen.params)
        new_target = target.apply_gradients(g_target, aux["batch_stats"], optimizer)
        updates, opt_state = gen_optimizer.update(g_gen, gen.opt_state, gen.params)
        new_gen = GeneratorState(optax.apply_updates(gen.params, updates), gen_stats, opt_state)
        ok = _finite((total, aug, g_target, g_gen))
        keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(ok, new, old))
        state = state.replace(target=keep(new_target, target), generator=keep(new_gen, gen),
                              skipped=state.skipped + (~ok).astype(jnp.int32))
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"], "regularizer": reg,
                   "meta": meta_value, "skipped": (~ok).astype(jnp.float32)}
        return state, metrics

    def meta_term(gen_params, params, batch_stats, gen_stats, x, y, val, gen_key, key, lr):
        def inner_loss(theta, phi, batch):
            aug, aug_y, _, _ = generate(phi, gen_stats, batch["image"], batch["label"], gen_key)
            return target_ce(theta, batch_stats, aug, aug_y, 1, key)

        def outer_loss(theta, batch):
            return target_ce(theta, batch_stats, batch["image"], batch["label"], 0, key)

        train = jax.tree.map(lambda a: a[None], {"image": x, "label": y})
        loss, _ = objectives.meta_loss(gen_params, params, train, val, inner_loss=inner_loss,
                                       outer_loss=outer_loss, lr=lr, mode=meta_mode)
        return loss

    def step(state, batch, key):
        images, labels = batch["image"], batch["label"]
        val = None
        if meta:
            pairs = images.reshape(-1, 2, *images.shape[1:])
            label_pairs = labels.reshape(-1, 2)
            images, labels = pairs[:, 0], label_pairs[:, 0]
            val = {"image": pairs[:, 1], "label": label_pairs[:, 1]}
        lr = lr_schedule(state.target.step)
        keys = jax.random.split(key, inner_num)

        # A Python loop, unrolled at trace time: inner_num is small, and a lax.scan over these
        # updates ran about 10x slower per update on CPU (measured with bench/step_cost.py).
        skipped = jnp.zeros(())
        for k in keys[:-1]:
            state, inner_metrics = update(state, images, labels, None, val, k, lr)
            skipped += inner_metrics["skipped"]
        state, metrics = update(state, images, labels, (images, labels), val, keys[-1], lr)
        metrics["skipped"] += skipped
        return state.replace(step=state.step + 1), metrics

    def predict(state, images):
        return predict_target(model, state.target, images)

    return Method(init=init, step=step, predict=predict)
