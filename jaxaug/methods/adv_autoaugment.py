"""Adversarial AutoAugment (Zhang et al., ICLR 2020): an LSTM controller learns, by REINFORCE,
augmentation policies that raise the target network's training loss.

A policy is 5 sub-policies of 2 ops, each op a type (16: the AutoAugment ops with Cutout and
Sample Pairing) and a magnitude (10 levels, 0-9 on the 0-10 AutoAugment scale), always applied
(no per-op probability), one sub-policy drawn per image (Zhang et al., sec. 3.2; the paper
discretizes the magnitude range into 10 values and defers the ranges to AutoAugment, its
footnote 1): 20 choices of the `jaxaug.policies.PolicyController`, each feeding the next. Per
window of ``update_every`` steps (one epoch: the length of the paper's moving average, sec. 3.3,
footnote 2):

  the controller samples M policies a_1..a_M (M = 8), held fixed over the window;
  every step, the batch x (B images) is replicated M times and copy m is augmented by policy m
  (each image by one of its 5 sub-policies, drawn uniformly); the target is trained on all
  M x B images (batch augmentation), and L_m, the mean loss of copy m, is recorded;
  at the window's last step, with Lbar_m the mean of L_m over the window,
    A_m = (Lbar_m - mean_m Lbar) / std_m Lbar                       (normalised across M)
    J(phi) = -mean_m A_m log pi_phi(a_m) - entropy_weight * mean_m H(pi_phi(. | a_m))
  the controller takes one Adam step on J (lr 3.5e-4, entropy weight 1e-5) and samples the
  next window's M policies.

The controller is a one-layer LSTM of hidden size 100 and embedding size 32 trained by Adam at
3.5e-4 with entropy weight 1e-5 (sec. 4.1); M = 8 (sec. 4.2, "Choice of M").

The controller thus maximises the target's loss (the adversarial reward) while the target
minimises it. Sample Pairing blends an image with its neighbour in the batch (the batch rolled
by one). The batch is in [0, 1], augmented through `jaxaug.policies.apply_actions` (one
resampling per geometric chain). Cutout (side ``cutout``; 16 in the paper's CIFAR runs, where it
zeroes a 16 x 16 patch after normalization, so here it is filled with the dataset mean
``cutout_fill``) comes last, on each augmented copy: "standard data augmentation, the
searched policy and Cutout are applied in sequence" (Zhang et al., sec. 4.1, training details).
The method therefore sets ``Method.applies_cutout``, so the trainer leaves Cutout out of its
standard augmentation and hands ``config.augment.cutout`` to it. Everything, the
controller's update and resampling included, happens inside the one jitted step; the window
boundary is a `lax.cond`, so the controller's gradient and resampling run only at the window's
end.
A non-finite loss or gradient skips the target update and is counted in ``state.skipped``.
"""

import flax
import jax
import jax.numpy as jnp
import optax

from jaxaug import objectives, policies
from jaxaug.data import augment
from jaxaug.methods import registry
from jaxaug.methods.base import (
    Method,
    TargetState,
    check_int,
    count_skips,
    gradient_update,
    init_target,
    keep_if,
    predict_target,
    require,
)
from jaxaug.objectives import reinforce
from jaxaug.policies.tables import OP_NAMES

#: The 16 op types of the paper, in its order (AutoAugment's list).
OPS = OP_NAMES[:16]
#: The controller's Adam learning rate (sec. 4.1).
CONTROLLER_LR = 3.5e-4


@flax.struct.dataclass
class ControllerState:
    params: dict
    opt_state: optax.OptState
    actions: jax.Array  # [M, T] the window's policies
    rewards: dict  # `reinforce.policy_average_*` sums and counts over the window


@flax.struct.dataclass
class AdvAutoAugmentState:
    step: jax.Array
    target: TargetState
    controller: ControllerState
    skipped: jax.Array


def augment_copies(key, actions, images, *, op_names=OPS, sub_policies=5, cutout=0,
                   cutout_fill: float | tuple[float, ...] = 0.0):
    """[M, B, H, W, C]: copy m of ``images`` [B, H, W, C] in [0, 1] augmented by policy
    ``actions[m]`` ([M, T] controller choices), each image by one of its ``sub_policies``
    sub-policies drawn uniformly, every op applied at its level; Sample Pairing's partner is the
    next image of the batch (rolled by one); then Cutout of side ``cutout`` (0: none) on every
    image of every copy, its own square each filled with ``cutout_fill`` (`data.augment.cutout`,
    key ``fold_in(key, 1)``)."""
    pick_key, apply_key = jax.random.split(key)
    m, b = actions.shape[0], images.shape[0]
    table = actions.reshape(m, sub_policies, -1, 2)
    drawn = table[jnp.arange(m)[:, None], jax.random.randint(pick_key, (m, b), 0, sub_policies)]
    partner = jnp.roll(images, 1, axis=0)

    def one(k, img, acts, other):
        return policies.apply_actions(k, img, acts, op_names=op_names, partner=other)

    keys = jax.random.split(apply_key, m * b).reshape(m, b)
    per_copy = jax.vmap(one, in_axes=(0, 0, 0, 0))
    out = jax.vmap(per_copy, in_axes=(0, None, 0, None))(keys, images, drawn, partner)
    return augment.cutout(jax.random.fold_in(key, 1), out.reshape(m * b, *out.shape[2:]),
                          cutout, cutout_fill).reshape(out.shape)


def controller_objective(params, controller, actions, advantages, entropy_weight):
    """``(J, H)``: J = -mean_m A_m log pi(a_m) - entropy_weight * H, with H the mean over the
    M policies of the summed per-choice entropies along a_m (teacher-forced)."""
    num_policies = actions.shape[0]
    _, log_probs, entropies = controller.apply(params, jax.random.key(0), num_policies, actions)
    per_policy = entropies.sum(1)
    loss = reinforce.reinforce_loss(log_probs.sum(1), advantages, entropy=per_policy,
                                    entropy_weight=entropy_weight)
    return loss, per_policy.mean()


def make_controller(num_ops: int, num_magnitudes: int, sub_policies: int,
                    ops_per_sub_policy: int, hidden: int, embedding: int
                    ) -> policies.PolicyController:
    """The controller of a policy of ``sub_policies`` x ``ops_per_sub_policy`` ops, each an op
    type then a magnitude choice: what the method trains and what `controller_marginals`
    samples from a trained run's params."""
    return policies.PolicyController(
        choice_sizes=(num_ops, num_magnitudes), num_choices=2 * sub_policies * ops_per_sub_policy,
        hidden=hidden, embedding=embedding)


def adv_autoaugment(
    model,
    optimizer: optax.GradientTransformation,
    *,
    update_every: int,
    num_policies: int = 8,
    sub_policies: int = 5,
    ops_per_sub_policy: int = 2,
    num_magnitudes: int = 10,
    op_names: tuple[str, ...] = OPS,
    entropy_weight: float = 1e-5,
    controller_optimizer: optax.GradientTransformation | None = None,
    hidden: int = 100,
    embedding: int = 32,
    cutout: int = 0,
    cutout_fill: float | tuple[float, ...] = 0.0,
    target_loss: objectives.TargetLoss = objectives.softmax_cross_entropy,
) -> Method:
    """The method above on batches in [0, 1]; ``update_every`` is the window (steps per epoch for
    the paper's setting), ``cutout`` the side of the Cutout square applied after the policy (0:
    none; the paper's CIFAR setting is 16) and ``cutout_fill`` its colour (scalar or per channel;
    the dataset mean reproduces the reference's zero after normalization)."""
    for name, value, low in (("update_every", update_every, 1), ("num_policies", num_policies, 2),
                             ("sub_policies", sub_policies, 1), ("cutout", cutout, 0),
                             ("ops_per_sub_policy", ops_per_sub_policy, 1)):
        check_int("adv_autoaugment", name, value, low)
    check_int("adv_autoaugment", "num_magnitudes", num_magnitudes, 1)
    require(num_magnitudes <= 11, "adv_autoaugment", "num_magnitudes", num_magnitudes,
            "must be in [1, 11] (levels 0-10)")
    require(0 <= entropy_weight < float("inf"), "adv_autoaugment", "entropy_weight", entropy_weight,
            "must be finite and non-negative")
    op_names = policies.apply.check_vocabulary(tuple(op_names), has_partner=True)
    controller = make_controller(len(op_names), num_magnitudes, sub_policies, ops_per_sub_policy,
                                 hidden, embedding)
    controller_optimizer = controller_optimizer or optax.adam(CONTROLLER_LR)

    def init(key, batch):
        target_key, controller_key, sample_key = jax.random.split(key, 3)
        target = init_target(target_key, batch["image"], model, optimizer)
        params = controller.init(controller_key, sample_key, num_policies)
        actions, _, _ = controller.apply(params, sample_key, num_policies)
        ctrl = ControllerState(params, controller_optimizer.init(params), actions,
                               reinforce.policy_average_init(num_policies))
        return AdvAutoAugmentState(jnp.zeros((), jnp.int32), target, ctrl,
                                   jnp.zeros((), jnp.int32))

    def update_controller(ctrl, advantages, rewards, key):
        """The window's end: one controller step on the window's advantages, new policies."""
        (_, entropy), grads = jax.value_and_grad(controller_objective, has_aux=True)(
            ctrl.params, controller, ctrl.actions, advantages, entropy_weight)
        updates, opt_state = controller_optimizer.update(grads, ctrl.opt_state, ctrl.params)
        params = optax.apply_updates(ctrl.params, updates)
        actions, _, _ = controller.apply(params, key, num_policies)
        return ControllerState(params, opt_state, actions, rewards), entropy

    def hold_controller(ctrl, advantages, rewards, key):
        """Within a window: the same policies, the rewards recorded."""
        del key
        _, entropy = controller_objective(ctrl.params, controller, ctrl.actions, advantages,
                                          entropy_weight)
        return ctrl.replace(rewards=rewards), entropy

    def step(state, batch, key):
        augment_key, target_key, sample_key = jax.random.split(key, 3)
        target, ctrl = state.target, state.controller
        images = augment_copies(augment_key, ctrl.actions, batch["image"], op_names=op_names,
                                sub_policies=sub_policies, cutout=cutout, cutout_fill=cutout_fill)
        images = images.reshape(-1, *images.shape[2:])
        labels = jnp.concatenate([batch["label"]] * num_policies)
        new_target, aux, ok = gradient_update(
            target, objectives.cross_entropy, optimizer, {"image": images, "label": labels},
            model=model, batch_stats=target.batch_stats, key=target_key, target_loss=target_loss)

        losses = target_loss(aux["logits"], labels)
        policy_losses = jax.lax.stop_gradient(losses).reshape(num_policies, -1).mean(1)
        position = state.step % update_every
        rewards, advantages = reinforce.policy_average_update(
            ctrl.rewards, policy_losses, new_epoch=position == 0)
        rewards = keep_if(ok, rewards, ctrl.rewards)  # a skipped step records no losses
        # The controller's gradient and resampling only run at the window's end.
        new_ctrl, entropy = jax.lax.cond(position == update_every - 1, update_controller,
                                         hold_controller, ctrl, advantages, rewards, sample_key)
        skipped = count_skips(ok)
        state = state.replace(step=state.step + 1, target=new_target, controller=new_ctrl,
                              skipped=state.skipped + skipped)
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"],
                   "controller_entropy": entropy / controller.num_choices,
                   "policy_loss_spread": policy_losses.std(),
                   "skipped": skipped.astype(jnp.float32)}
        return state, metrics

    def predict(state, images):
        return predict_target(model, state.target, images)

    return Method(init=init, step=step, predict=predict, applies_cutout=True)


@registry.register("adv_autoaugment", defaults={
    **registry.keyword_defaults(adv_autoaugment, "num_policies", "entropy_weight"),
    "controller_lr": CONTROLLER_LR,
    "update_every": 0,  # steps between controller updates; 0: one epoch, the paper's window
})
def _from_config(settings, context: registry.Context) -> Method:
    """The paper's setting with ``config.augment.cutout`` applied after the policy."""
    require(settings.controller_lr > 0, "adv_autoaugment", "controller_lr", settings.controller_lr,
            "must be positive")
    require(settings.update_every >= 0, "adv_autoaugment", "update_every", settings.update_every,
            "must be non-negative (0: once per epoch)")
    return adv_autoaugment(
        context.model, context.optimizer,
        update_every=settings.update_every or context.steps_per_epoch,
        num_policies=settings.num_policies, entropy_weight=settings.entropy_weight,
        controller_optimizer=optax.adam(settings.controller_lr),
        cutout=context.config.augment.cutout, cutout_fill=context.normalization.mean,
        target_loss=context.target_loss)


def controller_marginals(params, key: jax.Array, num_samples: int = 4096, *,
                         sub_policies: int = 5, ops_per_sub_policy: int = 2,
                         num_magnitudes: int = 10, op_names: tuple[str, ...] = OPS,
                         hidden: int = 100, embedding: int = 32) -> tuple[jax.Array, jax.Array]:
    """What the controller with ``params`` samples: the frequencies of each op type
    [len(op_names)] and each magnitude [num_magnitudes] over the ops of ``num_samples`` policies
    (all sub-policy positions pooled, as Zhang et al.'s fig. 6 shows them). The keyword
    arguments are the run's `adv_autoaugment` settings (its defaults are the paper's)."""
    controller = make_controller(len(op_names), num_magnitudes, sub_policies, ops_per_sub_policy,
                                 hidden, embedding)
    actions, _, _ = controller.apply(params, key, num_samples)
    ops_, magnitudes = actions[:, 0::2], actions[:, 1::2]
    return (jnp.mean(jax.nn.one_hot(ops_, len(op_names)), axis=(0, 1)),
            jnp.mean(jax.nn.one_hot(magnitudes, num_magnitudes), axis=(0, 1)))


def describe(actions, op_names=OPS, sub_policies: int = 5) -> list:
    """Host-side: policies [M, T] as lists of sub-policies of (op name, level) pairs."""
    rows = jax.device_get(actions).reshape(actions.shape[0], sub_policies, -1, 2)
    return [[[(op_names[int(o)], int(lv)) for o, lv in sub] for sub in policy] for policy in rows]
