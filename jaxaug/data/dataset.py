"""`load_dataset`: one entry point for every dataset, returning a `Dataset` of sources."""

import dataclasses
import functools
import os
from pathlib import Path

import numpy as np

from jaxaug.data import cache, imagefolder, splits, synthetic
from jaxaug.data.errors import DataError, UnknownDatasetError
from jaxaug.data.sources import ArraySource, Source


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset's sources and metadata.

    `mean` and `std` are float32 [C] per-channel statistics in [0, 1] units, so that
    `(image / 255 - mean) / std` normalizes; they are computed over the final training split for
    in-memory datasets, estimated on a sample of it for streamed image folders, read from the
    metadata (the whole converted train split) for `arrayrecord:` datasets, and are the usual
    ImageNet constants for imagenet2012. `unlabelled` (loaded with `unlabelled=True`) is the rest
    of the training split that `reduced` left out, for semi-supervised methods.
    """

    train: Source
    val: Source | None
    test: Source
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    mean: np.ndarray
    std: np.ndarray
    name: str
    unlabelled: Source | None = None


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over all pixels of uint8 images [N, H, W, C], in
    [0, 1] units: mean = E[x], std = sqrt(E[x^2] - E[x]^2).

    Sums are exact integers: 255^2 fits in uint16, so squares are taken in uint16 and summed in
    uint64, by chunks to bound memory (and one channel at a time: numpy reduces a whole strided
    channel far faster than the last axis of [M, C])."""
    channels = images.shape[-1]
    total, total_sq = np.zeros(channels, np.uint64), np.zeros(channels, np.uint64)
    for start in range(0, len(images), chunk):
        for c in range(channels):
            x = images[start : start + chunk, ..., c].astype(np.uint16)
            total[c] += x.sum(dtype=np.uint64)
            x *= x
            total_sq[c] += x.sum(dtype=np.uint64)
    count = images.size // channels
    mean = total / count / 255
    std = np.sqrt(np.maximum(total_sq / count / 255**2 - mean**2, 0))
    return mean.astype(np.float32), std.astype(np.float32)


@functools.lru_cache(maxsize=2)
def _synthetic_arrays(image_size: int) -> dict[str, np.ndarray]:
    """The synthetic splits, generated once per process and image size (2-4 s of CPU each time
    otherwise), as read-only arrays so that no caller can change another's dataset."""
    arrays = synthetic.read_arrays(image_size)
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def _in_memory(
    arrays: dict[str, np.ndarray],
) -> tuple[ArraySource, ArraySource | None, ArraySource, tuple[str, ...]]:
    def source(split):
        if f"{split}_images" not in arrays:
            return None
        return ArraySource(arrays[f"{split}_images"], arrays[f"{split}_labels"])

    return (
        source("train"),
        source("val"),
        source("test"),
        tuple(str(c) for c in arrays["class_names"]),
    )


# Image folders whose decoded arrays would take more than this are streamed (decoded when read)
# unless `stream` says otherwise: CIFAR-10 takes 0.18 GB, ImageNet at 224 px about 190 GB.
IN_MEMORY_LIMIT = 8 * 2**30
# The per-channel statistics of a streamed training split are estimated on this many images.
STATS_SAMPLE = 2000


def _decoded_bytes(folder: imagefolder.ImageFolder, image_size: int | None) -> int:
    """The decoded size of every split, from `image_size` or the first training image's header."""
    num_images = sum(len(names) for names, _ in folder.splits.values())
    if image_size is not None:
        return num_images * image_size * image_size * 3
    height, width, channels = folder.read_image(folder.splits["train"][0][0]).shape
    return num_images * height * width * channels


def _stats_images(train: Source, seed: int) -> np.ndarray:
    """The images the per-channel statistics are computed on: all of an in-memory split, or a
    seed-determined random `STATS_SAMPLE` of a streamed one (decoding all would cost a pass
    over the data)."""
    if isinstance(train, ArraySource):
        return train.images
    rng = np.random.default_rng([seed, 2])
    sample = np.sort(rng.permutation(len(train))[:STATS_SAMPLE])
    return train.get(sample)[0]


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    reduced: int = 0,
    val_size: int = 0,
    seed: int = 0,
    stream: bool | None = None,
    unlabelled: bool = False,
) -> Dataset:
    """Load a dataset by name.

    - `synthetic`: the generated 10-class shapes dataset (10,000 train, 2,000 test; rendered at
      `image_size`, default 32).
    - `imagefolder:<path>`: a directory or .zip of `<split>/<class>/<image>`; a relative path is
      taken relative to `data_dir` when given. All images must share one size unless
      `image_size` is given (bilinear resize to image_size x image_size).
    - `tfds:<name>`: a TensorFlow Datasets dataset in `data_dir`; all but imagenet2012 are read
      into memory (resized if `image_size`); imagenet2012 is read lazily (shorter side resized to
      `image_size`, default 224, then centre-cropped).
    - `arrayrecord:<dir>`: a dataset written by `python -m jaxaug.data.convert` (see
      `jaxaug.data.arrayrecord`), relative to `data_dir` when given; streamed: each `get` reads
      and decodes its records, nothing is cached. Its `val` split is the converted folder's, if
      it had one. `mean` and `std` are the metadata's, those of the whole converted train split
      (of the unresized images), also when `reduced` or `val_size` take a part of it.

    An image folder is held in memory, decoded, unless `stream` is True or (`stream` None) its
    decoded arrays would exceed `IN_MEMORY_LIMIT`: it is then streamed, each image decoded when
    read (in grain's workers, `config.data.worker_count`), and its `mean` / `std` estimated on
    `STATS_SAMPLE` training images drawn by `seed`.
    In-memory datasets are cached decoded in `cache_dir` (default `$JAXAUG_CACHE_DIR` or
    `~/.cache/jaxaug`). `reduced=N` keeps a class-balanced random N-example subset of the training
    split; `val_size=M` then holds out a class-balanced M examples of it as `val`. Both are
    determined by `seed`. `unlabelled=True` (which needs `reduced`) also keeps the other examples
    of the training split, as `Dataset.unlabelled` (their labels are there, but a semi-supervised
    method reads only the images).
    """
    kind, _, arg = name.partition(":")
    mean_std = None
    if name == "synthetic":
        train, val, test, class_names = _in_memory(_synthetic_arrays(image_size or 32))
    elif kind == "imagefolder" and arg:
        folder = imagefolder.ImageFolder(Path(data_dir or "") / arg)
        if stream is None:
            stream = _decoded_bytes(folder, image_size) > IN_MEMORY_LIMIT
        if stream:
            sources = imagefolder.streamed_sources(folder, image_size)
            train, val, test = sources["train"], sources.get("val"), sources["test"]
            class_names = folder.class_names
        else:
            label = f"imagefolder-{folder.path.stem}"
            path = cache.cache_file(cache_dir, label, folder.identity(image_size))
            arrays = cache.cached(path, lambda: folder.decode(image_size))
            train, val, test, class_names = _in_memory(arrays)
    elif kind == "arrayrecord" and arg:
        # Imported here: array_record is only needed for this kind of dataset.
        from jaxaug.data import arrayrecord

        stored = arrayrecord.open_dataset(Path(data_dir or "") / arg, image_size, name)
        train, val, test = stored["train"], stored["val"], stored["test"]
        class_names, mean_std = stored["class_names"], (stored["mean"], stored["std"])
    elif kind == "tfds" and arg:
        # Imported here: tensorflow_datasets takes ~0.6 s to import, most runs do not need it, and
        # a machine without it (the GPU benchmark's, bench/gpu.sh) still reads image folders.
        try:
            from jaxaug.data import tfds_source
        except ModuleNotFoundError as e:
            if e.name != "tensorflow_datasets":
                raise
            raise ModuleNotFoundError(
                f"dataset {name!r} needs the package tensorflow-datasets, which is not installed "
                "(pip install tensorflow-datasets); 'imagefolder:<path>' and 'synthetic' do not",
                name=e.name,
            ) from e

        if arg in tfds_source.LAZY_DATASETS:
            train, test = tfds_source.lazy_sources(arg, data_dir, image_size)
            val, class_names = None, tfds_source.class_names(arg, data_dir)
            mean_std = tfds_source.IMAGENET_MEAN, tfds_source.IMAGENET_STD
        else:
            path = cache.cache_file(
                cache_dir, f"tfds-{arg}", tfds_source.identity(arg, data_dir, image_size)
            )
            arrays = cache.cached(path, lambda: tfds_source.read_arrays(arg, data_dir, image_size))
            train, val, test, class_names = _in_memory(arrays)
    else:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; expected 'synthetic', 'tfds:<name>', 'imagefolder:<path>' "
            "or 'arrayrecord:<dir>'"
        )

    num_classes = len(class_names)
    if unlabelled and not reduced:
        raise DataError("unlabelled=True needs reduced > 0: the unlabelled examples are those of "
                        "the training split that `reduced` leaves out")
    rest = None
    if reduced and unlabelled:
        train, rest = splits.reduce_with_rest(train, reduced, num_classes, seed)
    elif reduced:
        train = splits.reduce(train, reduced, num_classes, seed)
    if val_size:
        if val is not None:
            raise DataError(f"dataset {name!r} has its own validation split; val_size must be 0")
        train, val = splits.hold_out(train, val_size, num_classes, seed)
    mean, std = mean_std or channel_stats(_stats_images(train, seed))
    return Dataset(
        train=train,
        val=val,
        test=test,
        num_classes=num_classes,
        class_names=class_names,
        image_shape=train.image_shape,
        mean=mean,
        std=std,
        name=name,
        unlabelled=rest,
    )
