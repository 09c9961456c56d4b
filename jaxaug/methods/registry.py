"""Methods by name: each method module registers a factory with its config section's defaults.

A registration ties three things to a name: the defaults of ``config.<name>`` (so the base config
gains the section and each hyperparameter is written once, usually as the method function's own
keyword default, read with `keyword_defaults`), a factory ``(settings, context) -> Method`` and,
optionally, how many target-optimizer updates one step makes, the task it trains on
(``"classification"`` or ``"keypoints"``), its stage schedule and checks that need more of the
config than its section (a keypoint method cannot be built without its model). The trainer builds a `Context` and
calls `create`; `check` builds the method against a stand-in context so that a bad setting fails
before any data is loaded. A method function rejects a bad argument with `InvalidArgument`, which
`create` and `check` report as the config field of that name, e.g. ``config.tanda.discount``.

    @register("my_method", defaults=keyword_defaults(my_method, "strength"))
    def _from_config(settings, context):
        return my_method(context.model, context.optimizer, **settings)
"""

import copy
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import ml_collections
import optax
from ml_collections.config_dict import FieldReference

from jaxaug import models, objectives
from jaxaug.methods.base import ONE_STAGE, InvalidArgument, Method, StagedMethod


@dataclasses.dataclass(frozen=True)
class Context:
    """What a factory gets besides its settings.

    Attributes:
      model: the target network (its BatchNorm sets and dtype from the config), on images in
        [0, 1]: its first operation is ``normalization`` (`jaxaug.models.Normalized`).
      optimizer: the target's optimizer, its schedule indexed by target update.
      lr_schedule: the target's learning rate by update count.
      steps_per_epoch: train steps (batches) per epoch.
      num_classes: classes of the dataset (keypoints: joints).
      normalization: the dataset's per-channel `jaxaug.models.Normalization`, which ``model``
        applies first. Methods see images in [0, 1] and need it only for a fill colour (its
        ``mean``: Cutout's square, pixels warped in from outside) or to make a network of their
        own read [0, 1] images as the target does.
      config: the whole run config, for the generic fields a method reads (``epochs``,
        ``augment.cutout``, ``label_smoothing``, ``cnsn``, ``num_bn_sets``, ``batch_size``).
      device_count: devices of the data-parallel mesh.
      target_loss: the per-example loss of the target, ``(logits, labels) -> [N]`` (the softmax
        cross-entropy with ``config.label_smoothing``); every classification method trains the
        target on it.
      image_shape: ``(H, W, C)`` of the training images (keypoint methods build their heatmaps
        for it).
      flip_pairs: the keypoint layout's left/right joint pairs (keypoints only).
    """

    model: nn.Module
    optimizer: optax.GradientTransformation
    lr_schedule: optax.Schedule
    steps_per_epoch: int
    num_classes: int
    normalization: models.Normalization
    config: ml_collections.ConfigDict
    device_count: int = 1
    target_loss: objectives.TargetLoss = objectives.softmax_cross_entropy
    image_shape: tuple[int, int, int] | None = None
    flip_pairs: Any = None


Factory = Callable[[ml_collections.ConfigDict, Context], Method | StagedMethod]
Stages = Callable[[ml_collections.ConfigDict, ml_collections.ConfigDict], list[tuple[str, int]]]


@dataclasses.dataclass(frozen=True)
class Registration:
    factory: Factory
    defaults: Mapping[str, Any]
    updates_per_step: Callable[[ml_collections.ConfigDict], int]
    task: str
    section: str
    stages: Stages | None
    validate: Callable[[ml_collections.ConfigDict, ml_collections.ConfigDict], None] | None
    unlabelled: bool = False


_REGISTRY: dict[str, Registration] = {}


def register(name: str, *, defaults: Mapping[str, Any] | None = None,
             updates_per_step: Callable[[ml_collections.ConfigDict], int] = lambda settings: 1,
             task: str = "classification", section: str | None = None,
             stages: Stages | None = None,
             validate: Callable[[ml_collections.ConfigDict, ml_collections.ConfigDict], None]
             | None = None, unlabelled: bool = False):
    """Registers the decorated factory as method ``name`` of ``task``; ``defaults`` become
    ``config.<section>`` (``section`` defaults to ``name``; no defaults: the method has no
    section), ``updates_per_step(settings)`` the target updates per step (the unit of the
    learning-rate schedule). ``stages(settings, config)`` lists the stages of a `StagedMethod`
    with their epochs (stages of 0 epochs are left out; none: the one stage of a `Method` for
    every epoch). ``validate(settings, config)`` raises ``ValueError`` for settings that only the
    whole config can check. ``unlabelled``: the method reads the unlabelled rest of the training
    split (a semi-supervised method), which the task then loads (`uses_unlabelled`)."""

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is already registered")
        _REGISTRY[name] = Registration(factory, dict(defaults or {}), updates_per_step, task,
                                       section or name, stages, validate, unlabelled)
        return factory

    return decorate


def keyword_defaults(function: Callable, *names: str) -> dict[str, Any]:
    """The defaults of ``function``'s keyword arguments ``names``: a config section that takes
    the method's own values instead of repeating them. An argument annotated ``T | None`` becomes
    a field of type T that may be None, so ``--config.<method>.<name>=...`` parses as a T."""
    parameters = inspect.signature(function).parameters
    missing = [n for n in names if n not in parameters
               or parameters[n].default is inspect.Parameter.empty]
    if missing:
        raise ValueError(f"{function.__name__} has no keyword default for {missing}")
    return {n: _field(parameters[n]) for n in names}


def _field(parameter: inspect.Parameter) -> Any:
    annotation = parameter.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        types_ = [t for t in typing.get_args(annotation) if t is not type(None)]
        if len(types_) == 1 and len(typing.get_args(annotation)) == 2:
            return FieldReference(parameter.default, field_type=types_[0])
    return parameter.default


def names(task: str = "classification") -> list[str]:
    """The methods of ``task``, in registration order."""
    return [name for name, r in _REGISTRY.items() if r.task == task]


def sections(task: str = "classification") -> dict[str, dict[str, Any]]:
    """``{section: defaults}`` of every method of ``task`` with a config section, copied: a
    config's typed fields (`FieldReference`) must not be shared with another config."""
    return {r.section: copy.deepcopy(dict(r.defaults)) for r in _REGISTRY.values()
            if r.defaults and r.task == task}


def _registration(name: str) -> Registration:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown method {name!r}; available: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def settings_of(name: str, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config.<section>``, or an empty section for a method without one."""
    registration = _registration(name)
    return config[registration.section] if registration.defaults else ml_collections.ConfigDict()


def target_updates_per_step(config: ml_collections.ConfigDict) -> int:
    """How many optimizer updates of the target one step of ``config.method`` makes."""
    return _registration(config.method).updates_per_step(settings_of(config.method, config))


def uses_unlabelled(config: ml_collections.ConfigDict) -> bool:
    """Whether ``config.method`` trains on the unlabelled rest of the training split."""
    return _registration(config.method).unlabelled


def stage_schedule(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
    """The stages of ``config.method`` in order with their epochs (those of 0 epochs left out)."""
    registration = _registration(config.method)
    if registration.stages is None:
        return [(ONE_STAGE, config.epochs)]
    stages = registration.stages(settings_of(config.method, config), config)
    return [(name, epochs) for name, epochs in stages if epochs > 0]


def create(context: Context) -> Method | StagedMethod:
    """The method ``context.config.method`` from its section; an argument the method rejects is
    reported as its config field (``InvalidArgument.argument`` may be dotted, e.g. ``astn.beta``
    for a field of a subsection)."""
    name = context.config.method
    settings = settings_of(name, context.config)
    try:
        return _registration(name).factory(settings, context)
    except InvalidArgument as e:
        try:
            value = _lookup(settings, e.argument)
        except KeyError:
            raise e from None
        section = _registration(name).section
        raise ValueError(f"Invalid config.{section}.{e.argument}={value!r}: {e.why}") from e


def check(config: ml_collections.ConfigDict, device_count: int) -> None:
    """Runs the registration's ``validate``; a classification method is also built against a
    stand-in context (no model, data or optimizer: a factory only closes over them), so a bad
    setting fails as in `create`, before any data is loaded."""
    registration = _registration(config.method)
    if registration.validate is not None:
        registration.validate(settings_of(config.method, config), config)
    if registration.task != "classification":
        return
    create(Context(model=None, optimizer=optax.identity(), lr_schedule=optax.constant_schedule(0.0),
                   steps_per_epoch=1, num_classes=10, normalization=models.Normalization((0.5,), (0.25,)),
                   config=config, device_count=device_count))


def _lookup(section: ml_collections.ConfigDict, dotted: str) -> Any:
    value = section
    for part in dotted.split("."):
        if part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value
