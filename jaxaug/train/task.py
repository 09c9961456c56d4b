"""What differs between training tasks, for the one training loop of `jaxaug.train.loop`.

A `Task` loads the data of a config, builds the method's `Context` (model, optimizer, learning
rate schedule) and says how the loop feeds it: its host batches, the preprocessing on the device
before each step, the evaluation sums of a split and the main score with its direction.

- `Classification`: `jaxaug.data.load_dataset` sources; the standard on-device augmentation of
  ``config.augment`` before the method's step (`jaxaug.train.steps.preprocessing`); accuracy
  (maximized) and mean loss on the test split and the hold-out when ``config.val_size`` > 0.
- `Keypoints`: in-memory `KeypointData` arrays; no preprocessing (the method augments images
  and joints together); PCKh / PCK (maximized) or NME (300-W, minimized) on the test split and,
  when ``config.val_size`` > 0, on a hold-out of the training set, which then picks the best
  epoch (checkpoint "best", the summary's ``best_val_*`` and ``test_*_at_best_val``). PCKh pools
  the 14 joints of MPII's reported mean (`metric_sums`).
"""

import functools
import os
from collections.abc import Callable
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxaug import data, methods, models, objectives, quant
from jaxaug.data import keypoint_formats, keypoint_synthetic
from jaxaug.data.dataset import channel_stats
from jaxaug.methods.pose import torch_rmsprop
from jaxaug.ops.point import to_float
from jaxaug.train import config as config_lib
from jaxaug.train import steps
from jaxaug.train.optim import learning_rate_schedule, make_optimizer

class Task:
    """The task-specific half of a run; subclasses load their data in ``__init__(config)``.

    Attributes:
      score: the main evaluation score, ``"accuracy"``, ``"pckh"``, ``"pck"`` or ``"nme"``.
      maximize: whether a higher ``score`` is better (checkpoints keep the best).
      splits: the held-out splits evaluated, ``"test"`` first.
      num_train: training examples.
    """

    score: str
    maximize: bool
    splits: tuple[str, ...]
    num_train: int

    def context(self, config, updates_per_epoch: int) -> methods.Context:
        """The `Context` a method of ``config`` is built from."""
        raise NotImplementedError

    def init_batch(self) -> Any:
        """The example batch that ``method.init`` gets."""
        raise NotImplementedError

    def train_dataset(self, config, method) -> grain.MapDataset:
        """This process's training batches of every epoch, element k for global step k
        (`jaxaug.data.train_dataset`), for ``method``."""
        raise NotImplementedError

    def eval_dataset(self, split: str, batch_size: int) -> grain.MapDataset:
        """This process's share of every example of ``split`` once, padded, with a ``mask``
        (`jaxaug.data.eval_dataset`)."""
        raise NotImplementedError

    def preprocessing(self, method, config) -> Callable:
        """``(batch, key) -> (batch, step key)`` on the device before each step."""
        raise NotImplementedError

    def eval_sums(self, method, config) -> Callable:
        """``(state, batch) -> sums`` of one evaluation batch (not jitted)."""
        raise NotImplementedError

    def scores(self, totals: dict[str, float]) -> dict[str, float]:
        """The logged scores of a split from its summed ``eval_sums``; ``score`` among them."""
        raise NotImplementedError

    def augmented_images(self, method, config) -> Callable | None:
        """``(uint8 batch, key) -> uint8 images`` as the network sees them, for the image grid of
        the first batch, or None."""
        return None

    def describe(self, config) -> str:
        """What the run's log line says about the data and model."""
        raise NotImplementedError

    def summary_fields(self, config) -> dict[str, Any]:
        """Task-specific fields of ``summary.json``."""
        return {}

    def trained(self, context: methods.Context, state: Any) -> dict[str, Any]:
        """What `jaxaug.train.load_trained` returns besides ``config``, ``step``, ``predict``."""
        raise NotImplementedError


def _process() -> dict[str, int]:
    return {"process_index": jax.process_index(), "process_count": jax.process_count()}


class Classification(Task):
    score, maximize = "accuracy", True

    def __init__(self, config):
        self.dataset = data.load_dataset(
            config.dataset, data_dir=config.data_dir, cache_dir=config.cache_dir,
            image_size=config.image_size, reduced=config.reduced, val_size=config.val_size,
            seed=config.data_seed, stream=config.data.stream,
            unlabelled=methods.registry.uses_unlabelled(config))
        self.splits = ("test",) if self.dataset.val is None else ("test", "val")
        self.num_train = len(self.dataset.train)

    def context(self, config, updates_per_epoch):
        d = self.dataset
        normalization = models.Normalization(d.mean, d.std)
        return methods.Context(
            model=models.Normalized(create_model(config, d.num_classes), normalization),
            optimizer=make_optimizer(config, updates_per_epoch),
            lr_schedule=learning_rate_schedule(config, updates_per_epoch),
            steps_per_epoch=data.steps_per_epoch(self.num_train, config.batch_size),
            num_classes=d.num_classes, normalization=normalization, config=config,
            device_count=jax.device_count(), image_shape=d.image_shape,
            target_loss=functools.partial(objectives.softmax_cross_entropy,
                                          label_smoothing=config.label_smoothing))

    def init_batch(self):
        return steps.example_batch(self.dataset)

    def train_dataset(self, config, method):
        transform = None
        if config.augment.where == "host":
            per_process = config.batch_size // jax.process_count()
            transform = steps.HostAugmentation(
                config.augment, self.dataset.mean, not method.applies_cutout, config.seed,
                config.batch_size, jax.process_index() * per_process)
        return data.train_dataset(self.dataset.train, config.batch_size, seed=config.seed,
                                  epochs=config.epochs, transform=transform,
                                  streams=self.streams(method), **_process())

    def streams(self, method) -> dict[str, data.Stream]:
        """The `jaxaug.data.Stream`s of ``method.streams``."""
        streams = {}
        for name, (split, batch_size) in getattr(method, "streams", {}).items():
            if split not in methods.base.STREAM_SPLITS:
                raise ValueError(f"the method's stream {name!r} reads split {split!r}; use one of "
                                 f"{methods.base.STREAM_SPLITS}")
            source = self.dataset.train if split == "train" else self.dataset.unlabelled
            if source is None:
                raise ValueError(f"the method's stream {name!r} reads the unlabelled rest of the "
                                 "training split, which this run has none of: set config.reduced "
                                 "and register the method with unlabelled=True")
            fields = ("image", "label") if split == "train" else ("image",)
            streams[name] = data.Stream(source, batch_size, fields)
        return streams

    def eval_dataset(self, split, batch_size):
        return data.eval_dataset(getattr(self.dataset, split), batch_size, **_process())

    def preprocessing(self, method, config):
        return steps.preprocessing(method, self.dataset, config)

    def eval_sums(self, method, config):
        return steps.classification_sums(method)

    def scores(self, totals):
        return steps.accuracy_and_loss(totals)

    def augmented_images(self, method, config):
        return steps.augmented_images(method, self.dataset, config) if config.save_image_grid else None

    def describe(self, config):
        return (f"{config.model} on {config.dataset}: {self.num_train} train / "
                f"{len(self.dataset.test)} test images")

    def trained(self, context, state):
        return {"dataset": self.dataset}


def create_model(config: ml_collections.ConfigDict, num_classes: int):
    """The target network of ``config``: name, BN sets, dtype and SelfNorm / CrossNorm."""
    placement = config_lib.cnsn_placement(config)
    extra = {} if placement is None else {"cnsn": placement}
    return models.create(config.model, num_classes=num_classes, num_bn_sets=config.num_bn_sets,
                         dtype=config.dtype, **extra)


class Keypoints(Task):
    maximize_of = {"pckh": True, "pck": True, "nme": False}

    def __init__(self, config):
        train_set, test_set = load_keypoints(config)
        self.train, self.test = _arrays(train_set), _arrays(test_set)
        self.splits = ("test",)
        if config.val_size:
            self.train, self.val = hold_out(self.train, config.val_size, config.data_seed)
            self.splits = ("test", "val")
        self.test_set, self.flip_pairs = test_set, train_set.flip_pairs
        self.metric_joints = test_set.metric_joints
        self.mean, self.std = channel_stats(self.train["image"])
        self.score = test_set.metric
        self.maximize = self.maximize_of[self.score]
        self.num_train = len(self.train["image"])
        self.num_joints = self.train["joints"].shape[1]

    def context(self, config, updates_per_epoch):
        normalization = models.Normalization(self.mean, self.std)
        model = models.Normalized(models.create_pose_model(
            config.model, self.num_joints, quant=config.quant, **dict(config[config.model])),
            normalization)
        # RMSProp at a constant rate, as the stacked hourglass and CU-Net papers train; binary
        # and ternary master weights clamped to [-1, 1] after each step, as the official code.
        o = config.optimizer
        optimizer = torch_rmsprop(o.lr, o.decay, o.eps)
        if quant.get_spec(config.quant).weights != "float":
            images = jax.ShapeDtypeStruct((1, *self.train["image"].shape[1:]), jnp.float32)
            optimizer = optax.chain(optimizer,
                                    quant.clamp_quantized_kernels(model, images, train=False))
        return methods.Context(
            model=model, optimizer=optimizer,
            lr_schedule=optax.constant_schedule(o.lr),
            steps_per_epoch=data.steps_per_epoch(self.num_train, config.batch_size),
            num_classes=self.num_joints, normalization=normalization, config=config,
            device_count=jax.device_count(), image_shape=self.train["image"].shape[1:],
            flip_pairs=self.flip_pairs)

    def init_batch(self):
        return None

    def train_dataset(self, config, method):
        return data.train_dataset({k: v for k, v in self.train.items() if k != "norm"},
                                  config.batch_size, seed=config.seed, epochs=config.epochs,
                                  **_process())

    def eval_dataset(self, split, batch_size):
        return data.eval_dataset(getattr(self, split), batch_size, **_process())

    def preprocessing(self, method, config):
        return lambda batch, key: (batch, key)

    def eval_sums(self, method, config):
        def eval_step(state, batch):
            joints, _ = method.predict(state, to_float(batch["image"]))
            return metric_sums(joints, batch["joints"], batch["visible"], batch["norm"],
                               batch["mask"], self.score, config.pck_threshold,
                               self.metric_joints)

        return eval_step

    def scores(self, totals):
        return {self.score: totals["value"] / totals["count"]}

    def describe(self, config):
        val = f"{len(self.val['image'])} val / " if "val" in self.splits else ""
        return (f"{config.model} ({config.quant}) on {config.dataset}: {self.num_train} train / "
                f"{val}{len(self.test['image'])} test, {self.num_joints} joints")

    def summary_fields(self, config):
        return {"quant": config.quant}

    def trained(self, context, state):
        pose = state.pose if hasattr(state, "pose") else state
        return {"model": context.model, "test": self.test_set,
                "variables": {"params": pose.params, "batch_stats": pose.batch_stats}}


TASKS = {"classification": Classification, "keypoints": Keypoints}


def load(config, task: "str | Task | None" = None) -> Task:
    """``task`` as a `Task`, loading the config's data: a `Task` as it is, or the name of
    ``config.task`` (None: that one; no field: "classification"), whose config it validated."""
    if isinstance(task, Task):
        return task
    name = config.get("task", "classification")
    if task not in (None, name):
        raise ValueError(f"task={task!r}, but the config is of task {name!r} (config.task); "
                         f"start it from base_config({task!r})")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; use one of {', '.join(TASKS)}")
    return TASKS[name](config)


def load_keypoints(config: ml_collections.ConfigDict):
    """(train, test) `KeypointData` named by ``config.dataset``:

    - ``synthetic``: procedural articulated figures (`jaxaug.data.keypoint_synthetic`);
    - ``mpii:<mpii_human_pose_v1_u12_1.mat>``, ``lsp:<dir>``, ``300w:<dir>``: the real sets in
      their release formats (`jaxaug.data.keypoint_formats`; MPII needs a held-out image list
      for its test split, which the loader documents, so it is read from ``<dir>/holdout.txt``).
    """
    name, size = config.dataset, config.image_size
    if name == "synthetic":
        return (keypoint_synthetic.load("train", num=config.train_size, size=size),
                keypoint_synthetic.load("test", num=config.test_size, size=size))
    kind, _, path = name.partition(":")
    if kind == "mpii" and path:
        holdout_file = os.path.join(os.path.dirname(path), "holdout.txt")
        if not os.path.exists(holdout_file):
            raise data.SplitNotFoundError(
                f"mpii: {holdout_file} is missing; list the held-out image names there, one per "
                "line (MPII publishes joints for its training images only)")
        with open(holdout_file) as f:
            holdout = {line.strip() for line in f if line.strip()}
        return tuple(keypoint_formats.load_mpii(path, split=split, size=size, holdout=holdout)
                     for split in ("train", "test"))
    loaders = {"lsp": keypoint_formats.load_lsp, "300w": keypoint_formats.load_300w}
    if kind not in loaders or not path:
        raise data.UnknownDatasetError(
            f"unknown keypoint dataset {name!r}; use synthetic, mpii:<annotation .mat>, "
            "lsp:<dir> or 300w:<dir>")
    return tuple(loaders[kind](path, split=split, size=size) for split in ("train", "test"))


def metric_sums(pred, gt, visible, norm, mask, metric, threshold, joints=None):
    """Per-batch sums of the metric, padding masked out: correct and counted visible joints for
    PCK / PCKh, or the per-image NME and the image count.

    ``joints`` (static indices, None: all) are the joints PCK / PCKh pools, the layout's
    `KeypointData.metric_joints`: MPII's reported PCKh pools the visible joints of all but pelvis
    and thorax (`jaxaug.objectives.MPII_PCKH_JOINTS`), i.e. the visible-count-weighted mean of
    the 14 per-joint PCKhs, the "Mean" of the MPII evaluation code the pose literature uses
    (sum_k PCKh_k count_k / sum_k count_k over those joints). The CU-Net reference code averages
    the 14 per-joint PCKhs unweighted instead, per batch; the two differ only where the joints'
    visible counts differ. NME averages every landmark of an image."""
    if joints is not None and metric != "nme":
        selected = np.zeros(jnp.shape(visible)[-1], bool)
        selected[list(joints)] = True
        visible = visible & selected
    dist = jnp.linalg.norm(pred - gt, axis=-1)
    if metric == "nme":
        per_image = jnp.mean(dist, axis=-1) / norm
        return {"value": jnp.sum(per_image * mask), "count": jnp.sum(mask)}
    counted = visible & (mask[:, None] > 0)
    hits = (dist <= threshold * norm[:, None]) & counted
    return {"value": jnp.sum(hits).astype(jnp.float32), "count": jnp.sum(counted).astype(jnp.float32)}


def hold_out(arrays: dict[str, np.ndarray], val_size: int, seed: int
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(rest, held out) of the per-example ``arrays``: ``val_size`` examples drawn uniformly
    without replacement by ``np.random.default_rng([seed, 1])`` (the stream of classification's
    hold-out), each part in the source order. The validation split on which the best epoch is
    chosen (the thesis's MPII validation set is likewise held out from the training set,
    Tang thesis, sec. 5.4)."""
    n = len(arrays["image"])
    if not 0 < val_size < n:
        raise ValueError(f"Invalid config.val_size={val_size!r}: must be in [1, {n - 1}] to "
                         f"hold out from the {n} training examples and keep one")
    held = np.sort(np.random.default_rng([seed, 1]).permutation(n)[:val_size])
    rest = np.setdiff1d(np.arange(n), held, assume_unique=True)
    return ({k: v[rest] for k, v in arrays.items()}, {k: v[held] for k, v in arrays.items()})


def _arrays(keypoint_set) -> dict[str, np.ndarray]:
    """The per-example arrays that go to the device."""
    return {"image": keypoint_set.images, "joints": keypoint_set.joints.astype(np.float32),
            "visible": keypoint_set.visible.astype(bool), "norm": keypoint_set.norm.astype(np.float32)}
