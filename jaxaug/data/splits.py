"""Class-balanced, seed-determined subsets of a training split.

Both functions draw, for each class c in order, a uniformly random subset of `per_class` of the
examples with label c using `np.random.default_rng([seed, stream])`. They depend only on
`(labels, seed)`, never on decoding order, and return indices in increasing order so the subset
keeps the source order.
"""

import numpy as np

from jaxaug.data.errors import DataError
from jaxaug.data.sources import Source

_REDUCE_STREAM, _HOLD_OUT_STREAM = 0, 1


def _balanced_indices(labels, num_classes, total, seed, stream, what, keep_one=False) -> np.ndarray:
    if total < 0 or total % num_classes:
        raise DataError(
            f"{what}={total} is not a positive multiple of the number of classes ({num_classes})"
        )
    per_class = total // num_classes
    rng = np.random.default_rng([seed, stream])
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if per_class > len(members) - keep_one:
            raise DataError(
                f"{what}={total} needs {per_class} examples of class {c}, but the training split "
                f"has {len(members)}{' and must keep one' if keep_one else ''}"
            )
        chosen.append(members[rng.permutation(len(members))[:per_class]])
    return np.sort(np.concatenate(chosen))


def reduce_indices(labels: np.ndarray, num_examples: int, num_classes: int, seed: int) -> np.ndarray:
    """The sorted indices into `labels` that `reduce` keeps (bench/pack_reduced.py packs them)."""
    return _balanced_indices(labels, num_classes, num_examples, seed, _REDUCE_STREAM, "reduced")


def reduce(source: Source, num_examples: int, num_classes: int, seed: int) -> Source:
    """A subset of `num_examples` examples, `num_examples / num_classes` per class."""
    return source.subset(reduce_indices(source.labels, num_examples, num_classes, seed))


def reduce_with_rest(source: Source, num_examples: int, num_classes: int, seed: int
                     ) -> tuple[Source, Source]:
    """(`reduce`'s subset, every other example in source order): the labelled and the unlabelled
    part of a semi-supervised split."""
    kept = reduce_indices(source.labels, num_examples, num_classes, seed)
    rest = np.setdiff1d(np.arange(len(source)), kept, assume_unique=True)
    return source.subset(kept), source.subset(rest)


def hold_out(
    source: Source, num_examples: int, num_classes: int, seed: int
) -> tuple[Source, Source]:
    """(rest, held out): `num_examples / num_classes` examples per class are held out, e.g. as a
    validation split; `rest` is every other example."""
    held = _balanced_indices(
        source.labels, num_classes, num_examples, seed, _HOLD_OUT_STREAM, "val_size", keep_one=True
    )
    rest = np.setdiff1d(np.arange(len(source)), held, assume_unique=True)
    return source.subset(rest), source.subset(held)
