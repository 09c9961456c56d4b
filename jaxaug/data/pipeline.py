"""Host input pipeline on grain: shuffled training batches, padded evaluation batches, device
prefetch.

A run's training data is one `grain.MapDataset` whose element k is this process's share of global
batch k, for k over every epoch: global batch b of epoch e is element `e * steps + b`, and holds
the examples `perm[b * B : (b + 1) * B]` with `perm = epoch_permutation(N, seed, e)`; the last
partial batch of an epoch is dropped. With P processes, global batch B is split into P contiguous
shares and process p reads only share p, so concatenating the shares in process order gives the
global batch. An element is a function of its index alone, so any slice of the dataset can be
read in any worker, and `dataset[k:]` starts a resumed run at step k without reading the steps
before it.

Further per-step batches (`Stream`: a semi-supervised method's unlabelled images, a second order
of the labelled set) join element k under their own keys, `"<field>_<name>"` (e.g.
`"image_unlabelled"`): stream `name` has its own epochs of `len(examples) // batch_size` steps,
each in the order `epoch_permutation(len(examples), seed, epoch, stream=crc32(name))`, and element
k holds its batch k, split over the processes as the main batch is. Its batch k is again a
function of (seed, k) alone, so resuming stays exact, and a stream shorter or longer than the
main set just wraps into its next epoch at its own pace.

`iterate` turns a dataset into a grain iterator: read by `threads` threads in this process, or
decoded in `worker_count` worker processes (grain's `mp_prefetch`, which keeps the order). Its
`get_state()` goes into the checkpoint (`jaxaug.train.checkpoint`). Batches are numpy dicts of
uint8 images and int32 labels, plus whatever the data holds (keypoints); random augmentation runs
on the device (`jaxaug.data.augment`) unless `transform` runs it here (`augment.where = "host"`).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import grain
import jax
import numpy as np

from jaxaug.data.errors import DataError
from jaxaug.data.sources import Source

Batch = dict[str, np.ndarray]
# What the pipeline reads from: a `Source` of (image, label) examples, or in-memory arrays with
# one leading example axis (keypoint images, joints and visibility).
Examples = Source | Mapping[str, np.ndarray]


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


def epoch_permutation(num_examples: int, seed: int, epoch: int, stream: int | None = None
                      ) -> np.ndarray:
    """The example order of an epoch: a permutation that depends only on (seed, epoch), and on
    `stream` for a further stream's order (None: the main training batches)."""
    entropy = [seed, epoch] if stream is None else [seed, epoch, stream]
    return np.random.default_rng(entropy).permutation(num_examples)


@dataclasses.dataclass(frozen=True)
class Stream:
    """A further batch of `batch_size` (global) examples per step, added to each training batch
    as `"<field>_<name>"` for each of `fields` (module docstring); e.g. the unlabelled images of
    a semi-supervised method, `Stream(unlabelled_source, 32, fields=("image",))`."""

    examples: Examples
    batch_size: int
    fields: tuple[str, ...] = ("image",)


class _Reader:
    """Reads examples by index: `Source.get` as {"image", "label"}, or rows of in-memory arrays.
    Picklable, so that grain can send it to its worker processes."""

    def __init__(self, examples: Examples):
        if isinstance(examples, Mapping):
            sizes = {name: len(v) for name, v in examples.items()}
            if len(set(sizes.values())) != 1:
                raise ValueError(f"arrays must share their leading (example) axis, got sizes {sizes}")
            self.num_examples = next(iter(sizes.values()))
        else:
            self.num_examples = len(examples)
        self.examples = examples

    def __call__(self, indices: np.ndarray) -> Batch:
        if isinstance(self.examples, Mapping):
            return {name: v[indices] for name, v in self.examples.items()}
        images, labels = self.examples.get(indices)
        return {"image": images, "label": labels}


class TrainBatches:
    """Element k of the training dataset (module docstring): this process's share of global
    batch k, with the batch k of each of `streams`, then passed through `transform(k, batch)`
    when one is given. `stream` selects the order of a further stream (`epoch_permutation`)."""

    def __init__(self, examples: Examples, batch_size: int, *, seed: int, process_index: int = 0,
                 process_count: int = 1, transform: Callable[[int, Batch], Batch] | None = None,
                 streams: dict[str, Stream] | None = None, stream: int | None = None):
        self.read = _Reader(examples)
        self.steps = steps_per_epoch(self.read.num_examples, batch_size)
        self.share = _local_share(batch_size, process_index, process_count)
        self.batch_size, self.seed, self.transform = batch_size, seed, transform
        self.stream = stream
        self.streams = {
            name: (s.fields, TrainBatches(s.examples, s.batch_size, seed=seed,
                                          process_index=process_index,
                                          process_count=process_count,
                                          stream=zlib.crc32(name.encode())))
            for name, s in (streams or {}).items()}
        self._last_order = None  # (epoch, permutation): an epoch is read in order

    def _order(self, epoch: int) -> np.ndarray:
        last = self._last_order
        if last is None or last[0] != epoch:
            last = self._last_order = (epoch, epoch_permutation(self.read.num_examples, self.seed,
                                                                epoch, self.stream))
        return last[1]

    def indices(self, k: int) -> np.ndarray:
        """The example indices of this process's share of global batch k."""
        epoch, b = divmod(k, self.steps)
        return self._order(epoch)[b * self.batch_size : (b + 1) * self.batch_size][self.share]

    def __call__(self, k: int) -> Batch:
        indices = self.indices(k)
        try:
            batch = self.read(indices)
            for name, (fields, stream) in self.streams.items():
                extra = stream(k)
                batch.update({f"{field}_{name}": extra[field] for field in fields})
            return batch if self.transform is None else self.transform(k, batch)
        except DataError:
            raise  # already names its file, record or example
        except Exception as e:
            epoch, b = divmod(k, self.steps)
            raise DataError(f"reading batch {b} of epoch {epoch} (examples "
                            f"{_describe(indices)}) failed: {type(e).__name__}: {e}") from e


class EvalBatches:
    """Element k of an evaluation dataset: this process's share of examples
    `k * B, ..., (k + 1) * B - 1` in order, the last batch padded by repeating the last example,
    with `"mask"` (float32) 1 for real examples and 0 for padding."""

    def __init__(self, examples: Examples, batch_size: int, *, process_index: int = 0,
                 process_count: int = 1):
        self.read = _Reader(examples)
        if self.read.num_examples == 0:
            raise ValueError("cannot evaluate on an empty set")
        self.share = _local_share(batch_size, process_index, process_count)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-self.read.num_examples // self.batch_size)

    def __call__(self, k: int) -> Batch:
        positions = np.arange(k * self.batch_size, (k + 1) * self.batch_size)[self.share]
        batch = self.read(np.minimum(positions, self.read.num_examples - 1))
        return {**batch, "mask": (positions < self.read.num_examples).astype(np.float32)}


def train_dataset(examples: Examples, batch_size: int, *, seed: int, epochs: int,
                  process_index: int = 0, process_count: int = 1,
                  transform: Callable[[int, Batch], Batch] | None = None,
                  streams: dict[str, Stream] | None = None) -> grain.MapDataset:
    """The training batches of `epochs` epochs as one dataset (module docstring), with the
    batches of `streams` (name -> `Stream`) added under their own keys; `transform` (e.g.
    host-side augmentation) is applied to each batch with its index k."""
    batches = TrainBatches(examples, batch_size, seed=seed, process_index=process_index,
                           process_count=process_count, transform=transform, streams=streams)
    return grain.MapDataset.range(epochs * batches.steps).map(batches)


def eval_dataset(examples: Examples, batch_size: int, *, process_index: int = 0,
                 process_count: int = 1) -> grain.MapDataset:
    """Every example exactly once, in order, in ceil(N / batch_size) global batches (padded; see
    `EvalBatches`): metrics are `sum(mask * value) / sum(mask)`."""
    batches = EvalBatches(examples, batch_size, process_index=process_index,
                          process_count=process_count)
    return grain.MapDataset.range(len(batches)).map(batches)


def iterate(dataset: grain.MapDataset, *, worker_count: int = 0, threads: int = 1,
            state: dict | None = None) -> grain.DatasetIterator:
    """A grain iterator over `dataset`, in order: `threads` threads per process read ahead (up to
    `max(threads, 2)` batches), in this process (`worker_count` 0) or in each of `worker_count`
    worker processes, which grain starts with "spawn" and sends the dataset to (so everything in
    it must pickle). `state`, a `get_state()` of an iterator over the same dataset and
    worker_count, continues where that one was. Close the iterator when done with it: that
    stops its threads and workers."""
    if worker_count < 0 or threads < 0:
        raise ValueError(f"worker_count ({worker_count}) and threads ({threads}) must be >= 0")
    options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(threads, 2))
    source = dataset.to_iter_dataset(options)
    if worker_count:
        _parse_absl_flags()
        source = source.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count),
                                    worker_init_fn=_keep_workers_on_the_cpu)
    iterator = iter(source)
    if state is not None:
        iterator.set_state(state)
    return iterator


def _keep_workers_on_the_cpu(worker_index: int, worker_count: int) -> None:
    """Run in each worker process before it reads: what JAX a worker runs (host augmentation's
    sampler) stays on the CPU instead of taking accelerator memory from the training process."""
    del worker_index, worker_count
    jax.config.update("jax_platforms", "cpu")


def _parse_absl_flags() -> None:
    """grain's worker processes read absl flags; outside an absl app (tests, notebooks) nothing
    parsed them, so they are marked parsed with their defaults (an absl app parses them first)."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def epoch_batches(examples: Examples, batch_size: int, *, seed: int, epoch: int,
                  start_batch: int = 0, process_index: int = 0, process_count: int = 1,
                  ) -> Iterator[Batch]:
    """This process's share of the global batches `start_batch, ..., steps - 1` of one epoch:
    the slice of `train_dataset` for that epoch, read in this process. Skipped batches are never
    read, so resuming mid-epoch costs nothing. Yields
    `{"image": uint8 [batch_size / process_count, H, W, C], "label": int32 [...]}` (or the rows of
    each array)."""
    batches = TrainBatches(examples, batch_size, seed=seed, process_index=process_index,
                           process_count=process_count)
    if not 0 <= start_batch <= batches.steps:
        raise ValueError(f"start_batch {start_batch} not in [0, {batches.steps}]")
    first = epoch * batches.steps
    epoch_slice = grain.MapDataset.range(first + start_batch, first + batches.steps)
    return iter(epoch_slice.map(batches))


def eval_batches(examples: Examples, batch_size: int, *, process_index: int = 0,
                 process_count: int = 1) -> Iterator[Batch]:
    """`eval_dataset` read in order in this process."""
    return iter(eval_dataset(examples, batch_size, process_index=process_index,
                             process_count=process_count))


def _describe(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:8])
    return f"[{shown}{', ...' if len(indices) > 8 else ''}]"


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_END = object()


class DevicePrefetch:
    """Turns this process's numpy batches into global `jax.Array`s laid out by `sharding`
    (`jax.make_array_from_process_local_data`), keeping `size` transferred batches ready ahead
    of the consumer. `sharding` is applied to every entry, so it should split only the leading
    (batch) axis, e.g. `NamedSharding(mesh, PartitionSpec("data"))`.

    A background thread, started at once, reads `batches` and starts the transfers. An exception
    raised by `batches` is re-raised to the consumer. `state` is the host iterator's
    `get_state()` as of the last batch handed out (None before the first, or when `batches` has
    no `get_state`): what a checkpoint stores, since the host iterator itself is `size` batches
    further on. `close()` (also on garbage collection) stops the thread.
    """

    def __init__(self, batches: Iterable[Batch], sharding: jax.sharding.Sharding, size: int = 2):
        self.state = None
        self._ready: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(batches, sharding),
                                        name="DevicePrefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        # Poll, so that a consumer that went away cannot leave the thread blocked forever.
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, batches, sharding):
        get_state = getattr(batches, "get_state", None)
        try:
            for batch in batches:
                state = None if get_state is None else get_state()
                arrays = {
                    k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()
                }
                if not self._put((arrays, state)):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._put(_Failure(e))

    def __iter__(self) -> DevicePrefetch:
        return self

    def __next__(self) -> dict[str, jax.Array]:
        item = self._ready.get()
        if item is _END:
            self._ready.put(_END)  # every later call ends too
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        arrays, self.state = item
        return arrays

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self):
        self.close()


def prefetch_to_mesh(batches: Iterable[Batch], sharding: jax.sharding.Sharding,
                     size: int = 2) -> DevicePrefetch:
    """`DevicePrefetch(batches, sharding, size)`: an iterator of global `jax.Array` batches."""
    return DevicePrefetch(batches, sharding, size)


class TrainingStream:
    """A run's training batches on the mesh from global step `step` on, and the state that
    resumes them (`checkpoint_state()`, stored with each checkpoint).

    `saved`, a `checkpoint_state()` of the same run, continues with grain's own iterator state
    when it was saved with the same `worker_count`; otherwise (None, or another worker count,
    whose grain state has another form) the stream starts from `dataset[step:]`, which reads the
    same batches, since element k depends on k alone.
    """

    def __init__(self, dataset: grain.MapDataset, sharding: jax.sharding.Sharding, *, step: int,
                 saved: dict | None = None, worker_count: int = 0, threads: int = 1,
                 prefetch: int = 2):
        if saved is not None and saved["step"] != step:
            raise ValueError(f"the saved input-pipeline state is at step {saved['step']}, the "
                             f"training state at step {step}: the checkpoint is inconsistent")
        grain_state = None
        if saved is not None and saved["worker_count"] == worker_count:
            start, grain_state = saved["start"], saved["grain"]
        else:
            start = step
        self.step, self._start, self._worker_count = step, start, worker_count
        self._host = iterate(dataset[start:], worker_count=worker_count, threads=threads,
                             state=grain_state)
        self._initial_state = self._host.get_state()
        self._device = DevicePrefetch(self._host, sharding, prefetch)

    def __iter__(self) -> TrainingStream:
        return self

    def __next__(self) -> dict[str, jax.Array]:
        try:
            batch = next(self._device)
        except (StopIteration, DataError):
            raise
        except Exception as e:  # e.g. a worker process that died: name what it was reading
            raise DataError(f"the input pipeline failed while reading the batch of step "
                            f"{self.step}: {type(e).__name__}: {e}") from e
        self.step += 1
        return batch

    def checkpoint_state(self) -> dict:
        """JSON-serializable: the step, where the stream's dataset slice started, the worker
        count and grain's iterator state as of the last batch handed out."""
        state = self._device.state if self._device.state is not None else self._initial_state
        return {"step": self.step, "start": self._start, "worker_count": self._worker_count,
                "grain": state}

    def close(self) -> None:
        """Stops the device-prefetch thread and grain's threads and worker processes."""
        self._device.close()
        self._host.close()
