"""Datasets, host input pipeline (grain) and on-device augmentation. Typical use:

dataset = load_dataset("imagefolder:../shared/data/cifar10-jpeg.zip", val_size=5000)
batches = iterate(train_dataset(dataset.train, 128, seed=0, epochs=200))
for batch in prefetch_to_mesh(batches, sharding):
    batch = augment.standard(key, batch, cutout=16, cutout_fill=dataset.mean)  # floats in [0, 1]
"""

from jaxaug.data import augment
from jaxaug.data.dataset import Dataset, load_dataset
from jaxaug.data.errors import (
    CorruptCacheError,
    CorruptImageError,
    DataError,
    DatasetPathError,
    EmptyClassError,
    ImageSizeMismatchError,
    SplitNotFoundError,
    UnknownDatasetError,
)
from jaxaug.data.imagegrid import save_image_grid
from jaxaug.data.pipeline import (
    DevicePrefetch,
    Stream,
    TrainingStream,
    epoch_batches,
    eval_batches,
    eval_dataset,
    iterate,
    prefetch_to_mesh,
    steps_per_epoch,
    train_dataset,
)
from jaxaug.data.sources import ArraySource, LazySource, Source

__all__ = [
    "ArraySource",
    "CorruptCacheError",
    "CorruptImageError",
    "DataError",
    "Dataset",
    "DatasetPathError",
    "EmptyClassError",
    "ImageSizeMismatchError",
    "LazySource",
    "Source",
    "SplitNotFoundError",
    "Stream",
    "TrainingStream",
    "UnknownDatasetError",
    "DevicePrefetch",
    "augment",
    "epoch_batches",
    "eval_batches",
    "eval_dataset",
    "iterate",
    "load_dataset",
    "prefetch_to_mesh",
    "save_image_grid",
    "steps_per_epoch",
    "train_dataset",
]
