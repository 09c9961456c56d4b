"""The image-folder reader on small generated folders: exact pixels, layout, splits, resizing."""

import pickle

import numpy as np
import pytest
from PIL import Image

from jaxaug.data import DataError, load_dataset
from jaxaug.data.imagefolder import ImageFolder

COUNTS = {
    "train": {"zebra": 3, "ant": 4, "moth": 2},
    "test": {"ant": 2, "moth": 1, "zebra": 2},
}


def expected_split(images, split, class_names):
    """The written arrays in the reader's order: sorted class, then sorted file name."""
    keys = sorted((k for k in images if k[0] == split), key=lambda k: (k[1], k[2]))
    return np.stack([images[k] for k in keys]), np.array([class_names.index(k[1]) for k in keys])


@pytest.mark.parametrize("layout", ["directory", "zip", "zip without folder entries"])
def test_reads_every_pixel_and_label(make_image_folder, cache_dir, layout):
    root, images = make_image_folder(
        COUNTS, zip=layout != "directory", folder_entries=layout == "zip"
    )
    ds = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)
    assert ds.class_names == ("ant", "moth", "zebra") and ds.num_classes == 3
    assert ds.image_shape == (8, 8, 3) and ds.val is None
    for split, source in (("train", ds.train), ("test", ds.test)):
        want_images, want_labels = expected_split(images, split, list(ds.class_names))
        np.testing.assert_array_equal(source.images, want_images)
        np.testing.assert_array_equal(source.labels, want_labels)
        assert source.images.dtype == np.uint8 and source.labels.dtype == np.int32
    pixels = ds.train.images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(ds.mean, pixels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(ds.std, pixels.std(0), rtol=1e-5)


@pytest.mark.parametrize("layout", ["directory", "zip"])
def test_a_streamed_folder_reads_what_the_in_memory_one_holds(make_image_folder, cache_dir,
                                                              layout):
    root, _ = make_image_folder(COUNTS, zip=layout == "zip")
    held = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir, reduced=6, val_size=3)
    streamed = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir, reduced=6, val_size=3,
                            stream=True)
    streamed = pickle.loads(pickle.dumps(streamed))  # as grain sends it to a worker process
    assert not hasattr(streamed.train, "images") and streamed.image_shape == held.image_shape
    for split in ("train", "val", "test"):
        want, got = getattr(held, split), getattr(streamed, split)
        order = np.arange(len(want))[::-1]
        np.testing.assert_array_equal(got.labels, want.labels)
        for a, b in zip(got.get(order), want.get(order), strict=True):
            np.testing.assert_array_equal(a, b)
    # Fewer training images than the statistics sample: the estimate is the exact value.
    np.testing.assert_array_equal(streamed.mean, held.mean)
    np.testing.assert_array_equal(streamed.std, held.std)


def test_a_streamed_image_of_another_size_is_named_when_read(make_image_folder, cache_dir):
    root, _ = make_image_folder(COUNTS, sizes={("test", "moth", 0): (8, 9)})
    ds = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir, stream=True)
    with pytest.raises(DataError, match=r"test/moth/000.png has shape \(8, 9, 3\), but "
                                        r".*train/ant/000.png has \(8, 8, 3\)"):
        ds.test.get([2])


@pytest.mark.parametrize("folder", ["val", "validation"])
def test_reads_a_validation_split(make_image_folder, cache_dir, folder):
    root, images = make_image_folder({**COUNTS, folder: {"ant": 1, "zebra": 2}})
    ds = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)
    want_images, want_labels = expected_split(images, folder, list(ds.class_names))
    np.testing.assert_array_equal(ds.val.images, want_images)
    np.testing.assert_array_equal(ds.val.labels, want_labels)
    with pytest.raises(DataError, match="own validation split"):
        load_dataset(f"imagefolder:{root}", cache_dir=cache_dir, val_size=3)


def test_ignores_other_files_and_folders(make_image_folder, cache_dir):
    root, _ = make_image_folder(COUNTS)
    (root / "README.txt").write_text("not data")
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    (root / "__MACOSX").mkdir()
    ds = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir)
    assert len(ds.train) == 9 and ds.class_names == ("ant", "moth", "zebra")


def test_relative_path_is_taken_from_data_dir(make_image_folder, cache_dir, tmp_path):
    make_image_folder(COUNTS, name="folder")
    ds = load_dataset("imagefolder:folder", data_dir=tmp_path, cache_dir=cache_dir)
    assert len(ds.train) == 9


def test_image_size_resizes_bilinearly(make_image_folder, cache_dir):
    sizes = {("train", "ant", 0): (12, 20), ("test", "moth", 0): (5, 7)}
    root, images = make_image_folder(COUNTS, sizes=sizes)
    ds = load_dataset(f"imagefolder:{root}", cache_dir=cache_dir, image_size=10)
    assert ds.image_shape == (10, 10, 3)
    want = np.asarray(Image.fromarray(images[("train", "ant", 0)]).resize((10, 10), Image.BILINEAR))
    np.testing.assert_array_equal(ds.train.images[0], want)
    want = np.asarray(Image.fromarray(images[("test", "moth", 0)]).resize((10, 10), Image.BILINEAR))
    np.testing.assert_array_equal(ds.test.images[2], want)


def test_reader_threads_decode_the_same_arrays(make_image_folder):
    root, _ = make_image_folder(COUNTS, zip=True)
    folder = ImageFolder(root)
    serial, pooled = folder.decode(workers=1), folder.decode(workers=2)
    assert serial.keys() == pooled.keys()
    for key in serial:
        np.testing.assert_array_equal(serial[key], pooled[key])


# ---- reduced and val_size -------------------------------------------------------------------


@pytest.fixture
def tagged_folder(make_image_folder):
    """4 classes x 10 train images and 1 test image each."""
    root, _ = make_image_folder({"train": {c: 10 for c in "abcd"}, "test": {c: 1 for c in "abcd"}})
    return root


def ids(source):
    """Identify examples by their pixels (random 8x8 images do not collide)."""
    return {image.tobytes() for image in source.images}


def test_reduced_is_class_balanced_and_seed_determined(tagged_folder, cache_dir):
    full = load_dataset(f"imagefolder:{tagged_folder}", cache_dir=cache_dir)
    a = load_dataset(f"imagefolder:{tagged_folder}", cache_dir=cache_dir, reduced=20, seed=1)
    b = load_dataset(f"imagefolder:{tagged_folder}", cache_dir=cache_dir, reduced=20, seed=1)
    c = load_dataset(f"imagefolder:{tagged_folder}", cache_dir=cache_dir, reduced=20, seed=2)
    np.testing.assert_array_equal(np.bincount(a.train.labels), [5, 5, 5, 5])
    np.testing.assert_array_equal(a.train.images, b.train.images)
    assert ids(a.train) != ids(c.train)
    assert ids(a.train) <= ids(full.train)
    # each image keeps its label
    label_of = {
        img.tobytes(): lab for img, lab in zip(full.train.images, full.train.labels, strict=True)
    }
    assert all(
        label_of[img.tobytes()] == lab
        for img, lab in zip(a.train.images, a.train.labels, strict=True)
    )
    assert len(a.test) == len(full.test)  # the test split is never reduced


def test_val_size_holds_out_a_balanced_disjoint_split(tagged_folder, cache_dir):
    name = f"imagefolder:{tagged_folder}"
    full = load_dataset(name, cache_dir=cache_dir)
    ds = load_dataset(name, cache_dir=cache_dir, val_size=8, seed=3)
    np.testing.assert_array_equal(np.bincount(ds.val.labels), [2, 2, 2, 2])
    np.testing.assert_array_equal(np.bincount(ds.train.labels), [8, 8, 8, 8])
    assert ids(ds.train).isdisjoint(ids(ds.val))
    assert ids(ds.train) | ids(ds.val) == ids(full.train)
    again = load_dataset(name, cache_dir=cache_dir, val_size=8, seed=3)
    assert ids(again.val) == ids(ds.val)
    assert ids(load_dataset(name, cache_dir=cache_dir, val_size=8, seed=4).val) != ids(ds.val)
    # statistics come from the remaining training images only
    np.testing.assert_allclose(ds.mean, (ds.train.images.reshape(-1, 3) / 255).mean(0), rtol=1e-5)


def test_val_size_after_reduced_comes_from_the_reduced_split(tagged_folder, cache_dir):
    name = f"imagefolder:{tagged_folder}"
    reduced = load_dataset(name, cache_dir=cache_dir, reduced=20, seed=5)
    ds = load_dataset(name, cache_dir=cache_dir, reduced=20, val_size=4, seed=5)
    assert ids(ds.train) | ids(ds.val) == ids(reduced.train)
    assert len(ds.train) == 16 and len(ds.val) == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reduced": 10}, "not a positive multiple"),
        ({"reduced": -4}, "not a positive multiple"),
        ({"reduced": 44}, "needs 11 examples of class 0"),
        ({"val_size": 6}, "not a positive multiple"),
        ({"val_size": 40}, "must keep one"),
    ],
)
def test_impossible_subsets_are_errors(tagged_folder, cache_dir, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_dataset(f"imagefolder:{tagged_folder}", cache_dir=cache_dir, **kwargs)
