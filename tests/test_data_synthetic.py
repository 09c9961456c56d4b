"""The generated `synthetic` dataset: deterministic, balanced, colour-blind classes, fast."""

import hashlib
import time

import numpy as np
import pytest
from PIL import Image

from jaxaug.data import load_dataset, save_image_grid, synthetic

# sha256 of synthetic.generate(20, seed=0) images and labels
PINNED_DIGEST = "25e6da5ff8a9912913c9d774a176ec2972eaa548cf691ba2de2c43be4dccc266"


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic")


def test_generation_is_deterministic_and_seed_dependent():
    images_a, labels_a = synthetic.generate(300, seed=0)
    images_b, labels_b = synthetic.generate(300, seed=0)
    assert images_a.tobytes() == images_b.tobytes()
    assert np.array_equal(labels_a, labels_b)
    other, _ = synthetic.generate(300, seed=1)
    assert np.mean(other != images_a) > 0.5


def test_generation_bytes_are_pinned():
    # Only IEEE-exact arithmetic is used, so these bytes must be the same on every machine; a
    # failure means the dataset changed (or the generator is not portable).
    images, labels = synthetic.generate(20, seed=0)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert digest == PINNED_DIGEST


def test_splits_shapes_balance_and_ranges(dataset):
    assert dataset.class_names == synthetic.CLASS_NAMES and dataset.num_classes == 10
    assert dataset.image_shape == (32, 32, 3)
    for source, size in ((dataset.train, 10_000), (dataset.test, 2_000)):
        assert source.images.shape == (size, 32, 32, 3) and source.images.dtype == np.uint8
        assert source.labels.dtype == np.int32
        np.testing.assert_array_equal(np.bincount(source.labels, minlength=10), [size // 10] * 10)
        assert source.images.min() == 0 and source.images.max() == 255
    # train and test are different draws
    assert not np.array_equal(dataset.train.images[:2000], dataset.test.images)
    # mean/std are the per-channel statistics of the training images
    pixels = dataset.train.images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(dataset.mean, pixels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(dataset.std, pixels.std(0), rtol=1e-5)


def test_hue_does_not_identify_the_class(dataset):
    # The foreground is always brighter than the background, so an image's brightness, and through
    # the luminance weights a little of its chroma, follows its shape's area (geometry). Colour on
    # its own must not identify the class: a nearest-class-mean classifier on chroma (colour minus
    # grey level) stays at chance.
    def chroma(images):
        colour = images.astype(np.float64).mean((1, 2))  # [N, 3]
        return colour - colour.mean(1, keepdims=True)

    labels = dataset.train.labels
    train_chroma = chroma(dataset.train.images)
    class_means = np.stack([train_chroma[labels == c].mean(0) for c in range(10)])
    predicted = ((chroma(dataset.test.images)[:, None] - class_means[None]) ** 2).sum(-1).argmin(1)
    assert np.mean(predicted == dataset.test.labels) < 0.15


def test_classes_differ_in_shape(dataset):
    # The fraction of pixels that differ from the border colour (the shape's area) separates
    # e.g. rings and crosses from squares, whatever the colours.
    images = dataset.train.images.astype(np.int16)
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
    reference = np.median(border, axis=1)[:, None, None, :]
    area = (np.abs(images - reference).max(-1) > 60).mean((1, 2))
    class_area = np.array([np.median(area[dataset.train.labels == c]) for c in range(10)])
    assert np.ptp(class_area) > 0.1


def test_generation_time():
    # CPU time, not wall time, so that other processes on the machine cannot make this flaky.
    start = time.process_time()
    synthetic.read_arrays()
    assert time.process_time() - start < 5.0


def test_loads_share_one_read_only_generation(dataset):
    # Generated once per process and image size: a second load costs no generation, and no
    # caller can change the arrays that the other loads share.
    again = load_dataset("synthetic", reduced=100)
    assert again.test.images is dataset.test.images
    with pytest.raises(ValueError, match="read-only"):
        again.test.images[0, 0, 0, 0] = 0
    np.testing.assert_array_equal(again.test.images, synthetic.generate(2_000, seed=synthetic.SPLIT_SEEDS["test"])[0])


def test_image_size_renders_at_that_resolution():
    images, _ = synthetic.generate(10, seed=0, image_size=48)
    assert images.shape == (10, 48, 48, 3)


def test_save_image_grid_writes_png_atomically(tmp_path, dataset):
    path = tmp_path / "grid.png"
    save_image_grid(dataset.train.images[:10], path, nrow=4)
    grid = np.asarray(Image.open(path))
    # 3 rows of 4 images of 32 px with 2 px padding around and between them
    assert grid.shape == (2 + 3 * 34, 2 + 4 * 34, 3)
    np.testing.assert_array_equal(grid[2:34, 2:34], dataset.train.images[0])
    np.testing.assert_array_equal(grid[36:68, 2:34], dataset.train.images[4])
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temp file left behind
