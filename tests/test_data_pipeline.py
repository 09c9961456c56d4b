"""Host pipeline: shuffled epochs, resumption, process shares, padded eval, device prefetch."""

import json
import os
import threading

import jax
import numpy as np
import pytest

from jaxaug.data import (
    ArraySource,
    DataError,
    LazySource,
    TrainingStream,
    epoch_batches,
    eval_batches,
    iterate,
    prefetch_to_mesh,
    steps_per_epoch,
    train_dataset,
)
from jaxaug.data.pipeline import epoch_permutation


def make_source(n=103, size=4):
    """Example i has label i and every pixel equal to i % 256, so batches can be traced back."""
    images = np.broadcast_to(
        (np.arange(n) % 256).astype(np.uint8)[:, None, None, None], (n, size, size, 3)
    )
    return ArraySource(np.ascontiguousarray(images), np.arange(n, dtype=np.int32))


def labels_of(batches):
    return [b["label"].tolist() for b in batches]


def test_steps_per_epoch_drops_the_remainder():
    assert steps_per_epoch(103, 10) == 10
    assert steps_per_epoch(100, 10) == 10
    with pytest.raises(ValueError, match="do not fill one batch"):
        steps_per_epoch(9, 10)


def test_epoch_is_a_function_of_seed_and_epoch():
    source = make_source()
    a = labels_of(epoch_batches(source, 10, seed=3, epoch=1))
    assert a == labels_of(epoch_batches(source, 10, seed=3, epoch=1))
    assert a != labels_of(epoch_batches(source, 10, seed=3, epoch=2))
    assert a != labels_of(epoch_batches(source, 10, seed=4, epoch=1))


def test_epoch_batches_content():
    source = make_source()
    batches = list(epoch_batches(source, 10, seed=0, epoch=0))
    assert len(batches) == 10  # 103 // 10, the partial batch is dropped
    seen = np.concatenate([b["label"] for b in batches])
    assert len(set(seen.tolist())) == 100  # every example at most once
    for b in batches:
        assert b["image"].dtype == np.uint8 and b["image"].shape == (10, 4, 4, 3)
        assert b["label"].dtype == np.int32
        np.testing.assert_array_equal(b["image"][:, 0, 0, 0], b["label"] % 256)
    # a different epoch reaches the examples dropped by this one
    other = np.concatenate([b["label"] for b in epoch_batches(source, 10, seed=0, epoch=1)])
    assert set(other.tolist()) != set(seen.tolist())


def test_start_batch_resumes_exactly():
    source = make_source()
    full = labels_of(epoch_batches(source, 10, seed=7, epoch=5))
    for start in (0, 1, 6, 10):
        assert (
            labels_of(epoch_batches(source, 10, seed=7, epoch=5, start_batch=start)) == full[start:]
        )
    with pytest.raises(ValueError, match="start_batch"):
        epoch_batches(source, 10, seed=7, epoch=5, start_batch=11)


def test_start_batch_does_not_read_skipped_batches():
    source = make_source()
    requested = []
    real_get = source.get
    source.get = lambda indices: requested.append(np.asarray(indices).copy()) or real_get(indices)
    next(epoch_batches(source, 10, seed=0, epoch=0, start_batch=9))
    assert len(requested) == 1 and len(requested[0]) == 10


def test_process_shares_concatenate_to_the_global_batch():
    source = make_source()
    global_batches = list(epoch_batches(source, 12, seed=1, epoch=0))
    shares = [
        list(epoch_batches(source, 12, seed=1, epoch=0, process_index=p, process_count=3))
        for p in range(3)
    ]
    for b, global_batch in enumerate(global_batches):
        for key in ("image", "label"):
            joined = np.concatenate([shares[p][b][key] for p in range(3)])
            np.testing.assert_array_equal(joined, global_batch[key])
        assert shares[0][b]["image"].shape[0] == 4
    with pytest.raises(ValueError, match="not divisible"):
        epoch_batches(source, 10, seed=1, epoch=0, process_count=3)


@pytest.mark.parametrize("process_count", [1, 2])
def test_eval_batches_cover_every_example_once_with_mask(process_count):
    source = make_source(23)
    real = []
    for p in range(process_count):
        batches = list(eval_batches(source, 10, process_index=p, process_count=process_count))
        assert len(batches) == 3  # ceil(23 / 10)
        for b in batches:
            assert b["image"].shape == (10 // process_count, 4, 4, 3)
            assert b["mask"].dtype == np.float32 and set(np.unique(b["mask"])) <= {0.0, 1.0}
            real.extend(b["label"][b["mask"] == 1].tolist())
    assert sorted(real) == list(range(23))
    last = list(eval_batches(source, 10))[-1]
    np.testing.assert_array_equal(last["mask"], [1, 1, 1] + [0] * 7)
    np.testing.assert_array_equal(last["label"], [20, 21, 22] + [22] * 7)  # padded by repetition


def test_lazy_source_reads_on_demand_and_subsets():
    reads = []

    def read(i):
        reads.append(i)
        return np.full((2, 2, 1), i, np.uint8), i % 3

    source = LazySource(read, lambda i: i % 3, 10, (2, 2, 1))
    images, labels = source.get([7, 2])
    assert reads == [7, 2] and images[:, 0, 0, 0].tolist() == [7, 2] and labels.tolist() == [1, 2]
    subset = source.subset([9, 4, 1])
    assert subset.labels.tolist() == [0, 1, 1] and len(subset) == 3
    images, _ = subset.get([1])
    assert images[0, 0, 0, 0] == 4
    assert len(list(epoch_batches(subset, 3, seed=0, epoch=0))) == 1


# ---- prefetch_to_mesh -----------------------------------------------------------------------


@pytest.fixture
def sharding():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))


def test_prefetch_yields_the_same_values_as_global_arrays(sharding):
    host = list(epoch_batches(make_source(), 10, seed=0, epoch=0))
    device = list(prefetch_to_mesh(iter(host), sharding, size=3))
    assert len(device) == len(host)
    for h, d in zip(host, device, strict=True):
        assert d.keys() == h.keys()
        for key in h:
            assert isinstance(d[key], jax.Array) and d[key].sharding == sharding
            np.testing.assert_array_equal(np.asarray(d[key]), h[key])
            assert d[key].dtype == h[key].dtype


def test_prefetch_reraises_errors_of_the_host_iterator(sharding):
    def failing():
        yield {"x": np.zeros(2, np.float32)}
        raise RuntimeError("disk on fire")

    batches = prefetch_to_mesh(failing(), sharding)
    assert np.asarray(next(batches)["x"]).tolist() == [0, 0]
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(batches)


def test_prefetch_thread_stops_when_the_consumer_stops(sharding):
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield {"x": np.zeros(2, np.float32)}

    before = {t.ident for t in threading.enumerate()}
    batches = prefetch_to_mesh(endless(), sharding, size=2)
    next(batches)
    batches.close()
    assert {t.ident for t in threading.enumerate()} - before == set()
    assert len(produced) <= 4  # 1 consumed + 2 queued + 1 waiting to be queued


# ---- grain: the training dataset, its iterators and their state -----------------------------


def _labels(batches, n):
    return [next(batches)["label"].tolist() for _ in range(n)]


def test_train_dataset_element_k_is_global_step_k_across_epochs():
    source = make_source()
    dataset = train_dataset(source, 10, seed=3, epochs=3)
    assert len(dataset) == 30
    for epoch in range(3):
        expected = labels_of(epoch_batches(source, 10, seed=3, epoch=epoch))
        assert [dataset[epoch * 10 + b]["label"].tolist() for b in range(10)] == expected
    np.testing.assert_array_equal(dataset[12]["label"],
                                  epoch_permutation(103, 3, 1)[20:30])


@pytest.mark.parametrize("threads", [0, 2])
def test_iterator_state_resumes_the_stream_exactly(threads):
    dataset = train_dataset(make_source(), 10, seed=1, epochs=2)
    full = _labels(iterate(dataset, threads=threads), 20)
    first = iterate(dataset, threads=threads)
    _labels(first, 7)
    resumed = iterate(dataset, threads=threads, state=first.get_state())
    assert _labels(resumed, 13) == full[7:]
    first.close(), resumed.close()


def test_training_stream_checkpoint_state_is_as_of_the_consumed_batch(sharding):
    dataset = train_dataset(make_source(), 10, seed=2, epochs=2)
    full = [b["label"].tolist() for b in iterate(dataset)]
    stream = TrainingStream(dataset, sharding, step=0, threads=2, prefetch=3)
    consumed = [np.asarray(next(stream)["label"]).tolist() for _ in range(5)]
    saved = stream.checkpoint_state()  # the host iterator is several batches further on
    stream.close()
    assert consumed == full[:5] and saved["step"] == 5
    resumed = TrainingStream(dataset, sharding, step=5, saved=json.loads(json.dumps(saved)))
    assert [np.asarray(b["label"]).tolist() for b in resumed] == full[5:]
    # Another worker count cannot take grain's state: the stream starts from the step instead.
    other = TrainingStream(dataset, sharding, step=5, saved={**saved, "worker_count": 3})
    assert np.asarray(next(other)["label"]).tolist() == full[5]
    other.close()
    with pytest.raises(ValueError, match="at step 5, the training state at step 6"):
        TrainingStream(dataset, sharding, step=6, saved=saved)


def test_a_failing_read_names_the_batch_and_its_examples():
    def read(i):
        if i == 42:
            raise OSError("disk on fire")
        return np.zeros((2, 2, 1), np.uint8), 0

    dataset = train_dataset(LazySource(read, lambda i: 0, 50, (2, 2, 1)), 10, seed=0, epochs=1)
    with pytest.raises(DataError, match=r"reading batch \d of epoch 0 \(examples \[.*42.*disk on fire"):
        for k in range(5):
            dataset[k]


def _exit_on_42(i):
    """Example 42 kills the process that reads it, as a segfaulting decoder would."""
    if i == 42:
        os._exit(3)
    return np.full((2, 2, 1), i % 256, np.uint8), i


@pytest.mark.slow
def test_worker_processes_read_the_same_stream_resume_and_report_a_dead_worker(sharding):
    """Spawns grain workers (about 5 s each time); the fast tests above check the same order and
    state with threads."""
    dataset = train_dataset(make_source(), 10, seed=4, epochs=2)
    full = [b["label"].tolist() for b in iterate(dataset)]
    stream = TrainingStream(dataset, sharding, step=0, worker_count=2)
    assert [np.asarray(next(stream)["label"]).tolist() for _ in range(7)] == full[:7]
    saved = stream.checkpoint_state()
    stream.close()
    resumed = TrainingStream(dataset, sharding, step=7, saved=saved, worker_count=2)
    assert [np.asarray(b["label"]).tolist() for b in resumed] == full[7:]

    dying = train_dataset(LazySource(_exit_on_42, lambda i: i, 50, (2, 2, 1)), 10, seed=0,
                          epochs=1)
    stream = TrainingStream(dying, sharding, step=0, worker_count=2)
    with pytest.raises(DataError, match="while reading the batch of step"):
        list(stream)
    stream.close()
