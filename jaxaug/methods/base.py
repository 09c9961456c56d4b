"""What every training method provides: ``init``, a pure step per stage (`StagedMethod`; a
`Method` has one) and ``predict``."""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]

# The batch entry holding the images (floats in [0, 1]) before the standard augmentation (crop,
# flip, policy, Cutout), which the trainer adds for a method with ``Method.unaugmented_input``.
UNAUGMENTED = "image_unaugmented"


@flax.struct.dataclass
class TargetState:
    """Parameters, BatchNorm statistics and optimizer state of the target network."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: optax.OptState

    def apply_gradients(self, grads: Any, batch_stats: Any, optimizer: optax.GradientTransformation):
        updates, opt_state = optimizer.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            batch_stats=batch_stats,
            opt_state=opt_state,
        )


@flax.struct.dataclass
class NetworkState:
    """Parameters, BatchNorm statistics ({} if none) and optimizer state of a network the method
    trains besides the target: a generator, a discriminator, a policy."""

    params: Any
    batch_stats: Any
    opt_state: optax.OptState

    def apply_gradients(self, grads: Any, batch_stats: Any, optimizer: optax.GradientTransformation):
        updates, opt_state = optimizer.update(grads, self.opt_state, self.params)
        return NetworkState(optax.apply_updates(self.params, updates), batch_stats, opt_state)


def init_target(
    key: jax.Array, images: jax.Array, model: nn.Module, optimizer: optax.GradientTransformation
) -> TargetState:
    """Initialises a target network from a batch of images."""
    variables = model.init({"params": key}, images, train=False)
    params = variables["params"]
    return TargetState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
    )


def predict_target(model: nn.Module, state: Any, images: jax.Array, bn_set: int = 0) -> jax.Array:
    """Logits of the target network in evaluation mode (running BatchNorm statistics)."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return model.apply(variables, images, train=False, bn_set=bn_set)


def all_finite(tree: Any) -> jax.Array:
    """Whether every leaf of ``tree`` is finite everywhere (a traced bool)."""
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def keep_if(ok: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``ok``, else ``old``, leaf by leaf: how a step skips a non-finite update
    without Python branching on a traced value."""
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def clip_by_global_norm(grads: Any, max_norm: float | None) -> tuple[Any, jax.Array]:
    """``grads`` scaled by min(1, max_norm / ||grads||) (the global L2 norm over all leaves, as
    ``torch.nn.utils.clip_grad_norm_``), and that norm before clipping; ``max_norm`` None or 0
    leaves ``grads`` unchanged."""
    norm = optax.global_norm(grads)
    if not max_norm:
        return grads, norm
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda g: g * scale, grads), norm


def gradient_update(
    network: Any,
    objective: Callable[..., tuple[jax.Array, dict[str, Any]]],
    optimizer: optax.GradientTransformation,
    *args: Any,
    grad_clip: float | None = None,
    keep_on_nonfinite: bool = True,
    **kwargs: Any,
) -> tuple[Any, dict[str, Any], jax.Array]:
    """One optimizer step of ``network`` (a `TargetState` or `NetworkState`) on
    ``objective(network.params, *args, **kwargs) -> (loss, aux)``:

        g = clip(grad_params loss, grad_clip),   network' = network.apply_gradients(g)

    with the global-norm clip of `clip_by_global_norm` (None or 0: none) and the new BatchNorm
    statistics from ``aux["batch_stats"]`` (kept as they were if aux has none). Returns
    ``(network', aux, ok)``: ``aux`` without the statistics, with ``"loss"`` (unless the
    objective's aux has its own) and ``"grad_norm"`` (before clipping); ``ok`` is False when the
    loss or the gradient's global norm is not finite (a NaN or an infinity in any gradient makes
    the norm so), and then ``network'`` is ``network`` unchanged, so the caller only counts the
    skip (`count_skips`). ``keep_on_nonfinite=False`` returns the update as computed: for a
    method with one network, whose whole state the trainer's guard (``config.nonfinite``)
    already keeps or stops on, so the step does not pay for the selection twice."""
    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(network.params, *args, **kwargs)
    grads, grad_norm = clip_by_global_norm(grads, grad_clip)
    aux = dict(aux)
    new = network.apply_gradients(grads, aux.pop("batch_stats", network.batch_stats), optimizer)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    if keep_on_nonfinite:
        new = keep_if(ok, new, network)
    return new, {"loss": loss, **aux, "grad_norm": grad_norm}, ok


def count_skips(*oks: jax.Array) -> jax.Array:
    """How many of the updates flagged by ``oks`` were skipped (int32): a method adds it to its
    state's running count and logs it as the metric ``skipped``."""
    return sum((~jnp.asarray(ok)).astype(jnp.int32) for ok in oks)


class InvalidArgument(ValueError):
    """A method rejected one of its arguments. ``argument`` names it, so that a config-built
    method can report the config field of that name (`jaxaug.methods.registry.create`)."""

    def __init__(self, method: str, argument: str, value: Any, why: str):
        super().__init__(f"{method}: {argument} {why}, got {value!r}")
        self.method, self.argument, self.value, self.why = method, argument, value, why


def require(ok: bool, method: str, argument: str, value: Any, why: str) -> None:
    """`InvalidArgument` (``"<method>: <argument> <why>, got <value>"``) unless ``ok``."""
    if not ok:
        raise InvalidArgument(method, argument, value, why)


def check_int(method: str, name: str, value: Any, low: int) -> None:
    """`InvalidArgument` naming ``method``'s argument ``name`` unless it is an integer >= ``low``."""
    require(not isinstance(value, bool) and isinstance(value, int) and value >= low, method, name,
            value, f"must be an integer, at least {low}")


@dataclasses.dataclass(frozen=True)
class StagedMethod:
    """A training method as the trainer sees it: ``init``, one pure step per stage name (e.g.
    pre-training, then joint training), each jit-compiled on its own, and ``predict``.

    Attributes:
      init: ``(key, batch) -> state``; ``state`` is a pytree with an integer ``step`` field.
      steps: stage name -> ``(state, batch, key) -> (state, metrics)``, pure.
      predict: ``(state, images) -> logits`` (classification) or ``(joints, peaks)`` (keypoints)
        for evaluation.
      unaugmented_input: whether a step also wants the images before the standard
        augmentation: the trainer then adds them to the batch as ``batch[UNAUGMENTED]``.
      applies_cutout: whether a step applies ``config.augment.cutout`` itself (after its own
        policy): the trainer's standard augmentation then leaves Cutout out.
      streams: further per-step batches, name -> (split, global batch size), split one of
        `STREAM_SPLITS`: the trainer adds ``batch["image_<name>"]`` (and for "train"
        ``batch["label_<name>"]``), read by `jaxaug.data.Stream` and given the standard
        augmentation with draws of their own.
    """

    init: Callable[[jax.Array, Batch], Any]
    steps: Mapping[str, Callable[[Any, Batch, jax.Array], tuple[Any, Metrics]]]
    predict: Callable[[Any, jax.Array], Any]
    unaugmented_input: bool = dataclasses.field(default=False, kw_only=True)
    applies_cutout: bool = dataclasses.field(default=False, kw_only=True)
    streams: Mapping[str, tuple[str, int]] = dataclasses.field(default_factory=dict,
                                                               kw_only=True)


# What a method's ``streams`` may read: the labelled training set (in an order of its own) or the
# rest of the training split that ``config.reduced`` leaves out (`jaxaug.data.Dataset.unlabelled`).
STREAM_SPLITS = ("train", "unlabelled")


# The stage of a method trained in one stage.
ONE_STAGE = "train"


@dataclasses.dataclass(frozen=True)
class Method:
    """A method trained in one stage: ``step`` is its only stage, `ONE_STAGE` in ``steps``; the
    attributes are those of `StagedMethod`."""

    init: Callable[[jax.Array, Batch], Any]
    step: Callable[[Any, Batch, jax.Array], tuple[Any, Metrics]]
    predict: Callable[[Any, jax.Array], Any]
    unaugmented_input: bool = dataclasses.field(default=False, kw_only=True)
    applies_cutout: bool = dataclasses.field(default=False, kw_only=True)
    streams: Mapping[str, tuple[str, int]] = dataclasses.field(default_factory=dict,
                                                               kw_only=True)

    @property
    def steps(self) -> Mapping[str, Callable[[Any, Batch, jax.Array], tuple[Any, Metrics]]]:
        return {ONE_STAGE: self.step}
