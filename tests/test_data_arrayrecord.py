"""ArrayRecord: `python -m jaxaug.data.convert`, `arrayrecord:<dir>`, and tfds's array_record
datasets read through `tfds.data_source` from files built here (no network, no TensorFlow)."""

import io
import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from array_record.python import array_record_module
from PIL import Image

from jaxaug.data import DataError, DatasetPathError, ImageSizeMismatchError, load_dataset
from jaxaug.data import arrayrecord
from jaxaug.data.atomic import umask
from jaxaug.data.convert import convert

COUNTS = {
    "train": {"cat": 6, "dog": 6},
    "val": {"cat": 1, "dog": 1},
    "test": {"cat": 3, "dog": 3},
}
REPO = Path(__file__).resolve().parents[1]
CIFAR_ZIP = REPO.parent / "shared" / "data" / "cifar10-jpeg.zip"


def quiet(*_):
    pass


@pytest.fixture
def converted(make_image_folder, tmp_path):
    """(image folder, its conversion into 3-record shards)."""
    root, _ = make_image_folder(COUNTS, zip=True)
    out = tmp_path / "ar"
    convert(f"imagefolder:{root}", out, records_per_shard=3, workers=1, log=quiet)
    return root, out


def shard_files(out):
    return sorted(p.name for p in out.glob("*.array_record"))


def test_arrayrecord_equals_the_imagefolder_load(converted, cache_dir):
    root, out = converted
    want = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)
    got = load_dataset(f"arrayrecord:{out}")
    assert got.class_names == want.class_names and got.image_shape == (8, 8, 3)
    for split in ("train", "val", "test"):
        source, reference = getattr(got, split), getattr(want, split)
        np.testing.assert_array_equal(source.labels, reference.labels)
        images, labels = source.get(np.arange(len(source))[::-1])  # across shard boundaries
        np.testing.assert_array_equal(images, reference.images[::-1])
        np.testing.assert_array_equal(labels, reference.labels[::-1])
    # The metadata's exact integer sums give channel_stats's float32 values bit for bit.
    np.testing.assert_array_equal(got.mean, want.mean)
    np.testing.assert_array_equal(got.std, want.std)
    assert len(shard_files(out)) == 4 + 1 + 2  # 12 train, 2 val, 6 test in 3-record shards


def test_records_keep_the_original_bytes(converted):
    root, out = converted
    reader = array_record_module.ArrayRecordReader(str(out / "train-00001-of-00004.array_record"))
    index, label, name, data = arrayrecord.decode_record(reader.read([0])[0])
    assert (index, label, name) == (3, 0, "train/cat/003.png")
    assert data == zipfile.ZipFile(root).read(name)


def test_reduced_and_val_size_subsets_stream_with_the_full_train_statistics(converted):
    _, out = converted
    full = load_dataset(f"arrayrecord:{out}")
    ds = load_dataset(f"arrayrecord:{out}", reduced=4, seed=3)
    assert len(ds.train) == 4 and np.bincount(ds.train.labels).tolist() == [2, 2]
    np.testing.assert_array_equal(ds.mean, full.mean)  # documented: the full split's
    positions = ds.train._indices
    images, labels = ds.train.get([1, 0])
    want_images, want_labels = full.train.get(positions[[1, 0]])
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)


def test_source_pickles_small_and_reopens_its_readers(converted):
    _, out = converted
    source = load_dataset(f"arrayrecord:{out}").train.subset([5, 0, 7])
    want = source.get([0, 1, 2])  # opens readers, reads labels
    data = pickle.dumps(source)
    assert len(data) < 2000 and b"IHDR" not in data  # names and counts, no image bytes
    clone = pickle.loads(data)
    assert clone._readers == {} and clone._all_labels is None
    got = clone.get([0, 1, 2])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(clone.labels, want[1])


class Killed(BaseException):
    pass


def test_resume_after_a_kill_completes_with_identical_bytes(make_image_folder, tmp_path):
    root, _ = make_image_folder(COUNTS, zip=True)
    once, resumed = tmp_path / "once", tmp_path / "resumed"
    convert(f"imagefolder:{root}", once, records_per_shard=3, workers=1, log=quiet)

    written = []

    def kill_after_three_shards(line):
        written.append(line)
        if len(written) == 3:
            raise Killed

    with pytest.raises(Killed):
        convert(f"imagefolder:{root}", resumed, records_per_shard=3, workers=1,
                log=kill_after_three_shards)
    # What a kill -9 would also leave: a half-written temporary; and a finished shard lost.
    assert shard_files(resumed) == [f"train-0000{i}-of-00004.array_record" for i in range(3)]
    (resumed / ".train-00003-of-00004.array_record.x1y2.tmp.array_record").write_bytes(b"half")
    (resumed / "train-00001-of-00004.array_record").unlink()
    mtime = (resumed / "train-00000-of-00004.array_record").stat().st_mtime_ns
    logged = []
    convert(f"imagefolder:{root}", resumed, records_per_shard=3, workers=1, log=logged.append)
    assert logged[:3] == [
        "kept train-00000-of-00004.array_record (3 records, complete)",
        "wrote train-00001-of-00004.array_record (3 records)",
        "kept train-00002-of-00004.array_record (3 records, complete)",
    ]
    assert (resumed / "train-00000-of-00004.array_record").stat().st_mtime_ns == mtime
    assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in once.iterdir())
    for path in once.iterdir():
        assert (resumed / path.name).read_bytes() == path.read_bytes(), path.name
    mode = 0o666 & ~umask()
    assert all((resumed / n).stat().st_mode & 0o777 == mode for n in shard_files(once))


def test_resume_rewrites_a_shard_whose_size_changed(converted):
    root, out = converted
    (out / "metadata.json").unlink()
    (out / ".progress").mkdir()
    shard = out / "test-00001-of-00002.array_record"
    size = shard.stat().st_size
    (out / ".progress" / f"{shard.name}.json").write_text(
        json.dumps({"num_records": 3, "bytes": size + 1})
    )
    logged = []
    convert(f"imagefolder:{root}", out, records_per_shard=3, workers=1, log=logged.append)
    assert f"wrote {shard.name} (3 records)" in logged


def test_refuses_an_out_holding_another_conversion(converted, make_image_folder, tmp_path):
    root, out = converted
    with pytest.raises(DataError, match=f"--out={out} holds a different conversion.*records_per"):
        convert(f"imagefolder:{root}", out, records_per_shard=4, log=quiet)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=f"--out={other} is not empty"):
        convert(f"imagefolder:{root}", other, log=quiet)
    # A run killed while writing conversion.json left only its temporary: that is no conversion.
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / ".conversion.json.a1b2.tmp.json").write_text("{")
    convert(f"imagefolder:{root}", killed, records_per_shard=3, workers=1, log=quiet)
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in out.iterdir())


def test_a_corrupt_image_is_named_and_nothing_is_finished(make_image_folder, tmp_path):
    root, _ = make_image_folder(COUNTS)
    (root / "test" / "dog" / "001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="test/dog/001.png"):
        convert(f"imagefolder:{root}", tmp_path / "ar", records_per_shard=3, log=quiet)
    assert not (tmp_path / "ar" / "metadata.json").exists()


def test_missing_dir_and_unfinished_conversion_are_named(converted, tmp_path):
    with pytest.raises(DatasetPathError, match=str(tmp_path / "nowhere")):
        load_dataset(f"arrayrecord:{tmp_path / 'nowhere'}")
    _, out = converted
    (out / "metadata.json").unlink()
    with pytest.raises(DataError, match=f"{out} has no metadata.json"):
        load_dataset(f"arrayrecord:{out}")


def test_a_truncated_shard_is_named(converted):
    _, out = converted
    shard = out / "train-00001-of-00004.array_record"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    ds = load_dataset(f"arrayrecord:{out}")
    ds.train.get([0, 1, 2])  # other shards still read
    with pytest.raises(DataError, match=f"shard {shard} holds 0 records.*says 3"):
        ds.train.get([4])


def test_a_garbled_record_is_named_by_index_and_shard(converted):
    _, out = converted
    shard = out / "test-00000-of-00002.array_record"
    reader = array_record_module.ArrayRecordReader(str(shard))
    second = reader.read([1])[0]
    reader.close()
    data = bytearray(shard.read_bytes())
    at = data.find(second[-40:])  # uncompressed: the record's bytes are in the file as written
    data[at : at + 8] = bytes(8)
    shard.write_bytes(bytes(data))
    test = load_dataset(f"arrayrecord:{out}").test
    test.get([0, 2])
    with pytest.raises(DataError, match=f"record 1 of shard {shard} is corrupt: .*hash mismatch"):
        test.get([0, 1, 2])


def test_undecodable_bytes_and_misplaced_records_are_named(converted):
    _, out = converted
    shard = out / "test-00001-of-00002.array_record"
    writer = array_record_module.ArrayRecordWriter(str(shard), arrayrecord.WRITER_OPTIONS)
    writer.write(arrayrecord.encode_record(3, 1, "test/dog/000.png", b"garbage"))
    writer.write(arrayrecord.encode_record(3, 1, "test/dog/001.png", b"garbage"))  # index 4
    writer.write(b"\x01")
    writer.close()
    test = load_dataset(f"arrayrecord:{out}").test
    with pytest.raises(DataError, match=f"test/dog/000.png \\(record 0 of shard {shard}\\)"):
        test.get([3])
    with pytest.raises(DataError, match=f"record 1 of shard {shard} .*misplaced.*example 3"):
        test.get([4])
    with pytest.raises(DataError, match=f"record 2 of shard {shard} is corrupt.*shorter"):
        test.get([5])


def test_mixed_sizes_need_image_size(make_image_folder, tmp_path):
    root, images = make_image_folder(COUNTS, sizes={("train", "dog", 2): (6, 10)})
    out = tmp_path / "ar"
    metadata = convert(f"imagefolder:{root}", out, records_per_shard=4, workers=1, log=quiet)
    assert metadata["splits"]["train"]["image_shape"] is None
    assert metadata["splits"]["test"]["image_shape"] == [8, 8, 3]
    with pytest.raises(ImageSizeMismatchError, match=f"dataset 'arrayrecord:{out}'"):
        load_dataset(f"arrayrecord:{out}")
    ds = load_dataset(f"arrayrecord:{out}", image_size=5)
    image = ds.train.get([8])[0][0]
    want = Image.fromarray(images[("train", "dog", 2)]).resize((5, 5), Image.BILINEAR)
    np.testing.assert_array_equal(image, np.asarray(want))
    # Exact statistics over the unresized pixels of all sizes.
    pixels = np.concatenate([images[k].reshape(-1, 3) for k in images if k[0] == "train"]) / 255
    np.testing.assert_allclose(ds.mean, pixels.mean(0), rtol=1e-6)
    np.testing.assert_allclose(ds.std, pixels.std(0), rtol=1e-5)


def test_command_line(make_image_folder, tmp_path):
    root, _ = make_image_folder(COUNTS)
    out = tmp_path / "ar"
    command = [sys.executable, "-m", "jaxaug.data.convert", f"imagefolder:{root}", f"--out={out}",
               "--records_per_shard=5"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"Wrote {out} (train: 12, test: 6, val: 2)" in result.stdout
    assert shard_files(out)[-1] == "val-00000-of-00001.array_record"
    assert len(load_dataset(f"arrayrecord:{out}").train) == 12


# tfds: a real array_record dataset prepared here by a tiny builder. tfds 4.9 writes array_record
# without TensorFlow as long as the image feature gets encoded bytes (encoding an array would call
# tf.image.encode_png).
def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_tfds_images(split):
    rng = np.random.default_rng({"train": 0, "test": 1}[split])
    n = {"train": 10, "test": 4}[split]
    return rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), np.arange(n) % 3


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    import tensorflow_datasets as tfds

    class JaxaugTinyArrayRecord(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
            })
            return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in ("train", "test")}

        def _generate_examples(self, split):
            images, labels = tiny_tfds_images(split)
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                yield i, {"image": png_bytes(image), "label": int(label)}

    data_dir = tmp_path_factory.mktemp("tfds")
    JaxaugTinyArrayRecord(data_dir=data_dir, file_format="array_record").download_and_prepare()
    assert "tensorflow" not in sys.modules
    return data_dir


def test_tfds_data_source_reads_a_real_array_record_dataset(tfds_dir, cache_dir):
    files = sorted(p.name for p in (tfds_dir / "jaxaug_tiny_array_record" / "1.0.0").iterdir())
    assert "jaxaug_tiny_array_record-train.array_record-00000-of-00001" in files
    ds = load_dataset("tfds:jaxaug_tiny_array_record", data_dir=tfds_dir, cache_dir=cache_dir)
    assert ds.class_names == ("a", "b", "c") and ds.image_shape == (8, 8, 3)
    for split in ("train", "test"):
        images, labels = tiny_tfds_images(split)
        np.testing.assert_array_equal(getattr(ds, split).images, images)
        np.testing.assert_array_equal(getattr(ds, split).labels, labels)


def test_tfds_lazy_sources_read_a_real_array_record_dataset(tfds_dir):
    from jaxaug.data import tfds_source

    train, test = tfds_source.lazy_sources("jaxaug_tiny_array_record", str(tfds_dir), 8)
    images, labels = tiny_tfds_images("test")
    np.testing.assert_array_equal(test.labels, labels)  # through SkipDecoding: no image decoded
    got_images, got_labels = test.get([3, 0])
    np.testing.assert_array_equal(got_images, images[[3, 0]])
    np.testing.assert_array_equal(got_labels, labels[[3, 0]])


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR_ZIP.exists(), reason=f"{CIFAR_ZIP} is not present")
def test_cifar_zip_converts_and_trains(tmp_path):
    """The CIFAR-10 JPEG zip converts, equals its imagefolder load, and trains a few steps; the
    fast tests above check the same properties on a generated folder."""
    start = time.perf_counter()
    convert(f"imagefolder:{CIFAR_ZIP}", tmp_path / "cifar", log=quiet)
    print(f"conversion: {time.perf_counter() - start:.1f} s")
    ds = load_dataset(f"arrayrecord:{tmp_path / 'cifar'}")
    reference = load_dataset(f"imagefolder:{CIFAR_ZIP}", cache_dir=tmp_path / "cache")
    picks = np.random.default_rng(0).choice(len(ds.train), 256, replace=False)
    np.testing.assert_array_equal(ds.train.get(picks)[0], reference.train.images[picks])
    np.testing.assert_array_equal(ds.train.labels, reference.train.labels)
    np.testing.assert_array_equal(ds.mean, reference.mean)
    np.testing.assert_array_equal(ds.std, reference.std)
    command = [
        sys.executable, "train.py", "--config=configs/quickstart.py",
        f"--config.dataset=arrayrecord:{tmp_path / 'cifar'}", f"--workdir={tmp_path / 'run'}",
        "--config.reduced=1000", "--config.epochs=1",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1200,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout[-500:])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["last_test_accuracy"] > 0.15
