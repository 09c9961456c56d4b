"""Deep Co-Training (Qiao et al., ECCV 2018; Qiao thesis, ch. 3), dual-view, semi-supervised.

Two networks of the same architecture, independently initialised, are the views p_1 and p_2. One
step is the thesis's Algorithm 1 (sec. 3.2.3):

1. Data: a labelled batch b_1 for p_1 (``batch["image"]``, ``batch["label"]``), a labelled
   batch b_2 of the same size for p_2 (the stream ``"labelled"``: the labelled set in an order of
   its own, so the views "receive different supervised data"), and one unlabelled batch x_u
   for both (the stream ``"unlabelled"``: the rest of the training split that
   ``config.reduced`` leaves out). All get the run's standard augmentation.
2. FGSM (Goodfellow et al.): g_i(x) = x + eps sign(grad_x H(y, p_i(x))) for x in b_i and x_u,
   with y the label on b_i and p_i's own prediction (argmax) on x_u, p_i in evaluation mode,
   no clipping; eps = 0.02 in [0, 1] pixel units. The thesis gives neither eps nor the labels
   the unlabelled images are attacked with; both are the authors' answer as quoted by the
   public reimplementation (AlanChou/Deep-Co-Training-for-Semi-Supervised-Image-Recognition,
   README), which also runs the attack in evaluation mode after the clean passes.
3. L_sup = mean_{b_1} H(y, p_1(x)) + mean_{b_2} H(y, p_2(x))                     (eq. 3.3)
4. L_cot = mean_{x_u} [H((p_1(x) + p_2(x)) / 2) - (H(p_1(x)) + H(p_2(x))) / 2],   the
   Jensen-Shannon divergence of the views on unlabelled data                     (eq. 3.4)
5. L_dif = 1 / (b + |x_u|) [sum_{x in b_1 u x_u} H(p_1(x), p_2(g_1(x)))
                            + sum_{x in b_2 u x_u} H(p_2(x), p_1(g_2(x)))]:       (eq. 3.5)
   each view learns to agree with the other on that one's adversarial examples, which keeps the
   views from collapsing into each other. Both arguments of H carry gradients, as eq. 3.5 and
   the reimplementation have it.
6. L = L_sup + lambda_cot L_cot + lambda_dif L_dif, one SGD update of both views     (eq. 3.6)

with the CIFAR / SVHN warm-up of sec. 3.2.5: at epoch T (1-based) lambda = lambda_max
exp(-5 (1 - T / 80)^2) for T <= 80, then lambda_max; lambda_cot,max = 10, lambda_dif,max = 0.5
(CIFAR-10, SVHN; 1.0 for CIFAR-100). Every clean and adversarial batch of a view is its own
training-mode forward pass (its own BatchNorm statistics), in the order labelled, unlabelled,
adversarial labelled, adversarial unlabelled, the running statistics threaded through them as
the reimplementation's successive forward passes update them.

The thesis's CIFAR batch holds 100 images, split between labelled and unlabelled in the ratio
|S| : |U| (sec. 3.2.5: 8 + 92 for 4,000 labels); here ``config.batch_size`` is b, the labelled
images per view, and ``unlabelled_batch_size`` is |x_u|. Evaluation uses the first view: the
thesis evaluates single views, never their ensemble, and reports the mean of their error rates
(sec. 3.4.2, Table 3-I). The multi-view variant (sec. 3.2.4) is not implemented.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxaug.methods import registry
from jaxaug.methods.base import (
    Method,
    TargetState,
    check_int,
    gradient_update,
    init_target,
    predict_target,
    require,
)
from jaxaug.objectives.classification import TargetLoss, model_rngs, softmax_cross_entropy

LABELLED, UNLABELLED = "labelled", "unlabelled"


def co_training_divergence(logits_1: jax.Array, logits_2: jax.Array) -> jax.Array:
    """L_cot (eq. 3.4), per example [N]: H(M) - (H(p_1) + H(p_2)) / 2 with M = (p_1 + p_2) / 2
    and p_i = softmax(logits_i), in nats; log M as a log-sum-exp of the log-probabilities."""
    log_p = jnp.stack([jax.nn.log_softmax(x.astype(jnp.float32), -1) for x in (logits_1, logits_2)])
    p = jnp.exp(log_p)
    log_m = jax.nn.logsumexp(log_p, axis=0) - jnp.log(2.0)
    entropy_m = -jnp.sum(jnp.exp(log_m) * log_m, -1)
    entropies = -jnp.sum(p * log_p, -1)  # [2, N]
    return entropy_m - jnp.mean(entropies, 0)


def soft_cross_entropy(target_logits: jax.Array, logits: jax.Array) -> jax.Array:
    """H(p, q) = -sum_c p_c log q_c per example, p = softmax(target_logits) (not detached),
    q = softmax(logits): a term of L_dif (eq. 3.5)."""
    p = jax.nn.softmax(target_logits.astype(jnp.float32), -1)
    return -jnp.sum(p * jax.nn.log_softmax(logits.astype(jnp.float32), -1), -1)


def fgsm(model: nn.Module, variables: Any, images: jax.Array, labels: jax.Array,
         epsilon: float) -> jax.Array:
    """x + epsilon sign(grad_x sum_i H(y_i, p(x_i))) with p = ``model`` in evaluation mode
    (running BatchNorm statistics, so each image's attack is independent of the others), not
    clipped; a constant (no gradient flows back through it)."""

    def loss(x):
        logits = model.apply(variables, x, train=False)
        return jnp.sum(softmax_cross_entropy(logits.astype(jnp.float32), labels))

    return jax.lax.stop_gradient(images + epsilon * jnp.sign(jax.grad(loss)(images)))


def ramp_up(step: jax.Array, steps_per_epoch: int, epochs: float) -> jax.Array:
    """exp(-5 (1 - T / epochs)^2) at epoch T = step // steps_per_epoch + 1 while T <= epochs,
    then 1 (sec. 3.2.5; ``epochs`` 0: 1 from the start, as the thesis's ImageNet runs)."""
    if epochs <= 0:
        return jnp.ones((), jnp.float32)
    epoch = (step // steps_per_epoch + 1).astype(jnp.float32)
    return jnp.exp(-5.0 * (1.0 - jnp.minimum(epoch, epochs) / epochs) ** 2)


def _forward(model, params, batch_stats, images, key):
    """Training-mode logits and the BatchNorm statistics after this pass."""
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, images,
                                  train=True, rngs=model_rngs(key), mutable=["batch_stats"])
    return logits.astype(jnp.float32), updates["batch_stats"]


def dct_objective(params: tuple[Any, Any], batch: dict[str, jax.Array], *, model: nn.Module,
                  batch_stats: tuple[Any, Any], key: jax.Array, lambda_cot: jax.Array,
                  lambda_dif: jax.Array, epsilon: float,
                  target_loss: TargetLoss = softmax_cross_entropy
                  ) -> tuple[jax.Array, dict[str, Any]]:
    """The loss of eq. 3.6 for the views' ``params`` (p_1, p_2) on ``batch`` (module docstring;
    ``batch["image"]`` / ``["label"]`` for p_1, ``["image_labelled"]`` / ``["label_labelled"]``
    for p_2, ``["image_unlabelled"]`` for both). Returns ``(loss, aux)``: ``sup``, ``cot``,
    ``dif``, ``accuracy`` (p_1 on b_1), ``accuracy_view2`` (p_2 on b_2), ``batch_stats``."""
    labelled = [(batch["image"], batch["label"]),
                (batch[f"image_{LABELLED}"], batch[f"label_{LABELLED}"])]
    unlabelled = batch[f"image_{UNLABELLED}"]
    keys = jax.random.split(key, 4)
    stats = list(batch_stats)
    clean = []  # per view: (logits on b_i, logits on x_u)
    for i in range(2):
        (x, _), p, s = labelled[i], params[i], stats[i]
        logits_s, s = _forward(model, p, s, x, jax.random.fold_in(keys[i], 0))
        logits_u, s = _forward(model, p, s, unlabelled, jax.random.fold_in(keys[i], 1))
        clean.append((logits_s, logits_u))
        stats[i] = s
    adversarial = []  # per view i: g_i(b_i), g_i(x_u)
    for i in range(2):
        (x, y), logits_u = labelled[i], clean[i][1]
        pseudo = jnp.argmax(jax.lax.stop_gradient(logits_u), -1)
        variables = jax.lax.stop_gradient({"params": params[i], "batch_stats": stats[i]})
        g = fgsm(model, variables, jnp.concatenate([x, unlabelled]),
                 jnp.concatenate([y, pseudo]), epsilon)
        adversarial.append((g[: x.shape[0]], g[x.shape[0]:]))
    dif_sum = 0.0
    for i in range(2):
        j = 1 - i  # view j on the adversarial examples of view i
        logits_gs, stats[j] = _forward(model, params[j], stats[j], adversarial[i][0],
                                       jax.random.fold_in(keys[2 + j], 0))
        logits_gu, stats[j] = _forward(model, params[j], stats[j], adversarial[i][1],
                                       jax.random.fold_in(keys[2 + j], 1))
        dif_sum += (jnp.sum(soft_cross_entropy(clean[i][0], logits_gs))
                    + jnp.sum(soft_cross_entropy(clean[i][1], logits_gu)))
    b, u = labelled[0][0].shape[0], unlabelled.shape[0]
    sup = sum(jnp.mean(target_loss(clean[i][0], labelled[i][1])) for i in range(2))
    cot = jnp.mean(co_training_divergence(clean[0][1], clean[1][1]))
    dif = dif_sum / (b + u)
    loss = sup + lambda_cot * cot + lambda_dif * dif
    accuracy = [jnp.mean((jnp.argmax(clean[i][0], -1) == labelled[i][1]).astype(jnp.float32))
                for i in range(2)]
    return loss, {"loss": loss, "sup": sup, "cot": cot, "dif": dif, "accuracy": accuracy[0],
                  "accuracy_view2": accuracy[1], "batch_stats": tuple(stats)}


def deep_co_training(model: nn.Module, optimizer: optax.GradientTransformation, *,
                     steps_per_epoch: int, batch_size: int, unlabelled_batch_size: int = 32,
                     lambda_cot: float = 10.0, lambda_dif: float = 0.5, epsilon: float = 0.02,
                     warmup_epochs: float = 80.0, device_count: int = 1,
                     target_loss: TargetLoss = softmax_cross_entropy) -> Method:
    """Dual-view Deep Co-Training (module docstring) of two ``model``s, both updated by
    ``optimizer`` (one SGD over the pair, as one optimizer over both networks' parameters).
    ``batch_size`` is the labelled batch of each view (the run's); ``unlabelled_batch_size`` the
    shared unlabelled batch; ``lambda_cot`` / ``lambda_dif`` the maxima the weights ramp up to
    over ``warmup_epochs``; ``epsilon`` the FGSM step; ``target_loss`` the per-example H(y, p)
    of L_sup (the run's, with ``config.label_smoothing``). The state is a `TargetState` whose
    ``params`` and ``batch_stats`` are the pairs (view 1, view 2); ``predict`` is view 1's.
    Metrics: ``loss``, ``sup``, ``cot``, ``dif``, ``lambda_cot``, ``lambda_dif``, ``accuracy``,
    ``accuracy_view2``, ``grad_norm``."""
    name = "deep_co_training"
    check_int(name, "unlabelled_batch_size", unlabelled_batch_size, 1)
    require(unlabelled_batch_size % device_count == 0, name, "unlabelled_batch_size",
            unlabelled_batch_size, f"must be divisible by the {device_count} devices")
    for field, value in (("lambda_cot", lambda_cot), ("lambda_dif", lambda_dif),
                         ("epsilon", epsilon), ("warmup_epochs", warmup_epochs)):
        require(0 <= value < float("inf"), name, field, value, "must be finite and non-negative")

    def init(key, batch):
        views = [init_target(k, batch["image"], model, optimizer) for k in jax.random.split(key)]
        params = tuple(v.params for v in views)
        return TargetState(step=jnp.zeros((), jnp.int32), params=params,
                           batch_stats=tuple(v.batch_stats for v in views),
                           opt_state=optimizer.init(params))

    def step(state, batch, key):
        ramp = ramp_up(state.step, steps_per_epoch, warmup_epochs)
        lambdas = {"lambda_cot": lambda_cot * ramp, "lambda_dif": lambda_dif * ramp}
        state, aux, _ = gradient_update(state, dct_objective, optimizer, batch, model=model,
                                        batch_stats=state.batch_stats, key=key, epsilon=epsilon,
                                        target_loss=target_loss, keep_on_nonfinite=False,
                                        **lambdas)
        return state, {**aux, **lambdas}

    def predict(state, images):
        return predict_target(model, state.replace(params=state.params[0],
                                                   batch_stats=state.batch_stats[0]), images)

    return Method(init=init, step=step, predict=predict,
                  streams={LABELLED: ("train", batch_size),
                           UNLABELLED: ("unlabelled", unlabelled_batch_size)})


def _validate(settings, config) -> None:
    if not config.reduced:
        raise ValueError("Invalid config.reduced=0: deep_co_training is semi-supervised and takes "
                         "its unlabelled images from the training split that config.reduced "
                         "leaves out; set config.reduced to the number of labelled images")
    if config.augment.mixup.mixup_alpha or config.augment.mixup.cutmix_alpha:
        raise ValueError("Invalid config.augment.mixup: deep_co_training trains on unmixed "
                         "labelled and unlabelled batches; set both alphas to 0")


@registry.register("deep_co_training", section="dct", unlabelled=True, validate=_validate,
                   defaults=registry.keyword_defaults(
                       deep_co_training, "unlabelled_batch_size", "lambda_cot", "lambda_dif",
                       "epsilon", "warmup_epochs"))
def _from_config(settings, context: registry.Context) -> Method:
    """``config.dct``: ``unlabelled_batch_size``, ``lambda_cot``, ``lambda_dif``, ``epsilon``,
    ``warmup_epochs`` (`deep_co_training`)."""
    return deep_co_training(context.model, context.optimizer,
                            steps_per_epoch=context.steps_per_epoch,
                            batch_size=context.config.batch_size,
                            device_count=context.device_count,
                            target_loss=context.target_loss, **settings)
