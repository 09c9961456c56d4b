"""The supervised step actually learns: the loss falls on a small fixed batch of real images."""

import io
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxaug import data, methods, models
from jaxaug.train import base_config, make_mesh, make_optimizer
from jaxaug.train.steps import compile_steps

CIFAR_ZIP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "cifar10-jpeg.zip")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_batch(per_class: int) -> dict[str, np.ndarray]:
    """The first ``per_class`` training images of every class, decoded with Pillow."""
    images, labels = [], []
    with zipfile.ZipFile(CIFAR_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("train/") and n.endswith(".jpg"))
        for label, name in enumerate(CLASSES):
            members = [n for n in names if n.split("/")[1] == name][:per_class]
            for member in members:
                images.append(np.asarray(Image.open(io.BytesIO(archive.read(member))).convert("RGB")))
                labels.append(label)
    return {"image": np.stack(images), "label": np.asarray(labels, np.int32)}


def synthetic_batch(per_class: int) -> dict[str, np.ndarray]:
    dataset = data.load_dataset("synthetic", reduced=10 * per_class)
    images, labels = dataset.train.get(np.arange(len(dataset.train)))
    return {"image": images, "label": labels}


# The real-data case is slow (13 s); the synthetic one checks the same learning property fast.
@pytest.mark.parametrize("source", [pytest.param("cifar10-jpeg", marks=pytest.mark.slow),
                                    "synthetic"])
def test_loss_falls_on_a_small_fixed_batch(source):
    if source == "cifar10-jpeg" and not os.path.exists(CIFAR_ZIP):
        pytest.skip(f"{CIFAR_ZIP} is absent")
    batch = cifar_batch(4) if source == "cifar10-jpeg" else synthetic_batch(4)
    config = base_config()
    config.model, config.batch_size, config.epochs = "wrn-10-1", 40, 1
    config.augment.pad, config.augment.flip = 0, False  # a fixed batch, so it can be memorised
    config.optimizer.lr = 0.05
    dataset = data.load_dataset("synthetic")
    model = models.create(config.model, num_classes=10)
    method = methods.supervised(model, make_optimizer(config, 10_000))
    steps = compile_steps(method, dataset, config, make_mesh())
    state = steps.init(jax.random.key(0))
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    losses = []
    for _ in range(40):
        state, metrics = steps.train_step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[0] > 1.5  # near log(10) = 2.3 at initialisation
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses
