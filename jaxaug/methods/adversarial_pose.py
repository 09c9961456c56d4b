"""Adversarial data augmentation for pose estimation (Peng et al., CVPR 2018): an augmentation
network G competes with the pose network by choosing hard scales and rotations (ASR) and which
feature cells to occlude (AHO), trained by the reward/penalty target rather than through its
samples.

A batch of B = 3t images splits into thirds, in order:

* random: scale ~ U(scale range), rotation ~ U(+-max rotation), flip ~ Bernoulli(flip prob);
* ASR: scale and rotation from G's bins (a bin, then a bounded Gaussian inside it), random flip;
* AHO: random scale, rotation and flip, and 1 or 2 cells of G's grid zeroed on the pose network's
  skip and bridge features at every resolution and in every stack (the models' ``occlusion``).

The pose network trains on all three thirds (heatmap MSE of every stack). G reads the pose
network's features of the un-augmented image (its skip and bridge features, evaluation mode, no
gradient into the pose network) and is trained on the ASR and AHO thirds. Training has three
stages, each one jit-compiled pure step over `AdversarialPoseState`:

* ``"pose"``: the pose network alone with random augmentation (`heatmap_regression`'s step).
* ``"pretrain"``: the pose network frozen; G is fitted (KL) to ASR's targets, the frozen network's
  losses at every (scale bin, rotation bin) centre pair summed into each axis and normalised, and
  AHO's, the histogram of the visible joints over the grid.
* ``"joint"``: both networks. For each ASR / AHO image, the pose loss under its adversarial
  sample is compared with the loss under a random augmentation of the same image (random scale
  and rotation for ASR; the same warp with uniformly drawn cells for AHO): the sampled bins are
  rewarded when the adversarial loss is higher and penalised otherwise
  (`jaxaug.objectives.reward_penalty_target`), and G minimises KL(target || G). Both losses come
  from one evaluation-mode forward pass (running BatchNorm statistics), so the comparison sees
  the same network for both; they are per visible joint (`heatmap_loss_per_example`), so a warp
  that pushes joints out of the frame does not look easy only because fewer joints remain. With
  two occluded cells the target applies the update of the first cell, then of the second.
"""

import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxaug.generators.pose_adversary import (
    PoseAdversary,
    bin_centres,
    occlusion_mask,
    sample_binned,
)
from jaxaug.methods import registry
from jaxaug.methods.base import NetworkState, StagedMethod, TargetState
from jaxaug.methods.pose import (
    heatmap_regression,
    heatmap_size,
    pose_arguments,
    predict_joints,
    random_pose_params,
    torch_rmsprop,
    warped_inputs,
)
from jaxaug.objectives import (
    adversary_objective,
    aho_pretraining_target,
    asr_pretraining_targets,
    heatmap_loss_per_example,
    heatmap_objective,
    reward_penalty_target,
)

STAGES = ("pose", "pretrain", "joint")


@flax.struct.dataclass
class AdversarialPoseState:
    """``step`` counts the steps of every stage (the trainer's randomness and resume counter);
    ``pose`` is the pose network, ``adversary`` the augmentation network G."""

    step: jax.Array
    pose: TargetState
    adversary: NetworkState


def adversarial_pose(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    adversary: nn.Module,
    *,
    image_shape: tuple[int, int, int],
    flip_pairs,
    adversary_optimizer: optax.GradientTransformation,
    pretrain_optimizer: optax.GradientTransformation,
    sigma: float = 1.0,
    scale_range: tuple[float, float] = (0.75, 1.25),
    max_rotation: float = 30.0,
    flip_prob: float = 0.5,
    asr_scale_range: tuple[float, float] = (0.75, 1.25),
    asr_max_rotation: float = 30.0,
    sigma_fraction: float = 0.5,
    alpha: float = 0.2,
    beta: float = 0.5,
    max_cells: int = 2,
) -> StagedMethod:
    """ASR + AHO adversarial augmentation of ``model`` (CU-Net or stacked hourglass) by
    ``adversary`` (a `jaxaug.generators.PoseAdversary`), see the module docstring.

    ``scale_range`` / ``max_rotation`` / ``flip_prob`` are the random augmentation (scaling
    0.75-1.25, rotation +-30 degrees and flipping: Peng et al., sec. 5.1, "Datasets";
    flip_prob 0.5 is the usual coin, the paper gives none); ``asr_scale_range`` /
    ``asr_max_rotation`` the ranges G's bins tile (the same "augmentation ranges", sec. 4.1;
    ``adversary.num_scales`` and ``num_rotations`` equal bins, m = 7 and n = 9 as sec. 4.1's
    example; the reference code, zhiqiangdon/pose-adv-aug ``data/joint_train_s_r_agent.py``,
    has instead 7 scale bins 2^f, f = -0.6..0.6 in steps of 0.2, and 7 rotation bins at
    -60..60 degrees in steps of 20), ``sigma_fraction`` each bin's Gaussian std over its
    half-width (sec. 4.1 calls them "small bounded" Gaussians and gives no width; 0.5 is the
    reference code's ratio, std 0.05 and 5 degrees for bins 0.2 and 20 apart, though it clips
    the draw at one std where ours is bounded by the bin). ``alpha`` / ``beta`` are the reward
    and penalty rates (sec. 4.3 bounds them to (0, 1]; 0.2 and 0.5 are the reference code's
    ``increase_ratio`` / ``decrease_ratio``, ``utils/util.py``); ``max_cells`` (1 or 2) bounds
    the occluded cells, drawn uniformly from 1..max_cells ("one or two cells", sec. 4.2). G
    trains with ``pretrain_optimizer`` in pre-training and ``adversary_optimizer`` in joint
    training (RMSProp at 2.5e-4, then 5e-5: sec. 5.1, "Training"); the two must share their
    state's structure (e.g. RMSProp at two learning rates), as they update the same optimizer
    state. ``sigma`` is the heatmaps' Gaussian std in heatmap pixels.
    """
    if not 0 < asr_scale_range[0] < asr_scale_range[1]:
        raise ValueError(f"adversarial_pose: asr_scale_range must be 0 < low < high, got "
                         f"{asr_scale_range!r}")
    if not asr_max_rotation > 0:
        raise ValueError(f"adversarial_pose: asr_max_rotation must be > 0, got {asr_max_rotation!r}")
    if not 0 < sigma_fraction:
        raise ValueError(f"adversarial_pose: sigma_fraction must be > 0, got {sigma_fraction!r}")
    if max_cells not in (1, 2):
        raise ValueError(f"adversarial_pose: max_cells must be 1 or 2, got {max_cells!r}")
    base = heatmap_regression(
        model, optimizer, image_shape=image_shape, flip_pairs=flip_pairs,
        sigma=sigma, scale_range=scale_range, max_rotation=max_rotation, flip_prob=flip_prob)
    out_size = heatmap_size(model, image_shape)
    warp = functools.partial(warped_inputs, out_size=out_size, sigma=sigma, flip_pairs=flip_pairs)
    random_params = functools.partial(random_pose_params, scale_range=scale_range,
                                      max_rotation=max_rotation, flip_prob=flip_prob)
    grid = adversary.grid
    scale_bins = (float(asr_scale_range[0]), float(asr_scale_range[1]))
    rotation_bins = (-float(asr_max_rotation), float(asr_max_rotation))

    def features_of(pose, images01):
        """The pose network's skip and bridge features of un-augmented images (eval mode)."""
        variables = {"params": pose.params, "batch_stats": pose.batch_stats}
        _, features = model.apply(variables, images01, train=False, return_features=True)
        return jax.lax.stop_gradient(features)

    def eval_losses(pose, inputs, occlusion=None):
        """Per-example loss per visible joint in evaluation mode (no gradient)."""
        variables = {"params": pose.params, "batch_stats": pose.batch_stats}
        heatmaps = model.apply(variables, inputs["image"], train=False, occlusion=occlusion)
        return jax.lax.stop_gradient(
            heatmap_loss_per_example(heatmaps, inputs["heatmap"], inputs["visible"]))

    def adversary_logits(state, features):
        # Train mode, as in `adversary_objective`, which recomputes the same logits.
        variables = {"params": state.adversary.params,
                     "batch_stats": state.adversary.batch_stats}
        logits, _ = adversary.apply(variables, features, train=True, mutable=["batch_stats"])
        return logits

    def update_adversary(state, batch, adversary_opt):
        objective = functools.partial(adversary_objective, adversary=adversary,
                                      batch_stats=state.adversary.batch_stats)
        grads, aux = jax.grad(objective, has_aux=True)(state.adversary.params, batch)
        return state.adversary.apply_gradients(grads, aux["batch_stats"], adversary_opt), aux

    def init(key, batch):
        # The pose network starts as heatmap_regression's with the same key would.
        pose = base.init(key, batch)
        adversary_key = jax.random.fold_in(key, 1)
        features = features_of(pose, jnp.zeros((1, *image_shape), jnp.float32))
        variables = adversary.init(adversary_key, features, train=False)
        params = variables["params"]
        return AdversarialPoseState(
            step=jnp.zeros((), jnp.int32), pose=pose,
            adversary=NetworkState(params, variables.get("batch_stats", {}),
                                   adversary_optimizer.init(params)))

    def pose_step(state, batch, key):
        pose, metrics = base.step(state.pose, batch, key)
        return state.replace(step=state.step + 1, pose=pose), metrics

    def bin_pair_losses(pose, images01, joints, visible):
        """[N, m, n]: the loss of every image at every (scale, rotation) bin-centre pair."""
        scales = jnp.asarray(bin_centres(*scale_bins, adversary.num_scales), jnp.float32)
        rotations = jnp.asarray(bin_centres(*rotation_bins, adversary.num_rotations), jnp.float32)
        n = images01.shape[0]
        no_flip = jnp.zeros(n, bool)

        def loss_at(pair):
            scale, degrees = scales[pair // rotations.size], rotations[pair % rotations.size]
            inputs = warp(images01, joints, visible, jnp.full(n, scale), jnp.full(n, degrees),
                          no_flip)
            return eval_losses(pose, inputs)

        losses = jax.lax.map(loss_at, jnp.arange(scales.size * rotations.size))
        return losses.T.reshape(n, scales.size, rotations.size)

    def pretrain_step(state, batch, key):
        del key
        images01 = batch["image"].astype(jnp.float32) / 255.0
        joints, visible = batch["joints"], batch["visible"]
        scale_target, rotation_target = asr_pretraining_targets(
            bin_pair_losses(state.pose, images01, joints, visible))
        ones = jnp.ones(images01.shape[0], jnp.float32)
        adversary_state, aux = update_adversary(state, {
            "features": features_of(state.pose, images01),
            "scale_target": scale_target, "rotation_target": rotation_target,
            "occlusion_target": aho_pretraining_target(joints, visible, image_shape[:2], grid),
            "asr_weight": ones, "aho_weight": ones}, pretrain_optimizer)
        return state.replace(step=state.step + 1, adversary=adversary_state), {
            "adversary_loss": aux["loss"], "kl_scale": aux["kl_scale"],
            "kl_rotation": aux["kl_rotation"], "kl_occlusion": aux["kl_occlusion"]}

    def joint_step(state, batch, key):
        images01 = batch["image"].astype(jnp.float32) / 255.0
        joints, visible = batch["joints"], batch["visible"]
        b = images01.shape[0]
        if b % 3:
            raise ValueError(f"adversarial_pose: the batch of {b} does not split into thirds")
        t = b // 3
        keys = jax.random.split(key, 7)

        # G's distributions for the ASR and AHO thirds, from their un-augmented images.
        features = features_of(state.pose, images01[t:])
        logits = adversary_logits(state, features)
        scale_bin, asr_scale = sample_binned(keys[0], logits["scale"][:t], *scale_bins,
                                             sigma_fraction)
        rotation_bin, asr_degrees = sample_binned(keys[1], logits["rotation"][:t],
                                                  *rotation_bins, sigma_fraction)
        num_cells = jax.random.randint(keys[2], (t,), 1, max_cells + 1)
        masks, cells = jax.vmap(occlusion_mask)(jax.random.split(keys[3], t),
                                                logits["occlusion"][t:], num_cells)
        random_masks, _ = jax.vmap(occlusion_mask)(
            jax.random.split(keys[4], t), jnp.zeros((t, grid, grid)), num_cells)

        # The training batch: random | ASR | AHO, and each adversarial image's random reference.
        scale, degrees, flip = random_params(keys[5], b)
        keep = jnp.ones((t, grid, grid), jnp.float32)
        inputs = warp(images01, joints, visible, scale.at[t:2 * t].set(asr_scale),
                      degrees.at[t:2 * t].set(asr_degrees), flip)
        occlusion = jnp.concatenate([keep, keep, masks])
        asr_reference = warp(images01[t:2 * t], joints[t:2 * t], visible[t:2 * t],
                             scale[t:2 * t], degrees[t:2 * t], flip[t:2 * t])
        compared = jax.tree.map(lambda adv, ref, aho: jnp.concatenate([adv, ref, aho]),
                                {k: v[t:] for k, v in inputs.items()}, asr_reference,
                                {k: v[2 * t:] for k, v in inputs.items()})
        losses = eval_losses(state.pose, compared,
                             jnp.concatenate([keep, masks, keep, random_masks]))
        asr_rewarded = losses[:t] > losses[2 * t:3 * t]
        aho_rewarded = losses[t:2 * t] > losses[3 * t:]

        # G: reward/penalty targets for the ASR third's two bins and the AHO third's cells.
        def target(logits_, chosen, rewarded):
            return reward_penalty_target(jax.nn.softmax(logits_), chosen, rewarded, alpha, beta)

        occlusion_target = target(logits["occlusion"][t:].reshape(t, -1), cells[:, 0],
                                  aho_rewarded)
        second = reward_penalty_target(occlusion_target, cells[:, 1], aho_rewarded, alpha, beta)
        occlusion_target = jnp.where((num_cells >= 2)[:, None], second, occlusion_target)
        uniform = functools.partial(jnp.full, dtype=jnp.float32)
        first, rest = jnp.arange(2 * t) < t, jnp.arange(2 * t) >= t
        adversary_batch = {
            "features": features,
            "scale_target": jnp.concatenate([
                target(logits["scale"][:t], scale_bin, asr_rewarded),
                uniform((t, adversary.num_scales), 1 / adversary.num_scales)]),
            "rotation_target": jnp.concatenate([
                target(logits["rotation"][:t], rotation_bin, asr_rewarded),
                uniform((t, adversary.num_rotations), 1 / adversary.num_rotations)]),
            "occlusion_target": jnp.concatenate([
                uniform((t, grid * grid), 1 / grid**2), occlusion_target]).reshape(-1, grid, grid),
            "asr_weight": first.astype(jnp.float32), "aho_weight": rest.astype(jnp.float32)}
        adversary_state, adversary_aux = update_adversary(state, adversary_batch,
                                                          adversary_optimizer)

        # The pose network on all three thirds.
        objective = functools.partial(heatmap_objective, model=model,
                                      batch_stats=state.pose.batch_stats, key=keys[6],
                                      occlusion=occlusion)
        grads, aux = jax.grad(objective, has_aux=True)(state.pose.params, inputs)
        pose = state.pose.apply_gradients(grads, aux["batch_stats"], optimizer)
        per_example = heatmap_loss_per_example(aux["heatmaps"], inputs["heatmap"],
                                               inputs["visible"])
        metrics = {
            "loss": aux["loss"], "adversary_loss": adversary_aux["loss"],
            "loss_random": jnp.mean(per_example[:t]), "loss_asr": jnp.mean(per_example[t:2 * t]),
            "loss_aho": jnp.mean(per_example[2 * t:]),
            "asr_reward_rate": jnp.mean(asr_rewarded.astype(jnp.float32)),
            "aho_reward_rate": jnp.mean(aho_rewarded.astype(jnp.float32)),
            "asr_scale": jnp.mean(asr_scale), "asr_abs_rotation": jnp.mean(jnp.abs(asr_degrees)),
        }
        return state.replace(step=state.step + 1, pose=pose, adversary=adversary_state), metrics

    def predict(state, images):
        return predict_joints(model, state.pose, images, image_shape[:2])

    return StagedMethod(init=init, steps={"pose": pose_step, "pretrain": pretrain_step,
                                          "joint": joint_step}, predict=predict)


def _defaults() -> dict:
    """``config.adversarial``: the stages' epochs, G's architecture (`PoseAdversary`'s defaults),
    `adversarial_pose`'s keyword defaults (ASR ranges flattened to scalars) and G's RMSProp rates
    (2.5e-4 pre-training, then the paper's 5e-5, sec. 5.1)."""
    own = registry.keyword_defaults(adversarial_pose, "asr_scale_range", "asr_max_rotation",
                                    "sigma_fraction", "alpha", "beta", "max_cells")
    scale_min, scale_max = own.pop("asr_scale_range")
    return {"pose_epochs": 5, "pretrain_epochs": 1,
            **{name: getattr(PoseAdversary, name)
               for name in ("width", "num_scales", "num_rotations", "grid")},
            "scale_min": scale_min, "scale_max": scale_max,
            "max_rotation": own.pop("asr_max_rotation"), **own, "lr": 5e-5, "pretrain_lr": 2.5e-4}


def _stages(settings, config) -> list[tuple[str, int]]:
    """pose_epochs of the pose network alone, pretrain_epochs of pre-training G, then joint
    training for the rest of ``config.epochs``."""
    return [("pose", settings.pose_epochs), ("pretrain", settings.pretrain_epochs),
            ("joint", config.epochs - settings.pose_epochs - settings.pretrain_epochs)]


def _validate(settings, config) -> None:
    """What only the whole config can check: the thirds of the batch, the stages' epochs and G's
    grid against the pose model's lowest feature resolution."""

    def check(ok: bool, field: str, value, why: str) -> None:
        if not ok:
            raise ValueError(f"Invalid config.{field}={value!r}: {why}")

    a = settings
    check(config.batch_size % 3 == 0, "batch_size", config.batch_size,
          "must be divisible by 3 for adversarial_pose (random | ASR | AHO thirds)")
    for name in ("pose_epochs", "pretrain_epochs"):
        check(isinstance(a[name], int) and a[name] >= 0, f"adversarial.{name}", a[name],
              "must be an integer >= 0")
    check(a.pose_epochs + a.pretrain_epochs <= config.epochs, "adversarial.pretrain_epochs",
          a.pretrain_epochs, f"pose_epochs + pretrain_epochs must be <= epochs = {config.epochs} "
          "(joint training gets the rest)")
    check(a.width >= 1, "adversarial.width", a.width, "must be positive")
    check(a.num_scales >= 2, "adversarial.num_scales", a.num_scales, "needs at least 2 bins")
    check(a.num_rotations >= 2, "adversarial.num_rotations", a.num_rotations,
          "needs at least 2 bins")
    m = config[config.model]
    lowest = config.image_size // (m.stem_stride * 2**m.depth)
    check(a.grid >= 1 and lowest % a.grid == 0, "adversarial.grid", a.grid,
          f"must divide the lowest feature resolution {lowest} "
          f"(image_size / (stem_stride * 2^depth))")
    check(0 < a.scale_min < a.scale_max, "adversarial.scale_min", a.scale_min,
          "must be in (0, scale_max)")
    check(0 < a.max_rotation <= 180, "adversarial.max_rotation", a.max_rotation,
          "must be in (0, 180] degrees")
    check(a.sigma_fraction > 0, "adversarial.sigma_fraction", a.sigma_fraction, "must be positive")
    check(a.alpha >= 0, "adversarial.alpha", a.alpha, "must be >= 0")
    check(a.beta >= 0, "adversarial.beta", a.beta, "must be >= 0")
    check(a.max_cells in (1, 2), "adversarial.max_cells", a.max_cells, "must be 1 or 2")
    check(a.lr > 0, "adversarial.lr", a.lr, "must be positive")
    check(a.pretrain_lr > 0, "adversarial.pretrain_lr", a.pretrain_lr, "must be positive")


@registry.register("adversarial_pose", task="keypoints", section="adversarial",
                   defaults=_defaults(), stages=_stages, validate=_validate)
def _from_config(settings, context: registry.Context) -> StagedMethod:
    """G uses RMSProp with the pose network's decay and eps, at ``pretrain_lr`` then ``lr``."""
    g, o = settings, context.config.optimizer

    def rmsprop(lr):
        return torch_rmsprop(lr, o.decay, o.eps)

    adversary = PoseAdversary(width=g.width, num_scales=g.num_scales,
                              num_rotations=g.num_rotations, grid=g.grid)
    return adversarial_pose(
        context.model, context.optimizer, adversary, adversary_optimizer=rmsprop(g.lr),
        pretrain_optimizer=rmsprop(g.pretrain_lr), asr_scale_range=(g.scale_min, g.scale_max),
        asr_max_rotation=g.max_rotation, sigma_fraction=g.sigma_fraction, alpha=g.alpha,
        beta=g.beta, max_cells=g.max_cells, **pose_arguments(context))
