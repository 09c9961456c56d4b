"""`tfds:<name>`: TensorFlow Datasets read with `tfds.data_source` (array_record; no TensorFlow).

Small datasets are read completely into memory (and cached by the caller); `imagenet2012` is read
lazily, decoding and resizing each image when it is requested.
"""

import functools

import numpy as np
import tensorflow_datasets as tfds

from jaxaug.data.errors import SplitNotFoundError, UnknownDatasetError
from jaxaug.data.imageops import resize_and_center_crop, resize_square, stack_images
from jaxaug.data.sources import LazySource

LAZY_DATASETS = ("imagenet2012",)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
IMAGENET_IMAGE_SIZE = 224
_EVAL_SPLIT = {"imagenet2012": "validation"}  # the split used as `test`; default "test"


def _builder(name: str, data_dir: str | None):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as e:
        raise UnknownDatasetError(f"tfds has no dataset {name!r}") from e


def _splits(builder, name: str) -> tuple[str, str]:
    """(train split, test split), checked against the prepared splits when tfds knows them."""
    wanted = ("train", _EVAL_SPLIT.get(name, "test"))
    available = sorted(builder.info.splits)
    for split in wanted:
        if available and split not in available:
            raise SplitNotFoundError(
                f"split {split!r} not found in tfds:{name}; available splits: {available}"
            )
    return wanted


def class_names(name: str, data_dir: str | None) -> tuple[str, ...]:
    return tuple(_builder(name, data_dir).info.features["label"].names)


def identity(name: str, data_dir: str | None, image_size: int | None) -> dict:
    """What the decoded arrays depend on, as a cache key."""
    builder = _builder(name, data_dir)
    train, test = _splits(builder, name)
    sizes = {s: len(tfds.data_source(name, split=s, data_dir=data_dir)) for s in (train, test)}
    return {
        "source": "tfds",
        "name": name,
        "version": str(builder.info.version),
        "data_dir": str(builder.data_dir),
        "sizes": sizes,
        "image_size": image_size,
    }


def read_arrays(name: str, data_dir: str | None, image_size: int | None) -> dict[str, np.ndarray]:
    """Read the train and test splits completely: `{split}_images` uint8 [N, H, W, C],
    `{split}_labels` int32 [N] and `class_names`, resized to (image_size, image_size) if given."""
    builder = _builder(name, data_dir)
    arrays = {"class_names": np.array(builder.info.features["label"].names)}
    for key, split in zip(("train", "test"), _splits(builder, name), strict=True):
        source = tfds.data_source(name, split=split, data_dir=data_dir)
        images, labels = [], []
        # One by one: the batched `__getitems__` fails under tfds.testing.mock_data.
        for i in range(len(source)):
            example = source[i]
            image = example["image"]
            images.append(image if image_size is None else resize_square(image, image_size))
            labels.append(example["label"])
        arrays[f"{key}_images"] = stack_images(
            images, lambda i, split=split: f"tfds:{name} {split}[{i}]"
        )
        arrays[f"{key}_labels"] = np.array(labels, dtype=np.int32)
    return arrays


def _read_example(source, image_size: int, index: int) -> tuple[np.ndarray, int]:
    example = source[index]
    return resize_and_center_crop(example["image"], image_size), int(example["label"])


def _read_label(source, index: int) -> int:
    return int(source[index]["label"])


def lazy_sources(
    name: str, data_dir: str | None, image_size: int | None
) -> tuple[LazySource, LazySource]:
    """(train, test) sources that decode each image on `get`, resize its shorter side to
    `image_size` (default 224) and crop the centre square."""
    image_size = image_size or IMAGENET_IMAGE_SIZE
    builder = _builder(name, data_dir)
    channels = builder.info.features["image"].shape[-1]
    sources = []
    for split in _splits(builder, name):
        source = tfds.data_source(name, split=split, data_dir=data_dir)
        # Labels alone are read without decoding the JPEG; needed only to subsample by class.
        label_source = tfds.data_source(
            name, split=split, data_dir=data_dir, decoders={"image": tfds.decode.SkipDecoding()}
        )
        sources.append(
            LazySource(
                functools.partial(_read_example, source, image_size),
                functools.partial(_read_label, label_source),
                len(source),
                (image_size, image_size, channels),
            )
        )
    return tuple(sources)
