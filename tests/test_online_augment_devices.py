"""One step of a joint method on 8 simulated CPU devices equals the 1-device one: OnlineAugment
(A-STN, meta on) and Adversarial AutoAugment (whose copies, Sample Pairing partners and
per-policy losses cross the batch's shards; its controller updates in this step). Both run in one
subprocess (the device count is fixed at start-up), with a one-layer target whose BatchNorm
honours `bn_set` (tests/tiny_models.py) on 16x16 images, batch 16: two images per device, one
meta (x_tr, x_val) pair each; the sharding, not the network's size, is what is tested.

inner_num is 1: after a first inner update the generators already differ (see the last assertion),
so a second update's loss would differ through them, not through the sharding."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, sys, jax, numpy as np
sys.path.insert(0, "tests")
from tiny_models import TinyMultiBNNet
from jaxaug import data, methods, models
from jaxaug.train import base_config, batch_sharding, make_mesh, make_optimizer
from jaxaug.train.steps import compile_steps

dataset = data.load_dataset("synthetic", image_size=16, reduced=320)
batch = next(data.epoch_batches(dataset.train, 16, seed=0, epoch=0))
config = base_config()
config.online_augment.meta = True
config.adv_autoaugment.num_policies, config.adv_autoaugment.update_every = 2, 1
config.num_bn_sets = 2

def max_diff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))

def one_step(method, mesh):
    steps = compile_steps(method, dataset, config, mesh)
    with jax.threefry_partitionable(False):  # compiles faster; only the initial values differ
        initial = jax.device_get(steps.init(jax.random.key(0)))
    state = jax.device_put(initial, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    state, metrics = steps.train_step(state, jax.device_put(batch, batch_sharding(mesh)))
    return initial, jax.device_get(state), jax.device_get(metrics)

def report(name):
    model = TinyMultiBNNet(num_classes=dataset.num_classes, num_bn_sets=2)
    config.method = name
    method = methods.create(methods.Context(
        model=model, optimizer=make_optimizer(config, 10), lr_schedule=lambda step: 0.1,
        steps_per_epoch=10, num_classes=dataset.num_classes,
        normalization=models.Normalization(dataset.mean, dataset.std), config=config,
        device_count=jax.device_count()))
    initial, eight, eight_metrics = one_step(method, make_mesh())
    _, one, one_metrics = one_step(method, make_mesh(jax.devices()[:1]))
    return {
        "target_moved": max_diff(initial.target.params, eight.target.params),
        "target_diff": max_diff(eight.target.params, one.target.params),
        "stats_diff": max_diff(eight.target.batch_stats, one.target.batch_stats),
        "others_diff": max_diff(eight.replace(target=None), one.replace(target=None)),
        "metrics": {k: [float(eight_metrics[k]), float(one_metrics[k])] for k in eight_metrics},
    }

print(json.dumps({"devices": jax.device_count(),
                  **{name: report(name) for name in ("online_augment", "adv_autoaugment")}}))
"""


@pytest.fixture(scope="module")
def reports():
    """Both methods' reports from one subprocess with 8 simulated devices."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # as the unoptimized_xla fixture does
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    assert reports["devices"] == 8
    return reports


@pytest.mark.parametrize("method", ["online_augment", "adv_autoaugment"])
def test_step_on_eight_devices_equals_one_device(reports, method):
    report = reports[method]
    for name, (eight, one) in report["metrics"].items():
        np.testing.assert_allclose(eight, one, rtol=1e-5, atol=1e-6, err_msg=name)
    assert report["target_moved"] > 1e-3, report
    if method == "online_augment":
        assert report["metrics"]["meta"][0] > 0, report
    # As for the supervised step (tests/test_train.py): equal up to float32 reassociation.
    assert report["target_diff"] < 1e-4 and report["stats_diff"] < 1e-5, report
    # Adam's first step is lr * g' / (|g'| + eps), g' = g + 1e-4 p the gradient with the generators'
    # L2 decay: where a generator gradient is at rounding level
    # (the identity-initialised A-STN's adversarial gradient is zero analytically, the two halves
    # T(x) and T^-1(x) cancelling), its sign, and so a 2 * lr = 2e-3 step, can differ. The
    # controller's Adam (lr 3.5e-4) has the same bound, and its resampled policies are equal.
    assert report["others_diff"] <= 2e-3 + 1e-6, report
