"""The REINFORCE policy learners end to end through the trainer (slow: one compile each): a run
of two epochs on synthetic shapes logs each method's own metrics, and Adversarial AutoAugment's
controller window follows the epoch length the loop passes in, as do AdaTransform's closing
clean epochs; AdaCutout transforms about 30% of the target's images.

Fast counterparts, on smaller cases: each method's short run of its own jitted step in
test_adv_autoaugment.py, test_adatransform.py and test_tanda.py (metrics finite, nothing
skipped, the controller updating at its window's end; AdaTransform's stop and mixing mask);
test_configs.py's test_adatransform_gets_the_thesis_settings (the stop step from the epochs);
test_online_augment_devices.py, which builds adv_autoaugment from the config through
`methods.create` and `compile_steps` as the trainer does; and test_robustness.py, which runs
another method through `train_and_evaluate`."""

import json
import os

import numpy as np
import pytest
from test_train import saved_state, tiny_config

from jaxaug.train import train_and_evaluate

pytestmark = pytest.mark.slow

# A ResNet-18 T of width 4 with K = 2: the thesis's architecture, small enough to compile.
_ADA = {"adatransform.transformer_width": 4, "adatransform.num_steps": 2}
RUNS = {  # run -> (config overrides, metrics the method must log)
    "adv_autoaugment": ({"adv_autoaugment.num_policies": 2},
                        ("controller_entropy", "policy_loss_spread")),
    "adatransform": ({"method": "adatransform", "adatransform.stop_epochs": 1, **_ADA},
                     ("d_loss", "reward", "augmented")),
    "adacutout": ({"method": "adatransform", "adatransform.mode": "cutout", **_ADA},
                  ("d_loss", "reward", "augmented")),
    "tanda": ({"tanda.warmup_steps": 5, "tanda.generator": "mean_field"},
              ("d_loss", "generator_entropy", "augmented")),
}


@pytest.mark.parametrize("run", RUNS)
def test_trains_from_the_config(run, tmp_path):
    overrides, names = RUNS[run]
    method = overrides.get("method", run)
    config = tiny_config(**{"method": method, "reduced": 100, **overrides})  # 5 steps of 20 / epoch
    summary = train_and_evaluate(config, str(tmp_path))
    assert summary["epochs_completed"] == 2 and summary["step"] == 10
    assert 0.0 <= summary["last_test_accuracy"] <= 1.0
    with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    trains = [r for r in records if r["split"] == "train"]
    assert trains and all(np.isfinite(r[n]) for r in trains for n in names + ("loss",))
    assert all(r["skipped"] == 0 for r in trains)
    if run == "adatransform":  # logged every 5 steps = per epoch; the last epoch trains clean
        assert [r["augmented"] for r in trains] == [1.0, 0.0]
    if run == "adacutout":  # 200 Bernoulli(0.3) draws: within 4 sigma = 0.13
        assert abs(np.mean([r["augmented"] for r in trains]) - 0.3) < 0.13
    if method == "adv_autoaugment":
        # update_every 0 = one epoch = 5 steps: two controller updates, each resampling.
        _, state = saved_state(str(tmp_path))
        np.testing.assert_array_equal(state["controller"]["rewards"]["count"], [5, 5])
