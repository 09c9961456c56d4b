"""The image-folder reader and cache on the real CIFAR-10 JPEG zip from ../shared/data."""

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxaug.data import load_dataset
from jaxaug.data.imagefolder import ImageFolder

CIFAR_ZIP = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-jpeg.zip"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

pytestmark = pytest.mark.skipif(
    not CIFAR_ZIP.exists(), reason=f"CIFAR-10 JPEG zip not found at {CIFAR_ZIP}"
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cifar-cache")


@pytest.fixture(scope="module")
def cifar(cache_dir):
    start = time.perf_counter()
    ds = load_dataset(f"imagefolder:{CIFAR_ZIP}", cache_dir=cache_dir)
    print(f"decoded and cached CIFAR-10 in {time.perf_counter() - start:.1f} s")
    return ds


def test_layout_and_counts(cifar):
    assert cifar.class_names == CLASSES and cifar.image_shape == (32, 32, 3)
    assert cifar.train.images.shape == (50_000, 32, 32, 3)
    assert cifar.test.images.shape == (10_000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(cifar.train.labels), [5000] * 10)
    np.testing.assert_array_equal(np.bincount(cifar.test.labels), [1000] * 10)


def test_pixels_equal_direct_pillow_decoding(cifar):
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(CIFAR_ZIP) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        for split, source, per_class in (("train", cifar.train, 5000), ("test", cifar.test, 1000)):
            for index in rng.choice(len(source), 25, replace=False):
                label = source.labels[index]
                # classes are in alphabetical order, files in sorted name order within a class
                folder = f"{split}/{CLASSES[label]}/"
                members = [n for n in names if n.startswith(folder)]
                member = members[index - label * per_class]
                want = np.asarray(Image.open(io.BytesIO(z.read(member))).convert("RGB"))
                np.testing.assert_array_equal(source.images[index], want, err_msg=member)


def test_pixel_mean(cifar):
    total = int(cifar.train.images.sum(dtype=np.uint64) + cifar.test.images.sum(dtype=np.uint64))
    mean = total / (cifar.train.images.size + cifar.test.images.size)
    assert abs(mean - 120.8) < 0.5
    # the normalization statistics are those of the training split
    channel_means = [cifar.train.images[..., c].mean(dtype=np.float64) for c in range(3)]
    np.testing.assert_allclose(cifar.mean * 255, channel_means, rtol=1e-5)


def test_second_load_comes_from_the_cache(cifar, cache_dir, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache should have been used")

    monkeypatch.setattr(ImageFolder, "decode", no_decoding)
    start = time.perf_counter()
    again = load_dataset(f"imagefolder:{CIFAR_ZIP}", cache_dir=cache_dir)
    print(f"loaded CIFAR-10 from the cache in {time.perf_counter() - start:.1f} s")
    for a, b in ((cifar.train, again.train), (cifar.test, again.test)):
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(cifar.mean, again.mean)
