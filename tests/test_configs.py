"""Configs load and validate; the slow tests run the README's real commands end to end."""

import glob
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from jaxaug.train import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR_ZIP = os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg.zip")
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def load_config(path, *args):
    spec = importlib.util.spec_from_file_location("config_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_config_is_valid(path):
    config = load_config(path)
    validate(config, device_count=1)
    validate(config, device_count=8)  # the same config shards over 8 devices


@pytest.mark.parametrize("arg,policy", [
    ("autoaugment", "autoaugment_cifar10"), ("randaugment", "randaugment"),
    ("trivialaugment", "trivial_augment_wide"), ("baseline", ""),
])
def test_cifar10_wrn_policy_variants(arg, policy):
    config = load_config(os.path.join(REPO, "configs", "cifar10_wrn.py"), arg)
    validate(config, device_count=8)
    assert config.augment.policy == policy and config.augment.cutout == 16
    assert (config.augment.num_ops, config.augment.magnitude) == (2, 9)
    with pytest.raises(ValueError, match="autoaugmnet"):
        load_config(os.path.join(REPO, "configs", "cifar10_wrn.py"), "autoaugmnet")


def test_cifar10_wrn_config_follows_the_papers():
    config = load_config(os.path.join(REPO, "configs", "cifar10_wrn.py"))
    assert (config.model, config.epochs, config.batch_size) == ("wrn-28-10", 200, 128)
    assert (config.optimizer.lr, config.optimizer.momentum, config.optimizer.weight_decay) == (0.1, 0.9, 5e-4)
    assert config.optimizer.nesterov and config.augment.cutout == 16


def run_train(args, workdir, timeout):
    result = subprocess.run(
        [sys.executable, "train.py", *args, f"--workdir={workdir}"],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f), result.stdout


@pytest.mark.slow
def test_demo_learns_the_synthetic_shapes(tmp_path):
    summary, stdout = run_train(["--config=configs/quickstart.py"], str(tmp_path), timeout=600)
    assert "test accuracy" in stdout
    assert os.path.exists(tmp_path / "train_images.png")
    assert summary["last_test_accuracy"] > 0.5, summary


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CIFAR_ZIP), reason=f"{CIFAR_ZIP} is absent")
def test_one_epoch_of_reduced_cifar10_from_the_zip(tmp_path):
    summary, _ = run_train(
        [
            "--config=configs/cifar10_wrn.py",
            "--config.dataset=imagefolder:../shared/data/cifar10-jpeg.zip",
            "--config.reduced=4000",
            "--config.model=wrn-16-2",
            "--config.epochs=1",
            f"--config.cache_dir={tmp_path / 'cache'}",
        ],
        str(tmp_path / "run"),
        timeout=1800,
    )
    assert summary["epochs_completed"] == 1
    assert summary["last_test_accuracy"] > 0.15, summary  # one epoch of 4000 images; chance is 0.1
