"""Every bad input raises its own error class, and the message names the offending thing."""

import importlib.util
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxaug.data import (
    CorruptImageError,
    DatasetPathError,
    EmptyClassError,
    ImageSizeMismatchError,
    SplitNotFoundError,
    UnknownDatasetError,
    load_dataset,
)
from jaxaug.data.imagefolder import ImageFolder

COUNTS = {"train": {"cat": 2, "dog": 2}, "test": {"cat": 1, "dog": 1}}


@pytest.mark.parametrize("name", ["foo:bar", "tfds:", "imagefolder:", "cifar10", "synthetic:x"])
def test_unknown_dataset_name(name):
    with pytest.raises(UnknownDatasetError, match=re.escape(repr(name))):
        load_dataset(name)


def test_unknown_tfds_dataset():
    with pytest.raises(UnknownDatasetError, match="no_such_dataset_xyz"):
        load_dataset("tfds:no_such_dataset_xyz")


def test_missing_path(tmp_path, cache_dir):
    missing = tmp_path / "nowhere" / "data.zip"
    with pytest.raises(DatasetPathError, match=str(missing)):
        load_dataset(f"imagefolder:{missing}", cache_dir=cache_dir)


def test_file_that_is_not_a_zip(tmp_path, cache_dir):
    path = tmp_path / "data.tar"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(DatasetPathError, match=str(path)):
        load_dataset(f"imagefolder:{path}", cache_dir=cache_dir)


def test_corrupt_image_in_directory(make_image_folder, cache_dir):
    root, _ = make_image_folder(COUNTS)
    bad = root / "train" / "dog" / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(CorruptImageError, match=str(bad)):
        load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)
    assert not cache_dir.exists() or not list(cache_dir.iterdir())


def test_truncated_image_in_zip(make_image_folder, cache_dir, tmp_path):
    root, _ = make_image_folder(COUNTS)
    good = (root / "test" / "cat" / "000.png").read_bytes()
    archive = tmp_path / "broken.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in root.rglob("*.png"):
            z.write(path, path.relative_to(root).as_posix())
        z.writestr("test/cat/001.png", good[: len(good) // 2])
    with pytest.raises(CorruptImageError, match=f"{archive}/test/cat/001.png"):
        load_dataset(f"imagefolder:{archive}", cache_dir=cache_dir)


def test_corrupt_image_reported_from_a_reader_thread(make_image_folder, zip_folder, tmp_path):
    root, _ = make_image_folder(COUNTS)
    (root / "test" / "dog" / "bad.png").write_bytes(b"garbage")
    archive = zip_folder(root, tmp_path / "bad.zip")
    with pytest.raises(CorruptImageError, match=f"{archive}/test/dog/bad.png"):
        ImageFolder(archive).decode(workers=2)


@pytest.mark.parametrize("as_zip", [False, True])
@pytest.mark.parametrize("contents", ["nothing", "a non-image file"])
def test_empty_class_folder(make_image_folder, zip_folder, cache_dir, tmp_path, as_zip, contents):
    root, _ = make_image_folder(COUNTS)
    (root / "train" / "bird").mkdir()
    if contents == "a non-image file":
        (root / "train" / "bird" / "notes.txt").write_text("no images here")
    # an empty folder exists in a zip only as a folder entry, "train/bird/"
    path = zip_folder(root, tmp_path / "data.zip") if as_zip else root
    with pytest.raises(EmptyClassError, match=f"{path}/train/bird"):
        load_dataset(f"imagefolder:{path}", cache_dir=cache_dir)


def test_test_class_unknown_to_train(make_image_folder, cache_dir):
    root, _ = make_image_folder({**COUNTS, "test": {"cat": 1, "cow": 1}})
    with pytest.raises(ValueError, match=f"{root}/test/cow"):
        load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)


def test_missing_split_lists_the_available_ones(make_image_folder, cache_dir):
    root, _ = make_image_folder({"train": {"cat": 1}, "valid": {"cat": 1}})
    with pytest.raises(SplitNotFoundError, match=r"'test'.*\['train', 'valid'\]"):
        load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)


def test_size_mismatch_names_the_first_offending_file(make_image_folder, cache_dir):
    sizes = {("train", "dog", 1): (9, 8), ("test", "cat", 0): (4, 4)}
    root, _ = make_image_folder(COUNTS, sizes=sizes)
    with pytest.raises(ImageSizeMismatchError) as error:
        load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)
    message = str(error.value)
    assert str(root / "train" / "dog" / "001.png") in message
    assert "(9, 8, 3)" in message and "image_size" in message
    assert "test" not in message.replace(str(root), "")  # only the first offender is named
    # the same folder loads once a common size is requested
    resized = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir, image_size=8)
    assert resized.image_shape == (8, 8, 3)


def test_grayscale_16_bit_and_transparent_images_become_rgb(make_image_folder, cache_dir):
    """8- and 16-bit greyscale repeat into three channels (16-bit scaled by 1/257, where Pillow's
    convert("RGB") gives pure white); alpha is composited onto grey 128, so an opaque alpha
    changes nothing and a half-transparent one blends."""
    root, _ = make_image_folder(COUNTS)
    cat = root / "train" / "cat"
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(gray).save(cat / "000.png")
    Image.fromarray(np.full((8, 8, 4), 7, np.uint8)).save(cat / "001.png")
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000 + 500)
    Image.fromarray(deep).save(dog16 := root / "train" / "dog" / "000.png")
    assert Image.open(dog16).mode.startswith("I")  # really a 16-bit PNG
    opaque = np.dstack([np.full((8, 8, 3), 7, np.uint8), np.full((8, 8), 255, np.uint8)])
    Image.fromarray(opaque).save(root / "train" / "dog" / "001.png")
    ds = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)
    np.testing.assert_array_equal(ds.train.images[0], np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(ds.train.images[1],
                                  np.full((8, 8, 3), round(7 * 7 / 255 + 128 * 248 / 255)))
    want16 = np.round(deep / 257).astype(np.uint8)
    np.testing.assert_array_equal(ds.train.images[2], np.repeat(want16[..., None], 3, -1))
    assert ds.train.images[2].min() < 10  # not the all-white of a clipping conversion
    np.testing.assert_array_equal(ds.train.images[3], np.full((8, 8, 3), 7))


def test_bad_crc_in_the_zip_names_the_zip_and_member(make_image_folder, zip_folder, tmp_path,
                                                     cache_dir):
    root, _ = make_image_folder(COUNTS)
    archive = zip_folder(root, tmp_path / "data.zip")
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("train/dog/001.png")
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF  # one byte of the member's data
    archive.write_bytes(bytes(data))
    member = re.escape(f"train/dog/001.png from the zip {archive}")
    with pytest.raises(CorruptImageError, match=member):
        load_dataset(f"imagefolder:{archive}", cache_dir=cache_dir)


def test_importable_without_tensorflow_datasets(tmp_path):
    """jaxaug, its trainer and train.py import with tensorflow_datasets unimportable (the GPU
    benchmark machine's case, bench/gpu.sh); only a `tfds:` name then needs it, and says so."""
    script = (
        "import sys\n"
        "sys.modules['tensorflow_datasets'] = None  # any import of it now raises\n"
        "import jaxaug, jaxaug.data, jaxaug.train, train\n"
        "try:\n"
        "    jaxaug.data.load_dataset('tfds:cifar10')\n"
        "except ModuleNotFoundError as e:\n"
        "    print('ERROR', e.name, e)\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ERROR tensorflow_datasets "), result.stdout
    assert "tensorflow-datasets" in result.stdout and "'tfds:cifar10'" in result.stdout


def test_packed_reduced_zip_matches_reduced_load(tmp_path, cache_dir):
    """bench/pack_reduced.py packs exactly the subset `reduced=N` selects, bytes unchanged."""
    spec = importlib.util.spec_from_file_location(
        "pack_reduced", Path(__file__).resolve().parents[1] / "bench" / "pack_reduced.py")
    pack_reduced = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack_reduced)
    source, packed = tmp_path / "full.zip", tmp_path / "packed.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(source, "w") as z:
        for split, n in (("train", 6), ("test", 2)):
            for cls in ("cat", "dog", "owl"):
                for i in range(n):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (4, 4, 3), np.uint8)).save(buf, "PNG")
                    z.writestr(f"{split}/{cls}/{i}.png", buf.getvalue())
    assert pack_reduced.pack(str(source), str(packed), 6, 3) == {"train": 6, "test": 6}
    full = load_dataset(f"imagefolder:{source}", reduced=6, seed=3, cache_dir=cache_dir)
    small = load_dataset(f"imagefolder:{packed}", cache_dir=cache_dir)
    np.testing.assert_array_equal(small.train.labels, full.train.labels)
    np.testing.assert_array_equal(small.train.get(np.arange(6))[0],
                                  full.train.get(np.arange(6))[0])
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(packed) as b:
        assert all(b.read(m) == a.read(m) for m in b.namelist())
        assert len([m for m in b.namelist() if m.startswith("test/")]) == 6
