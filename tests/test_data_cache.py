"""The decoded-array cache: hits skip decoding, writes are atomic, corruption is reported."""

import os

import numpy as np
import pytest

from jaxaug.data import CorruptCacheError, load_dataset
from jaxaug.data import atomic
from jaxaug.data import cache as cache_lib
from jaxaug.data.imagefolder import ImageFolder

COUNTS = {"train": {"cat": 3, "dog": 3}, "test": {"cat": 2, "dog": 2}}


def no_decoding(*args, **kwargs):
    raise AssertionError("decoded although the cache should have been used")


def assert_same(a, b):
    for split in ("train", "test"):
        np.testing.assert_array_equal(getattr(a, split).images, getattr(b, split).images)
        np.testing.assert_array_equal(getattr(a, split).labels, getattr(b, split).labels)
    assert a.class_names == b.class_names
    np.testing.assert_array_equal(a.mean, b.mean)


@pytest.fixture
def folder(make_image_folder):
    root, _ = make_image_folder(COUNTS, zip=True)
    return root


def test_second_load_reads_the_cache(folder, cache_dir, monkeypatch):
    first = load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.npz"))) == 1
    monkeypatch.setattr(ImageFolder, "decode", no_decoding)
    assert_same(first, load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir))


def test_cache_dir_defaults_to_the_environment_variable(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXAUG_CACHE_DIR", str(tmp_path / "env-cache"))
    load_dataset(f"imagefolder:{folder}")
    assert len(list((tmp_path / "env-cache").glob("imagefolder-data-*.npz"))) == 1


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_changed_source_or_image_size_gets_a_new_cache_entry(
    make_image_folder, zip_folder, cache_dir, tmp_path, as_zip
):
    root, _ = make_image_folder(COUNTS)
    path = zip_folder(root, tmp_path / "data.zip") if as_zip else root
    before = load_dataset(f"imagefolder:{path}", cache_dir=cache_dir)
    load_dataset(f"imagefolder:{path}", cache_dir=cache_dir, image_size=4)
    assert len(list(cache_dir.glob("*.npz"))) == 2
    # replace train/cat/000.png by a copy of train/dog/000.png
    changed = root / "train" / "cat" / "000.png"
    changed.write_bytes((root / "train" / "dog" / "000.png").read_bytes())
    if as_zip:
        changed = zip_folder(root, path)
    os.utime(changed, ns=(1, 1))  # a different modification time, whatever the clock resolution
    after = load_dataset(f"imagefolder:{path}", cache_dir=cache_dir)
    np.testing.assert_array_equal(after.train.images[0], before.train.images[3])


def test_failed_write_leaves_no_file_and_the_run_goes_on(folder, cache_dir, monkeypatch):
    """A write that fails (disk full, a read-only or foreign directory: OSError at any point of the
    write) warns and returns the decoded arrays; nothing is left in the cache directory."""
    def fail(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    reference = load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir.parent / "reference-cache")
    for target, name in ((np, "savez"), (os, "replace"), (atomic.tempfile, "mkstemp")):
        with monkeypatch.context() as patch:
            patch.setattr(target, name, fail)
            with pytest.warns(UserWarning, match=f"cannot write the dataset cache {cache_dir}"):
                dataset = load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir)
        assert_same(dataset, reference)
        assert list(cache_dir.iterdir()) == []  # neither the final file nor a temporary one

    rebuilt = load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir)
    assert len(list(cache_dir.iterdir())) == 1
    monkeypatch.setattr(ImageFolder, "decode", no_decoding)
    assert_same(rebuilt, load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir))


def test_orphan_temporaries_of_killed_runs_are_removed(folder, cache_dir):
    """Temporary files older than this process (a killed run's) go; a newer one (a run still
    writing) stays, as does every other file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    old_style, new_style = cache_dir / "a.npz.x1y2.tmp", cache_dir / ".a.npz.x1y2.tmp.npz"
    live, other = cache_dir / ".b.npz.z3.tmp.npz", cache_dir / "notes.tmp"
    for path in (old_style, new_style, live, other):
        path.write_bytes(b"partial")
    for path in (old_style, new_style, other):
        os.utime(path, (1, 1))  # 1970: before this process started
    load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir)
    assert not old_style.exists() and not new_style.exists()
    assert live.exists() and other.exists()


def test_partial_write_then_crash_leaves_no_file(folder, cache_dir, monkeypatch):
    real_savez = np.savez

    def write_half_then_crash(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(file.tell() // 2)
        raise KeyboardInterrupt  # e.g. the user hits Ctrl-C mid-write

    monkeypatch.setattr(np, "savez", write_half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir)
    assert list(cache_dir.iterdir()) == []


def cached_file(folder, cache_dir):
    load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir)
    (path,) = cache_dir.glob("*.npz")
    return path


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:100], id="header only"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(
            lambda data: data[:300] + bytes([data[300] ^ 0xFF]) + data[301:], id="flipped byte"
        ),
    ],
)
def test_corrupt_cache_is_reported_not_rebuilt(folder, cache_dir, monkeypatch, damage):
    path = cached_file(folder, cache_dir)
    path.write_bytes(damage(path.read_bytes()))
    monkeypatch.setattr(ImageFolder, "decode", no_decoding)
    with pytest.raises(CorruptCacheError, match=f"{path}.*delete it"):
        load_dataset(f"imagefolder:{folder}", cache_dir=cache_dir)


def test_cache_with_tampered_array_is_reported(tmp_path):
    path = tmp_path / "x.npz"
    cache_lib.save(path, {"a": np.arange(10), "b": np.ones((2, 3), np.uint8)})
    arrays = cache_lib.load(path)
    np.testing.assert_array_equal(arrays["b"], np.ones((2, 3)))
    # rewrite the file with a different array but the old manifest
    with np.load(path) as npz:
        contents = dict(npz)
    contents["a"] = contents["a"][::-1].copy()
    np.savez(path, **contents)
    with pytest.raises(CorruptCacheError, match="'a'"):
        cache_lib.load(path)
