"""The recipes train: each recipe config runs a few steps through `train` on synthetic images
at its own size (the shapes dataset's first images, resized, as a small image folder), with its
whole augmentation (crop, policy, mixing, label smoothing). All are `slow` (11 s for the
cheapest, the ImageNet pipeline at 32 x 32 with WRN-10-1, on the 2-core CPU): the fast suite
checks each part on its own (the crop in tests/test_data_augment.py, the timm string in
tests/test_policy_timm.py, the mixing in the trainer and every method's soft labels in
tests/test_mixup_training.py) and validates every recipe config (tests/test_configs.py)."""

import os

import numpy as np
import pytest
from PIL import Image

from jaxaug.data import synthetic

from jaxaug.train import train
from jaxaug.train.config import load_config_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {  # (config file, argument) -> image size
    ("imagenet_resnet.py", None): 224,
    ("cifar10_wrn.py", "randaugment,mixup"): 32,
    ("cifar10_wrn.py", "autoaugment,cutmix"): 32,
    ("cifar10_wrn.py", "augmix"): 32,
}


def _image_folder(root, size):
    """16 training and 8 test images of the shapes dataset (classes as they come), at size x
    size, as `<split>/<class>/<n>.png`."""
    images, labels = synthetic.generate(24, seed=0, image_size=32)
    for n, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = os.path.join(root, "train" if n < 16 else "test", synthetic.CLASS_NAMES[label])
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR).save(
            os.path.join(folder, f"{n}.png"))
    return root


def _run(tmp_path, recipe, size, model=None):
    path, arg = recipe
    config = load_config_file(os.path.join(REPO, "configs", path), arg)
    data = _image_folder(str(tmp_path / "images"), size)
    config.update_from_flattened_dict({
        "dataset": f"imagefolder:{data}", "cache_dir": str(tmp_path / "cache"), "batch_size": 4,
        "eval_batch_size": 16, "epochs": 1, "log_every_steps": 2, "checkpoint.enabled": False,
        "optimizer.warmup_epochs": 0.0})
    if model is not None:
        config.model = model
    return config, train(config, str(tmp_path / "run"))


@pytest.mark.slow
def test_the_imagenet_recipe_trains(tmp_path):
    config, summary = _run(tmp_path, ("imagenet_resnet.py", None), 32, model="wrn-10-1")
    assert config.augment.crop == "random_resized" and config.augment.mixup.cutmix_alpha == 1.0
    assert summary["step"] == 4 and summary["nonfinite_steps"] == 0
    assert np.isfinite(summary["last_test_accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("recipe", list(RECIPES), ids=[f"{p}:{a}" for p, a in RECIPES])
def test_each_recipe_trains_with_its_own_network(tmp_path, recipe):
    _, summary = _run(tmp_path, recipe, RECIPES[recipe])
    assert summary["step"] == 4 and summary["nonfinite_steps"] == 0
