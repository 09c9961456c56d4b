"""Host input pipeline: shuffled training batches, padded evaluation batches, device prefetch.

Batches are numpy dicts of uint8 images and int32 labels; all random augmentation happens later on
the device (`jaxaug.data.augment`). With P processes, global batch b is split into P contiguous
shares and process p reads only share p, so concatenating the shares in process order gives the
global batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

import jax
import numpy as np

from jaxaug.data.sources import Source


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Number of full global batches in one epoch: num_examples // global_batch_size."""
    steps = num_examples // global_batch_size
    if steps == 0:
        raise ValueError(
            f"{num_examples} examples do not fill one batch of {global_batch_size}; "
            "use a smaller batch size"
        )
    return steps


def _local_share(batch_size: int, process_index: int, process_count: int) -> slice:
    if batch_size % process_count:
        raise ValueError(f"batch size {batch_size} is not divisible by {process_count} processes")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    per_process = batch_size // process_count
    return slice(process_index * per_process, (process_index + 1) * per_process)


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of an epoch: a permutation that depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def epoch_batches(
    source: Source,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """This process's share of the global batches `start_batch, ..., steps - 1` of one epoch.

    Global batch b holds examples `perm[b * batch_size : (b + 1) * batch_size]` with
    `perm = epoch_permutation(len(source), seed, epoch)`; the last partial batch is dropped.
    Skipped batches are never read, so resuming mid-epoch costs nothing. Yields
    `{"image": uint8 [batch_size / process_count, H, W, C], "label": int32 [...]}`.
    """
    batches = _epoch_indices(len(source), batch_size, seed, epoch, start_batch, process_index,
                             process_count)
    return ({"image": images, "label": labels}
            for images, labels in (source.get(indices) for indices in batches))


def _epoch_indices(num_examples, batch_size, seed, epoch, start_batch, process_index,
                   process_count) -> Iterator[np.ndarray]:
    """This process's example indices of global batches `start_batch, ..., steps - 1` (checked
    now, read lazily): the order and shares that `epoch_batches` documents."""
    steps = steps_per_epoch(num_examples, batch_size)
    share = _local_share(batch_size, process_index, process_count)
    if not 0 <= start_batch <= steps:
        raise ValueError(f"start_batch {start_batch} not in [0, {steps}]")
    order = epoch_permutation(num_examples, seed, epoch)
    return (order[b * batch_size : (b + 1) * batch_size][share] for b in range(start_batch, steps))


def eval_batches(
    source: Source, batch_size: int, *, process_index: int = 0, process_count: int = 1
) -> Iterator[dict[str, np.ndarray]]:
    """Every example exactly once, in order, in ceil(N / batch_size) global batches.

    The last batch is padded to full size by repeating the last example; `"mask"` (float32) is 1
    for real examples and 0 for padding, so metrics are `sum(mask * value) / sum(mask)`.
    """
    share = _local_share(batch_size, process_index, process_count)
    num_examples = len(source)
    if num_examples == 0:
        raise ValueError("cannot evaluate on an empty source")

    def generate():
        for start in range(0, num_examples, batch_size):
            positions = np.arange(start, start + batch_size)[share]
            images, labels = source.get(np.minimum(positions, num_examples - 1))
            yield {
                "image": images,
                "label": labels,
                "mask": (positions < num_examples).astype(np.float32),
            }

    return generate()


def array_epoch_batches(
    arrays: dict[str, np.ndarray],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """`epoch_batches` for in-memory examples held as a dict of arrays with one leading example
    axis (e.g. keypoint images, joints and visibility): the same order, shares and resumption."""
    sizes = {name: len(v) for name, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"arrays must share their leading (example) axis, got sizes {sizes}")
    batches = _epoch_indices(next(iter(sizes.values())), batch_size, seed, epoch, start_batch,
                             process_index, process_count)
    return ({name: v[indices] for name, v in arrays.items()} for indices in batches)


def array_eval_batches(
    arrays: dict[str, np.ndarray], batch_size: int, *, process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """`eval_batches` for a dict of arrays: every example once, in order, the last batch padded
    by repeating the last example, with a float32 ``"mask"`` (1 real, 0 padding)."""
    share = _local_share(batch_size, process_index, process_count)
    num_examples = len(next(iter(arrays.values())))
    if num_examples == 0:
        raise ValueError("cannot evaluate on an empty set")
    for start in range(0, num_examples, batch_size):
        positions = np.arange(start, start + batch_size)[share]
        indices = np.minimum(positions, num_examples - 1)
        batch = {name: v[indices] for name, v in arrays.items()}
        yield {**batch, "mask": (positions < num_examples).astype(np.float32)}


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def prefetch_to_mesh(
    batches: Iterable[dict[str, np.ndarray]], sharding: jax.sharding.Sharding, size: int = 2
) -> Iterator[dict[str, jax.Array]]:
    """Turn this process's numpy batches into global `jax.Array`s laid out by `sharding`
    (`jax.make_array_from_process_local_data`), keeping `size` transferred batches ready ahead
    of the consumer. `sharding` is applied to every entry, so it should split only the leading
    (batch) axis, e.g. `NamedSharding(mesh, PartitionSpec("data"))`.

    A background thread, started on the first `next`, reads `batches` and starts the transfers.
    An exception raised by `batches` is re-raised to the consumer; when the consumer stops
    iterating (the iterator is closed or garbage collected) the thread stops too.
    """
    ready: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        # Poll, so that a consumer that went away cannot leave the thread blocked forever.
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for batch in batches:
                arrays = {
                    k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()
                }
                if not put(arrays):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(_Failure(e))

    thread = threading.Thread(target=produce, name="prefetch_to_mesh", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
