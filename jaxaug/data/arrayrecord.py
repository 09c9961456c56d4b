"""`arrayrecord:<dir>`: an image-classification dataset stored as ArrayRecord shards, read lazily.

Written by `python -m jaxaug.data.convert` (see `jaxaug.data.convert`); read by `open_dataset`,
which `load_dataset("arrayrecord:<dir>")` calls. Nothing is decoded ahead: `ArrayRecordSource.get`
reads the requested records and decodes them, so a set far larger than memory streams.

On-disk format (version 1), a directory holding:

- `metadata.json`, written last (its presence marks a finished conversion):
  `{"format_version": 1, "class_names": [...], "source": {...what was converted...},
  "records_per_shard": N, "splits": {split: {"num_examples": n, "shards": [{"file": name,
  "num_records": k}, ...], "labels": "<split>.labels.npy", "image_shape": [H, W, 3] or null}},
  "train_stats": {"count": pixels per channel, "sum": [...], "sum_sq": [...]}, "mean": [...],
  "std": [...]}`. `image_shape` is null when the split's images differ in size. `mean` and `std`
  are the train split's per-channel statistics in [0, 1] units, computed exactly from the integer
  sums of the decoded (unresized) pixels as `jaxaug.data.dataset.channel_stats` computes them.
- `conversion.json`, written first: what is being converted (the source's identity, the shard
  plan); a rerun of the converter checks it and refuses a different conversion into the same dir.
- per split, the shards `<split>-SSSSS-of-NNNNN.array_record`: example `i` of the split is record
  `i - S * records_per_shard` of shard `S`, in the image folder's sorted (class, file) order;
  written with `group_size:1` (one record per chunk, so a random read reads one chunk) and no
  compression (encoded images do not compress).
- per split, `<split>.labels.npy`: the int32 labels, so that labels (class-balanced subsets) are
  read without touching the shards.

A record is `struct.pack("<qiH", index, label, len(name))`, then `name` (UTF-8: the image's path in
the source folder), then the original encoded image bytes (JPEG or PNG as found, never re-encoded).
`index` (the example's position in its split) and `label` are checked against the position read
and the labels file, so misplaced or damaged records are caught; Riegeli's chunk hashes catch
flipped bits inside a shard.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path

import numpy as np
from array_record.python import array_record_module

from jaxaug.data.errors import DataError, DatasetPathError, ImageSizeMismatchError
from jaxaug.data.imagefolder import decode_image
from jaxaug.data.imageops import stack_images

FORMAT_VERSION = 1
METADATA = "metadata.json"
CONVERSION = "conversion.json"
WRITER_OPTIONS = "group_size:1,uncompressed"
# Random access: no read-ahead buffer, no reader threads (grain's workers are the parallelism).
READER_OPTIONS = "readahead_buffer_size:0,max_parallelism:0"
_HEADER = struct.Struct("<qiH")


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{num_shards:05d}.array_record"


def labels_name(split: str) -> str:
    return f"{split}.labels.npy"


def encode_record(index: int, label: int, name: str, data: bytes) -> bytes:
    encoded_name = name.encode()
    return _HEADER.pack(index, label, len(encoded_name)) + encoded_name + data


def decode_record(record: bytes) -> tuple[int, int, str, bytes]:
    """(index, label, name, encoded image) of a record; ValueError if it is not one."""
    if len(record) < _HEADER.size:
        raise ValueError(f"record of {len(record)} bytes is shorter than its header")
    index, label, name_length = _HEADER.unpack_from(record)
    end = _HEADER.size + name_length
    if len(record) <= end:
        raise ValueError(f"record of {len(record)} bytes ends before its image data")
    return index, label, record[_HEADER.size : end].decode(), record[end:]


def read_metadata(directory: Path) -> dict:
    """The metadata of a finished conversion, with errors naming the directory."""
    if not directory.is_dir():
        raise DatasetPathError(f"ArrayRecord dataset directory {directory} does not exist")
    path = directory / METADATA
    if not path.exists():
        raise DataError(
            f"{directory} has no {METADATA}: not a finished ArrayRecord conversion "
            "(rerun `python -m jaxaug.data.convert` with --out pointing there to finish it)"
        )
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if metadata.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path} has format_version {metadata.get('format_version')!r}; this jaxaug reads "
            f"version {FORMAT_VERSION}: convert the dataset again"
        )
    return metadata


class ArrayRecordSource:
    """A `Source` over one split of an ArrayRecord dataset: `get` reads and decodes records.

    Pickles small (directory, shard names and counts, and a subset's indices; no image data, no
    open reader), and opens its readers lazily in the process that uses it, e.g. a grain worker;
    a forked child opens its own. `get` is safe to call from several threads."""

    def __init__(
        self,
        directory: Path,
        split: str,
        shards: list[tuple[str, int]],
        stored_shape: tuple[int, int, int] | None,
        image_size: int | None,
    ):
        self.directory = Path(directory)
        self.split = split
        self._shards = [(name, int(count)) for name, count in shards]
        self._starts = np.cumsum([0] + [count for _, count in self._shards])
        self._image_size = image_size
        self.image_shape = (image_size, image_size, 3) if image_size else tuple(stored_shape)
        self._indices = None  # positions in the split; None: all of them, in order
        self._init_process_state()

    def _init_process_state(self):
        self._readers = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._all_labels = None
        self._labels = None

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_readers", "_pid", "_lock", "_all_labels", "_labels"):
            del state[key]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_process_state()

    def __len__(self) -> int:
        return int(self._starts[-1]) if self._indices is None else len(self._indices)

    @property
    def labels(self) -> np.ndarray:
        """int32 [len(self)], read from `<split>.labels.npy` (no shard is opened)."""
        if self._labels is None:
            all_labels = self._split_labels()
            self._labels = all_labels if self._indices is None else all_labels[self._indices]
        return self._labels

    def _split_labels(self) -> np.ndarray:
        """The labels of the whole split, read once per process."""
        if self._all_labels is None:
            path = self.directory / labels_name(self.split)
            try:
                labels = np.load(path)
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read the labels file {path}: {e}") from e
            if labels.shape != (int(self._starts[-1]),):
                raise DataError(
                    f"{path} holds {labels.shape} labels, but the {self.split} split has "
                    f"{int(self._starts[-1])} examples: convert the dataset again"
                )
            self._all_labels = labels.astype(np.int32, copy=False)
        return self._all_labels

    def _reader(self, shard: int):
        if self._pid != os.getpid():  # a forked child: the parent's readers are not its own
            self._init_process_state()
        reader = self._readers.get(shard)
        if reader is not None:
            return reader
        with self._lock:
            if shard not in self._readers:
                name, expected = self._shards[shard]
                path = self.directory / name
                if not path.exists():
                    raise DataError(f"shard {path} is missing: convert the dataset again")
                try:
                    reader = array_record_module.ArrayRecordReader(str(path), READER_OPTIONS)
                    count = reader.num_records()
                except RuntimeError as e:
                    raise DataError(f"cannot open shard {path}: {e}") from e
                if count != expected:  # a truncated shard opens with fewer (often 0) records
                    raise DataError(
                        f"shard {path} holds {count} records, but {METADATA} says {expected}: "
                        "it is truncated or damaged; convert the dataset again"
                    )
                self._readers[shard] = reader
            return self._readers[shard]

    def _read(self, shard: int, positions: list[int]) -> list[bytes]:
        reader, path = self._reader(shard), self.directory / self._shards[shard][0]
        try:
            return reader.read(positions)
        except RuntimeError as e:
            error = e
        for position in positions:  # find the damaged record, to name it
            try:
                reader.read([position])
            except RuntimeError as e:
                raise DataError(f"record {position} of shard {path} is corrupt: {e}") from e
        raise DataError(f"reading records {positions} of shard {path} failed: {error}") from error

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f"indices out of range for a source of {len(self)} examples")
        indices = indices % max(len(self), 1)
        rows = indices if self._indices is None else self._indices[indices]
        shards = np.searchsorted(self._starts, rows, side="right") - 1
        records: list[bytes | None] = [None] * len(rows)
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            positions = [int(rows[i] - self._starts[shard]) for i in where]
            for i, record in zip(where, self._read(int(shard), positions), strict=True):
                records[i] = record
        full_labels = self._split_labels()
        images, labels = [], []
        for row, shard, record in zip(rows, shards, records, strict=True):
            image, label = self._decode(int(row), int(shard), record, full_labels)
            images.append(image)
            labels.append(label)
        if not images:
            return np.zeros((0, *self.image_shape), np.uint8), np.zeros(0, np.int32)
        stacked = stack_images(
            images, lambda i: f"example {int(rows[i])} of the {self.split} split"
        )
        return stacked, np.array(labels, dtype=np.int32)

    def _decode(self, row: int, shard: int, record: bytes, full_labels) -> tuple[np.ndarray, int]:
        position = row - int(self._starts[shard])
        where = f"record {position} of shard {self.directory / self._shards[shard][0]}"
        try:
            index, label, name, data = decode_record(record)
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{where} is corrupt: {e}") from e
        if index != row or label != full_labels[row]:
            raise DataError(
                f"{where} is corrupt or misplaced: it holds example {index} with label {label}, "
                f"expected example {row} with label {full_labels[row]}"
            )
        return decode_image(data, f"{name} ({where})", self._image_size), label

    def subset(self, indices) -> ArrayRecordSource:
        indices = np.asarray(indices, dtype=np.int64)
        subset = ArrayRecordSource.__new__(ArrayRecordSource)
        base = np.arange(len(self)) if self._indices is None else self._indices
        subset.__setstate__({**self.__getstate__(), "_indices": base[indices]})
        subset._all_labels = self._all_labels  # labels already read are not read again
        return subset


def open_dataset(directory: str | os.PathLike, image_size: int | None, name: str) -> dict:
    """The sources of a converted dataset: {"train", "val" (or None), "test", "class_names",
    "mean", "std"}. Without `image_size` every split must have one image size (stored in the
    metadata), else ImageSizeMismatchError names the dataset `name`."""
    directory = Path(directory).expanduser().resolve()
    metadata = read_metadata(directory)
    sources = {}
    for split in ("train", "val", "test"):
        info = metadata["splits"].get(split)
        if info is None:
            sources[split] = None
            continue
        shape = info["image_shape"]
        if shape is None and not image_size:
            raise ImageSizeMismatchError(
                f"dataset {name!r}: the images of its {split} split differ in size; "
                "pass image_size to resize them"
            )
        shards = [(s["file"], s["num_records"]) for s in info["shards"]]
        sources[split] = ArrayRecordSource(
            directory, split, shards, shape and tuple(shape), image_size
        )
    if sources["train"] is None or sources["test"] is None:
        raise DataError(f"{directory / METADATA} lacks the train or test split")
    return {
        **sources,
        "class_names": tuple(metadata["class_names"]),
        "mean": np.array(metadata["mean"], np.float32),
        "std": np.array(metadata["std"], np.float32),
    }
