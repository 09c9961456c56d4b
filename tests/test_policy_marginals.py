"""What a trained policy learner samples (`jaxaug.eval.policy_marginals`): the distribution
summary against its closed form, the controller's pooled op and magnitude frequencies against a
second counting of the same samples, and a run recorded by an older commit loading on this code
(`recorded_config`)."""

import json
import math

import jax
import numpy as np
import pytest

from jaxaug.eval import policy_marginals as pm
from jaxaug.methods import adv_autoaugment as aaa
from jaxaug.policies import PolicyController
from jaxaug.train.config import base_config, recorded_config

pytestmark = pytest.mark.usefixtures("unoptimized_xla")


def test_summary_is_the_entropy_and_kl_from_uniform_of_the_distribution():
    d = pm.summarize(["a", "b", "c", "d"], [0.5, 0.25, 0.125, 0.125])
    assert d["entropy"] == pytest.approx(1.75 * math.log(2))
    assert d["kl_uniform"] == pytest.approx(math.log(4) - 1.75 * math.log(2))
    assert d["top"][:2] == [("a", 0.5), ("b", 0.25)]
    assert pm.summarize(["x", "y"], [0.5, 0.5])["kl_uniform"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="distribution over 3 choices"):
        pm.summarize(["a", "b", "c"], [0.5, 0.5])


def test_controller_marginals_pool_the_op_and_the_magnitude_positions():
    """Two sub-policies of 2 ops on a small controller: positions 0, 2, 4, 6 are op types (16),
    1, 3, 5, 7 magnitudes (10), counted again here from the same key's samples."""
    controller = PolicyController(choice_sizes=(16, 10), num_choices=8, hidden=8, embedding=4)
    key = jax.random.key(3)
    params = jax.eval_shape(lambda k: controller.init(jax.random.key(0), k, 2), key)
    params = jax.tree.map(lambda p: np.random.default_rng(0).normal(size=p.shape), params)

    @jax.jit  # one program for both: compiling, not running, is this test's cost
    def both(params):
        marginals = aaa.controller_marginals(params, key, 64, sub_policies=2, hidden=8,
                                             embedding=4)
        return marginals, controller.apply(params, key, 64)[0]

    (ops, magnitudes), actions = both(params)
    actions = np.asarray(actions)
    assert ops.shape == (16,) and magnitudes.shape == (10,)
    np.testing.assert_allclose(ops, np.bincount(actions[:, 0::2].ravel(), minlength=16) / 256)
    np.testing.assert_allclose(magnitudes,
                               np.bincount(actions[:, 1::2].ravel(), minlength=10) / 256)


def test_a_config_recorded_before_a_field_existed_loads_with_its_default():
    recorded = json.loads(base_config().to_json())
    del recorded["data"]  # config.data arrived after some of the evidence runs' commits
    recorded["augment"]["cutout"] = 16
    config = recorded_config(recorded)
    assert config.data.stream == base_config().data.stream and config.augment.cutout == 16
    keypoints = json.loads(base_config("keypoints").to_json())
    del keypoints["cunet"]["initialization"]
    assert recorded_config(keypoints).cunet.initialization == "kaiming"


def test_a_run_of_another_method_is_refused_before_its_data_is_loaded(tmp_path):
    (tmp_path / "config.json").write_text(base_config().to_json())  # method "supervised"
    with pytest.raises(ValueError, match="is a 'supervised' run; this tool reads the policies "
                                         "of adv_autoaugment, tanda runs"):
        pm.policy_marginals(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        pm.policy_marginals(str(tmp_path / "nowhere"))
