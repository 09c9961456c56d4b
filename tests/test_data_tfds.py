"""`tfds:<name>` through `tfds.data_source`, exercised with tfds's mock data (no download)."""

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jaxaug.data import load_dataset
from jaxaug.data.dataset import Dataset


def mock(num_examples):
    return tfds.testing.mock_data(
        num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE
    )


def test_cifar10_is_read_into_memory(cache_dir):
    with mock(30):
        ds = load_dataset("tfds:cifar10", cache_dir=cache_dir)
        again = load_dataset("tfds:cifar10", cache_dir=cache_dir / "second")
        source = tfds.data_source("cifar10", split="test")
        first_test = source[0]
    assert isinstance(ds, Dataset) and ds.num_classes == 10 and len(ds.class_names) == 10
    assert ds.image_shape == (32, 32, 3) and ds.val is None
    for split in (ds.train, ds.test):
        assert len(split) == 30
        assert split.images.dtype == np.uint8 and split.images.shape == (30, 32, 32, 3)
        assert split.labels.dtype == np.int32
        assert 0 <= split.labels.min() and split.labels.max() < 10
    np.testing.assert_array_equal(ds.test.images[0], first_test["image"])
    assert ds.test.labels[0] == first_test["label"]
    np.testing.assert_array_equal(ds.train.images, again.train.images)
    np.testing.assert_array_equal(ds.train.labels, again.train.labels)
    assert len(list(cache_dir.glob("tfds-cifar10-*.npz"))) == 1
    assert len(list((cache_dir / "second").glob("tfds-cifar10-*.npz"))) == 1


def test_cache_key_depends_on_the_data(cache_dir):
    # mock data of another size must not be served from the first run's cache
    with mock(20):
        assert len(load_dataset("tfds:cifar10", cache_dir=cache_dir).train) == 20
    with mock(40):
        assert len(load_dataset("tfds:cifar10", cache_dir=cache_dir).train) == 40


def test_image_size_resizes_small_datasets(cache_dir):
    with mock(10):
        ds = load_dataset("tfds:svhn_cropped", cache_dir=cache_dir, image_size=16)
        raw = [tfds.data_source("svhn_cropped", split=s)[3]["image"] for s in ("train", "test")]
    assert ds.train.images.shape == (10, 16, 16, 3)
    # Both splits, each image Pillow's bilinear resize of the stored one.
    for split, image in zip((ds.train, ds.test), raw, strict=True):
        expected = np.asarray(Image.fromarray(image).resize((16, 16), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(split.images[3], expected)


def test_imagenet_is_read_lazily_and_center_cropped():
    with mock(6):
        ds = load_dataset("tfds:imagenet2012", image_size=24)
        images, labels = ds.test.get([4, 1])
        raw = tfds.data_source("imagenet2012", split="validation")[4]["image"]
    assert ds.num_classes == 1000 and ds.image_shape == (24, 24, 3)
    np.testing.assert_allclose(ds.mean, [0.485, 0.456, 0.406])
    np.testing.assert_allclose(ds.std, [0.229, 0.224, 0.225])
    assert images.shape == (2, 24, 24, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and ((0 <= labels) & (labels < 1000)).all()
    # shorter side resized to 24, then the centre 24 x 24 window
    h, w = raw.shape[:2]
    scale = 24 / min(h, w)
    new_h, new_w = max(24, round(h * scale)), max(24, round(w * scale))
    resized = np.asarray(Image.fromarray(raw).resize((new_w, new_h), Image.BILINEAR))
    top, left = (new_h - 24) // 2, (new_w - 24) // 2
    np.testing.assert_array_equal(images[0], resized[top : top + 24, left : left + 24])


def test_imagenet_defaults_to_224():
    with mock(2):
        ds = load_dataset("tfds:imagenet2012")
        images, _ = ds.train.get([0])
    assert images.shape == (1, 224, 224, 3)
