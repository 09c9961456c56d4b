"""Sources: indexable collections of (uint8 image [H, W, C], int32 label) examples.

A source has `__len__`, `labels` (int32 [N], the labels of the whole source),
`get(indices) -> (images uint8 [n, H, W, C], labels int32 [n])`, `image_shape` and
`subset(indices)`, which returns a source over the given examples in the given order.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Protocol

import numpy as np


class Source(Protocol):
    labels: np.ndarray
    image_shape: tuple[int, int, int]

    def __len__(self) -> int: ...

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]: ...

    def subset(self, indices) -> Source: ...


class ArraySource:
    """A source held in memory as `images` uint8 [N, H, W, C] and `labels` int32 [N]."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be uint8 [N, H, W, C], got {images.dtype} {images.shape}"
            )
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        self.images = images
        self.labels = labels.astype(np.int32, copy=False)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        return self.images[indices], self.labels[indices]

    def subset(self, indices) -> ArraySource:
        return ArraySource(*self.get(indices))


class LazySource:
    """A source that produces examples on demand, for datasets too large to hold in memory.

    `read(i) -> (image uint8 [H, W, C], label)` produces example `i` of the underlying data;
    `read_label(i)` its label alone, which may be much cheaper (no image decoding). `labels`, when
    not given, is computed on first access with one `read_label` per example and then kept.
    """

    def __init__(
        self,
        read: Callable[[int], tuple[np.ndarray, int]],
        read_label: Callable[[int], int],
        num_examples: int,
        image_shape: tuple[int, int, int],
        labels: np.ndarray | None = None,
    ):
        self._read = read
        self._read_label = read_label
        self._indices = np.arange(num_examples)  # positions in the underlying data
        self.image_shape = tuple(image_shape)
        if labels is not None:  # known without reading (an image folder's layout)
            self.labels = np.asarray(labels, np.int32)

    def __len__(self) -> int:
        return len(self._indices)

    @functools.cached_property
    def labels(self) -> np.ndarray:
        return np.array([self._read_label(int(i)) for i in self._indices], dtype=np.int32)

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for i in self._indices[np.asarray(indices, dtype=np.int64)]:
            image, label = self._read(int(i))
            images.append(image)
            labels.append(label)
        images = np.stack(images) if images else np.zeros((0, *self.image_shape), np.uint8)
        return images, np.array(labels, dtype=np.int32)

    def subset(self, indices) -> LazySource:
        indices = np.asarray(indices, dtype=np.int64)
        subset = copy.copy(self)
        subset._indices = self._indices[indices]
        if "labels" in self.__dict__:  # keep labels already read instead of reading them again
            subset.labels = self.labels[indices]
        return subset
