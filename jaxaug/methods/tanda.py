"""TANDA (Ratner et al., NeurIPS 2017): a generator of transformation sequences, trained against
a discriminator, augments the target network's training.

Transformation functions (TFs). ``tfs`` is a vocabulary of K fixed-magnitude TFs h_1..h_K, each
an ``(op name, level)`` pair of `jaxaug.policies` (level on the AutoAugment 0-10 scale, mapped to
the op's parameter by `policies.level_to_arg` for the image's size). Signed ops (rotate, shear,
translate) take a signed level, so ``("rotate", -2)`` is a deterministic rotation by -6 degrees:
the generator, not a coin, picks each direction, as in the paper's lists of TFs at fixed
parameters. A sequence tau = (tau_1..tau_L) transforms an image as h_tau = h_tau_L o ... o h_tau_1,
applied by `policies.apply_steps`: the geometric steps of a sequence are composed and resampled
once (bilinear by default, so that small rotations do not leave nearest-neighbour staircases for D
to spot), the point ops run in order around that warp. For L <= 2 this is exactly sequential
application; longer sequences carry the approximations documented in `jaxaug.policies.apply`
(image statistics of a point op between two warps, a sharpness blur before a later warp).

Generator G_phi over sequences (``generator``):

  "mean_field":  G(tau) = prod_t softmax(phi_t)[tau_t], independent positions, phi [L, K]
  "lstm":        G(tau) = prod_t pi_phi(tau_t | tau_<t), an autoregressive LSTM
                 (`policies.PolicyController` with one K-way head)

so log G(tau) = sum_t log pi(tau_t | tau_<t) in both cases.

One step on a batch x (in [0, 1]), labels y, with per-image tau_i ~ G sampled inside jit:

  x_i^t = h_tau_i,<=t(x_i), t = 0..L   the incremental transforms (`incremental_inputs`: the
                         prefixes of tau_i); x_i^0 is x_i through the empty sequence, x~_i = x_i^L
  D:  L_D = -mean_i log D(x_i^0) - mean_i log(1 - D(x~_i))       (`objectives.discriminator`)
  G:  l_i^t = -log D_eval(x_i^t) + mu / (MSE(phi(x_i^0), phi(x_i^t)) + eps)   (`transform_losses`)
      d_i^t = l_i^t - l_i^(t-1),  R_i^t = sum_(s >= t) gamma^(s - t) d_i^s,  t = 1..L
      L_G = mean_i sum_t (R_i^t - b^t) log pi(tau_it | tau_i,<t) - lambda mean_i sum_t H_it,
      b^t = mean_i R_i^t, the R held constant                    (`generator_returns`)
  target:  x^_i = x~_i if (step >= warmup_steps and u_i < augment_prob) else x_i,
           theta <- optimizer(grad_theta CE(f_theta(x^), y))

This is the generator objective of TANDA's reference code (``tanda/tan.py``, ``TAN._build``;
``tanda/generator/generator.py``, ``get_policy_loss_op``): each TF is charged with the change it
causes in the loss l, discounted over the TFs after it (``discount`` gamma = 0.5, the
reference's), and each position has its batch-mean baseline. -log D is the non-saturating "fool
the discriminator" loss: G is paid for TFs whose outputs D takes for untransformed images, so it
keeps the compositions that stay on the data distribution and drops those that leave it. Alone it
is minimised by TFs that change nothing (or cancel), so the reference adds the diversity term
mu / (MSE + eps) (``get_mse_loss``, eps = 1e-6), with phi either D's input
(``diversity_space="pixels"``) or D's layer ``diversity_layer`` counted back from its last
(``"discriminator"``, the reference's ``mse_layer``; `models.Discriminator` exposes its
convolutions' outputs, the layers the reference's D returns). The default mu = 1e-3 in D's layer 1
is the reference's CIFAR-10 setting (``experiments/cifar10/config/tan_search_config.json``:
mse_term in {0.001, 0.005}, mse_layer 1, gamma 0.5). As in the reference, the l^t come from D in
inference mode (running BatchNorm statistics), one extra pass over the (L + 1) B incremental
images. The entropy bonus (weight ``entropy_weight``, lambda; not in the reference) is an option
against early collapse; for the LSTM the summed per-position entropies along the sampled prefixes
are an unbiased estimate of the sequence entropy H(G), and their gradient, as usual, leaves out how
the prefixes' own probabilities depend on phi.

D's real images x^0 go through the same pipeline as the augmented ones (the geometric steps'
resampling with identity matrices), as the reference feeds its
real batch through the transformer's pre/post processing (``Transformer.transform_basic``): the
only difference between what D sees as real and as augmented is then the TFs themselves, never a
rounding of the resampling; an identity sequence gives D the real image bitwise. D, like the
target, normalizes its input as its first operation when built from a config
(`models.Normalized`), so its layers, and the diversity term taken there, see what they saw when
the method was given normalized batches.

D and G both step from the state at the start of the step (simultaneous updates).

Defaults and the reference code (HazyResearch/tanda; the TANDA paper is not among the project's
papers, and the blog post in 004_188d69dcb963af9a.txt gives no values): sequence_length 5 and
augment_prob 1 are its full-scale CIFAR-10 end-model setting
(``experiments/cifar10/config/end_model_full_scale_config.json``: seq_len 5, p_transform 1.0);
the diversity term's mu and layer and the discount its CIFAR-10 search setting (above). Its
generator has no entropy bonus, so ``entropy_weight`` defaults to 0 (a positive value is an
option). Kept as our choices, since the reference's differ in kind: an LSTM generator of hidden
size 64 (the
reference's CIFAR runs use a one-layer GRU), Adam(1e-3) on the batch-mean loss for G (the
reference: plain SGD on a loss summed over the batch and positions, gen_lr 1e-3 by its flag
default, searched over {3e-5, 1e-4, 3e-3} for CIFAR-10), Adam(2e-4,
b1 = 0.5) for D (the reference: Adam at disc_lr 1e-5, searched over {1e-5, 5e-5} for CIFAR-10),
a DCGAN D of width 32 down to 4 x 4 (the reference's: width 64, four convolutions), and
``warmup_steps`` (the reference trains G and D first, then the end model with G frozen).

Deviations from the reference code kept here: its policy loss sums over the batch, ours
averages (a rescaling of G's learning rate), and its phi(x^0) in D's layer comes from D's
training-mode pass over the real batch, ours from the same inference-mode pass as the other
phi(x^t), so that phi(x^0) = phi(x^t) exactly when the TFs so far changed nothing.

"The learned generator then augments the target's training": the paper trains G and D first and
then trains the end model on G's augmentations. Here one jitted step does both: for the first
``warmup_steps`` steps the target trains on the clean batch while G and D learn (selected by
masking on the traced step, so there is one compiled program), after it on G's augmentations, each
image independently augmented with probability ``augment_prob``. G and D keep learning after the
warm-up rather than being frozen, so the augmentations keep adapting as training goes on.

A non-finite loss or gradient skips the whole step's update (all three networks unchanged) and
counts it in ``state.skipped`` and the metrics.

Metrics: the target's ``loss`` and ``accuracy``; D's ``d_loss``, ``d_real``, ``d_fake`` and
``d_accuracy``; G's ``generator_loss`` and ``generator_entropy``; ``return``, the batch mean of
R^1; ``diversity_penalty``, the mean of the final transforms' mu / (MSE + eps); ``augmented``,
the share of images trained on augmented. ``return`` carries a constant -mu / eps (-1,000 at the
defaults): l^0's diversity term is mu / (0 + eps), x^0 being at distance 0 from itself, as in the
reference, and R^1 starts from d^1 = l^1 - l^0. The batch-mean baseline of that position removes
the constant from G's gradient; compare ``return`` between runs, or read it plus mu / eps.
"""

import dataclasses
import functools
from collections.abc import Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxaug import objectives
from jaxaug.generators.sequence import LSTMGenerator, MeanFieldGenerator
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
from jaxaug.objectives.tanda import generator_loss, generator_returns, transform_losses
from jaxaug.policies.sequences import DEFAULT_TFS, check_tfs, incremental_inputs


GENERATORS = ("lstm", "mean_field")
DIVERSITY_SPACES = ("pixels", "discriminator")
#: The generator's Adam learning rate: our choice, the reference's ``gen_lr`` flag default
#: (``experiments/train_scripts.py``), which it uses with plain SGD; its CIFAR-10 search
#: (``tan_search_config.json``) tried 3e-5, 1e-4 and 3e-3, ``cifar-example.sh`` runs 1e-4.
GENERATOR_LR = 1e-3


@flax.struct.dataclass
class TandaState:
    step: jax.Array
    target: TargetState
    generator: NetworkState
    discriminator: NetworkState
    skipped: jax.Array  # steps skipped for non-finite values, cumulative


@dataclasses.dataclass(frozen=True)
class TandaMethod(Method):
    """A `Method` that also exposes its generator and TF vocabulary, for tests and logging."""

    generator: MeanFieldGenerator | LSTMGenerator
    tfs: tuple

    def tf_probs(self, state: TandaState, key: jax.Array | None = None,
                 num_samples: int = 4096) -> jax.Array:
        """The generator's marginal p(tau_t = k) per position, [L, K]: exact for the mean-field
        generator, from ``num_samples`` samples drawn with ``key`` for the LSTM."""
        key = jax.random.key(0) if key is None else key
        return _marginals(self.generator, state.generator.params, key, num_samples)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _marginals(generator, params, key, num_samples):
    return generator.marginals(params, key, num_samples)


def tanda(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    *,
    generator: str = "lstm",
    sequence_length: int = 5,
    tfs: Sequence[tuple[str, int]] = DEFAULT_TFS,
    entropy_weight: float = 0.0,
    augment_prob: float = 1.0,
    warmup_steps: int = 500,
    generator_optimizer: optax.GradientTransformation | None = None,
    disc_optimizer: optax.GradientTransformation | None = None,
    discriminator: nn.Module | None = None,
    lstm_hidden: int = 64,
    lstm_embedding: int = 16,
    interpolation: str = "bilinear",
    diversity_weight: float = 1e-3,
    diversity_space: str = "discriminator",
    diversity_layer: int = 1,
    discount: float = 0.5,
    target_loss: objectives.TargetLoss = objectives.softmax_cross_entropy,
) -> TandaMethod:
    """The TANDA method (see the module docstring).

    Args:
      model, optimizer: the target network and its optimizer; batches are in [0, 1].
      generator: ``"lstm"`` or ``"mean_field"``.
      sequence_length: L, the TFs per sequence.
      tfs: the TF vocabulary, ``(op name, signed level)`` pairs (default `DEFAULT_TFS`).
      entropy_weight: lambda, the weight of G's entropy bonus (>= 0).
      augment_prob: after the warm-up, the chance that the target sees an image augmented.
      warmup_steps: steps in which the target trains on clean images only.
      generator_optimizer: default Adam(1e-3).
      disc_optimizer: default Adam(2e-4, b1=0.5), the DCGAN settings.
      discriminator: D, a module ``apply(variables, images, train) -> logits [B]`` with
        BatchNorm statistics, on images in [0, 1] (default `models.Discriminator()`; the config
        path wraps it in the dataset's `models.Normalized`).
      lstm_hidden, lstm_embedding: sizes of the LSTM generator.
      interpolation: resampling of the composed geometric TFs, ``"bilinear"`` or ``"nearest"``.
      diversity_weight: mu, the weight of the diversity term (>= 0; 0 turns it off).
      diversity_space: where its MSE is taken: ``"pixels"`` (D's input, in [0, 1]) or
        ``"discriminator"``
        (a layer of D, which must sow its layers' outputs as `models.Discriminator` does).
      diversity_layer: that layer, counted back from D's last sown one (0 = the last).
      discount: gamma, the discount of the later TFs' loss changes in a TF's return, in [0, 1].
    """
    require(generator in GENERATORS, "tanda", "generator", generator,
            f"must be one of {', '.join(GENERATORS)}")
    check_int("tanda", "sequence_length", sequence_length, 1)
    check_int("tanda", "warmup_steps", warmup_steps, 0)
    check_int("tanda", "lstm_hidden", lstm_hidden, 1)
    check_int("tanda", "lstm_embedding", lstm_embedding, 1)
    for name, value in (("entropy_weight", entropy_weight), ("diversity_weight", diversity_weight)):
        require(0 <= value < float("inf"), "tanda", name, value, "must be finite and non-negative")
    for name, value in (("augment_prob", augment_prob), ("discount", discount)):
        require(0 <= value <= 1, "tanda", name, value, "must be in [0, 1]")
    require(interpolation in ("bilinear", "nearest"), "tanda", "interpolation", interpolation,
            "must be one of bilinear, nearest")
    require(diversity_space in DIVERSITY_SPACES, "tanda", "diversity_space", diversity_space,
            f"must be one of {', '.join(DIVERSITY_SPACES)}")
    check_int("tanda", "diversity_layer", diversity_layer, 0)
    in_d = diversity_space == "discriminator"
    tfs = check_tfs(tfs)
    if generator == "lstm":
        gen = LSTMGenerator(len(tfs), sequence_length, lstm_hidden, lstm_embedding)
    else:
        gen = MeanFieldGenerator(len(tfs), sequence_length)
    disc = discriminator or Discriminator()
    gen_optimizer = generator_optimizer or optax.adam(GENERATOR_LR)
    d_optimizer = disc_optimizer or optax.adam(2e-4, b1=0.5)

    def losses_and_returns(d, steps):
        """R [B, L] and the final transforms' diversity penalty [B], from D in inference mode."""
        flat = steps.reshape(-1, *steps.shape[2:])
        logits, sown = disc.apply({"params": d.params, "batch_stats": d.batch_stats}, flat,
                                  train=False, mutable=["intermediates"])
        logits = jax.lax.stop_gradient(logits).reshape(steps.shape[:2])
        phi = sown["intermediates"]["features"][-(diversity_layer + 1)] if in_d else flat
        phi = jax.lax.stop_gradient(phi).reshape(*steps.shape[:2], *phi.shape[1:])
        losses = transform_losses(logits, phi, diversity_weight)
        penalty = losses[:, -1] + objectives.log_realness(logits[-1])
        return generator_returns(losses, discount), penalty

    def init(key, batch):
        target_key, gen_key, disc_key = jax.random.split(key, 3)
        target = init_target(target_key, batch["image"], model, optimizer)
        gen_params = gen.init(gen_key)
        # mutable=True keeps the sown activations that flax's init drops by default.
        d_vars = disc.init(disc_key, batch["image"], train=False, mutable=True)
        num_layers = len(d_vars.get("intermediates", {}).get("features", ()))
        if in_d and diversity_layer >= num_layers:
            raise ValueError(f"tanda: diversity_layer {diversity_layer} needs a discriminator "
                             f"with more than {diversity_layer} hidden layers sown as "
                             f"('intermediates', 'features'); it has {num_layers}")
        zero = jnp.zeros((), jnp.int32)
        return TandaState(
            step=zero, target=target,
            generator=NetworkState(gen_params, {}, gen_optimizer.init(gen_params)),
            discriminator=NetworkState(d_vars["params"], d_vars.get("batch_stats", {}),
                                      d_optimizer.init(d_vars["params"])),
            skipped=zero)

    def step(state, batch, key):
        x, y = batch["image"], batch["label"]
        sample_key, apply_key, mix_key, target_key = jax.random.split(key, 4)
        g, d, target = state.generator, state.discriminator, state.target

        sequences, _, _ = gen.sample(g.params, sample_key, x.shape[0])
        steps = incremental_inputs(apply_key, x, sequences, tfs, interpolation)
        fake = steps[-1]
        new_d, d_aux, d_ok = gradient_update(d, objectives.discriminator_objective, d_optimizer,
                                             d.batch_stats, steps[0], fake, discriminator=disc)
        returns, penalty = losses_and_returns(d, steps)
        rewards = -returns

        def g_objective(params):
            log_probs, entropies = gen.score(params, sequences)
            loss = generator_loss(log_probs, entropies, rewards, entropy_weight)
            return loss, {"generator_entropy": jnp.mean(entropies.sum(-1))}

        new_g, g_aux, g_ok = gradient_update(g, g_objective, gen_optimizer)

        augmented = (state.step >= warmup_steps) & jax.random.bernoulli(
            mix_key, augment_prob, (x.shape[0],))
        seen = jnp.where(augmented[:, None, None, None], fake, x)
        new_target, aux, t_ok = gradient_update(target, objectives.cross_entropy, optimizer,
                                                {"image": seen, "label": y}, model=model,
                                                batch_stats=target.batch_stats, key=target_key,
                                                target_loss=target_loss)
        # One decision for the three networks: a step either updates all of them or none.
        ok = d_ok & g_ok & t_ok
        new = state.replace(target=new_target, generator=new_g, discriminator=new_d)
        skipped = count_skips(ok)
        state = keep_if(ok, new, state).replace(step=state.step + 1,
                                               skipped=state.skipped + skipped)
        d_loss, g_loss, entropy = d_aux["loss"], g_aux["loss"], g_aux["generator_entropy"]
        metrics = {"loss": aux["loss"], "accuracy": aux["accuracy"], "d_loss": d_loss,
                   "d_real": d_aux["d_real"], "d_fake": d_aux["d_fake"],
                   "d_accuracy": d_aux["d_accuracy"], "return": jnp.mean(returns[:, 0]),
                   "diversity_penalty": jnp.mean(penalty),
                   "generator_loss": g_loss, "generator_entropy": entropy,
                   "augmented": jnp.mean(augmented.astype(jnp.float32)),
                   "skipped": skipped.astype(jnp.float32)}
        return state, metrics

    def predict(state, images):
        return predict_target(model, state.target, images)

    return TandaMethod(init=init, step=step, predict=predict, generator=gen, tfs=tfs)


@registry.register("tanda", defaults={
    **registry.keyword_defaults(tanda, "generator", "sequence_length", "entropy_weight",
                                "augment_prob", "warmup_steps", "diversity_weight",
                                "diversity_space", "diversity_layer", "discount"),
    "generator_lr": GENERATOR_LR,
})
def _from_config(settings, context: registry.Context) -> TandaMethod:
    require(settings.generator_lr > 0, "tanda", "generator_lr", settings.generator_lr,
            "must be positive")
    kwargs = {k: v for k, v in settings.items() if k != "generator_lr"}
    return tanda(context.model, context.optimizer,
                 discriminator=Normalized(Discriminator(), context.normalization),
                 generator_optimizer=optax.adam(settings.generator_lr),
                 target_loss=context.target_loss, **kwargs)
