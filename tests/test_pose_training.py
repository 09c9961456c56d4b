"""Keypoint training: a quantized CU-Net learns the synthetic figures' heatmaps, the trainer's
metrics equal the objectives' PCKh / NME, and `train` runs keypoint runs, checkpoints, resumes and trains on 8
devices as on one."""

import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxaug import models, objectives
from jaxaug.data import keypoint_synthetic
from jaxaug.methods.pose import heatmap_regression, heatmap_size, pose_inputs
from jaxaug.train import keypoints_config, train
from jaxaug.train.checkpoint import Checkpointer
from jaxaug.train.task import metric_sums

# Compiling dominates on CPU, so the models are as small as the properties allow: two U-Nets for
# the learning test (its zero-prediction loss counts both outputs), one for the trainer's runs.
TINY_CUNET = {"num_unets": 2, "order": 1, "depth": 1, "features": 8, "growth": 4, "stem_stride": 2}


pytestmark = pytest.mark.usefixtures("unoptimized_xla")


def test_quantized_cunet_learns_below_the_all_zero_prediction():
    """818 as the thesis defines it (8-bit features on [-1, 1], binary weights, stochastically
    rounded 8-bit weight gradients, BN gamma ~ U(0, 1)): on a fixed batch of figures the loss must
    fall below that of predicting empty heatmaps (the heads start there)."""
    data = keypoint_synthetic.load("train", num=16, size=32)
    model = models.Normalized(models.create_pose_model("cunet", 16, quant="818", **TINY_CUNET),
                              models.Normalization(0.5, 0.25))
    method = heatmap_regression(model, optax.adam(3e-3), image_shape=(32, 32, 3),
                                flip_pairs=data.flip_pairs, scale_range=(1.0, 1.0),
                                max_rotation=0.0, flip_prob=0.0)
    batch = {"image": data.images, "joints": data.joints, "visible": data.visible}

    @jax.jit
    def zero_prediction_loss(batch):  # of both U-Nets' outputs
        inputs = pose_inputs(None, batch, sigma=1.0, augment=False,
                             out_size=heatmap_size(model, (32, 32, 3)), flip_pairs=data.flip_pairs)
        return 2 * objectives.heatmap_mse(jnp.zeros_like(inputs["heatmap"]), inputs["heatmap"],
                                          inputs["visible"])

    zero_loss = float(zero_prediction_loss(batch))
    state = jax.jit(method.init)(jax.random.key(0), None)
    step = jax.jit(method.step)
    losses = []
    for i in range(60):
        state, metrics = step(state, batch, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    assert losses[0] == pytest.approx(zero_loss, rel=1e-5)
    assert np.mean(losses[-5:]) < 0.85 * zero_loss, (zero_loss, losses[::10])


def test_metric_sums_equal_pckh_and_nme_with_padding_masked():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 32, (6, 5, 2)).astype(np.float32)
    pred = gt + rng.normal(0, 3, gt.shape).astype(np.float32)
    visible = rng.random((6, 5)) > 0.3
    norm = rng.uniform(4, 8, 6).astype(np.float32)
    mask = np.asarray([1, 1, 1, 1, 0, 0], np.float32)  # the last two are padding
    sums = metric_sums(pred, gt, visible, norm, mask, "pckh", 0.5)
    want, _ = objectives.pckh(pred[:4], gt[:4], visible[:4], norm[:4], 0.5)
    assert float(sums["value"] / sums["count"]) == pytest.approx(float(want), abs=1e-6)
    sums = metric_sums(pred, gt, visible, norm, mask, "nme", 0.5)
    per_image = np.linalg.norm(pred - gt, axis=-1).mean(-1) / norm
    assert float(sums["value"] / sums["count"]) == pytest.approx(per_image[:4].mean(), rel=1e-5)


def test_pckh_pools_mpii_14_joints_without_pelvis_and_thorax():
    """MPII's reported PCKh leaves out pelvis (6) and thorax (7): a prediction right only there
    scores 0 (pooling all 16 joints gave 2 / 16), and one wrong only there scores 1. The
    synthetic figures share MPII's layout and score the same joints; LSP's PCK keeps all 14."""
    data = keypoint_synthetic.load("test", num=2, size=32)
    assert data.metric_joints == objectives.MPII_PCKH_JOINTS
    gt = data.joints
    visible = np.ones(gt.shape[:2], bool)
    norm, mask = np.full(2, 2.0, np.float32), np.ones(2, np.float32)
    far = gt + 100.0
    only_torso = far.copy()
    only_torso[:, (6, 7)] = gt[:, (6, 7)]
    sums = metric_sums(only_torso, gt, visible, norm, mask, "pckh", 0.5, data.metric_joints)
    assert float(sums["value"]) == 0.0 and float(sums["count"]) == 2 * 14
    everything_else = gt.copy()
    everything_else[:, (6, 7)] = far[:, (6, 7)]
    sums = metric_sums(everything_else, gt, visible, norm, mask, "pckh", 0.5, data.metric_joints)
    assert float(sums["value"] / sums["count"]) == 1.0
    lsp = keypoint_synthetic.KeypointData(
        np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 14, 2)), np.ones((1, 14), bool),
        np.ones(1), "torso", tuple(f"j{i}" for i in range(14)), ())
    assert lsp.metric_joints == tuple(range(14))


def _tiny_config(epochs, quant="616"):
    c = keypoints_config()
    c.quant = quant
    c.cunet.update({**TINY_CUNET, "num_unets": 1, "order": 0})
    c.image_size, c.train_size, c.test_size = 32, 64, 40
    c.batch_size, c.eval_batch_size, c.epochs, c.log_every_steps = 16, 32, epochs, 2
    return c


def _val_config(epochs):
    c = _tiny_config(epochs)
    c.val_size = 16  # of the 64 training figures: 48 left, 3 steps an epoch
    return c


def test_train_pose_trains_evaluates_and_resumes_exactly(tmp_path):
    """Two epochs uninterrupted, and the same run stopped by SIGTERM at step 3 and resumed, log
    the same losses and end with the same test PCKh. The best epoch is chosen on the validation
    split held out of the training set."""
    plain = train(_val_config(2), str(tmp_path / "plain"))
    assert plain["metric"] == "pckh" and plain["step"] == 6 and not plain["interrupted"]
    assert 0.0 <= plain["last_test_pckh"] <= 1.0
    assert plain["train_images_per_s"] > 0 and not plain["diverged"]  # the one loop's figures
    evals = [json.loads(line) for line in (tmp_path / "plain" / "metrics.jsonl").read_text()
             .splitlines()]
    val = [r["pckh"] for r in evals if r["split"] == "val"]
    test = [r["pckh"] for r in evals if r["split"] == "test"]
    assert len(val) == len(test) == 2 and plain["best_val_pckh"] == max(val)
    assert plain["test_pckh_at_best_val"] == test[int(np.argmax(val))]
    # Checkpoint "best" is scored on the validation split too.
    checkpointer = Checkpointer(str(tmp_path / "plain" / "checkpoints"), keep=2)
    best = checkpointer.best_step()
    checkpointer.close()
    assert {r["step"]: r["pckh"] for r in evals if r["split"] == "val"}[best] == max(val)

    def stop_at_3(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    workdir = str(tmp_path / "resumed")
    stopped = train(_val_config(2), workdir, step_callback=stop_at_3)
    assert stopped["interrupted"] and stopped["step"] == 3
    resumed = train(_val_config(2), workdir)
    assert resumed["step"] == 6 and resumed["last_test_pckh"] == plain["last_test_pckh"]

    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        return {r["step"]: r["loss"] for r in records if r["split"] == "train"}

    records = [json.loads(line) for line in (tmp_path / "plain" / "metrics.jsonl").read_text()
               .splitlines()]
    assert {(r["learning_rate"], r["nonfinite"]) for r in records if r["split"] == "train"} == {
        (2.5e-4, 0.0)}
    after = {s: v for s, v in losses("resumed").items() if s > 3}
    assert after and after == {s: v for s, v in losses("plain").items() if s > 4}
    with pytest.raises(ValueError, match="different config .*epochs"):
        train(_val_config(3), workdir)


def test_adversarial_pose_runs_its_three_stages_and_resumes_across_them(tmp_path):
    """adversarial_pose with one epoch per stage (pose, pretrain, joint): pre-training leaves the
    pose network, hence the test PCKh, exactly unchanged; a run stopped by SIGTERM inside the
    pre-training stage and resumed ends as the uninterrupted one."""
    def config():
        c = _tiny_config(3, "fp")
        c.method, c.train_size, c.test_size, c.batch_size = "adversarial_pose", 24, 12, 12
        c.adversarial.update({"pose_epochs": 1, "pretrain_epochs": 1, "width": 8})
        return c

    plain = train(config(), str(tmp_path / "plain"))
    assert plain["step"] == 6 and plain["method"] == "adversarial_pose"
    records = [json.loads(line) for line in
               (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()]
    tests = [r["pckh"] for r in records if r["split"] == "test"]
    assert len(tests) == 3 and tests[0] == tests[1] and tests[0] > 0  # > 0: a real comparison
    trains = [r for r in records if r["split"] == "train"]
    assert "adversary_loss" in trains[1] and "loss" not in trains[1]  # pre-training
    assert {"loss", "adversary_loss", "asr_reward_rate"} <= set(trains[-1])  # joint

    def stop_at_3(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    workdir = str(tmp_path / "resumed")
    assert train(config(), workdir, step_callback=stop_at_3)["step"] == 3
    resumed = train(config(), workdir)
    assert resumed["step"] == 6 and resumed["last_test_pckh"] == plain["last_test_pckh"]


def test_pose_config_errors_name_the_field():
    c = keypoints_config()
    c.quant = "717"
    with pytest.raises(ValueError, match="config.quant='717'"):
        train(c, "/nonexistent/never-created")
    c = keypoints_config()
    c.val_size = -1
    with pytest.raises(ValueError, match="config.val_size=-1"):
        train(c, "/nonexistent/never-created")
    from jaxaug.train.task import hold_out
    arrays = {"image": np.arange(4), "joints": np.arange(4) * 10}
    with pytest.raises(ValueError, match=r"config.val_size=4: must be in \[1, 3\]"):
        hold_out(arrays, 4, 0)
    rest, held = hold_out(arrays, 2, 0)
    assert sorted([*rest["image"], *held["image"]]) == [0, 1, 2, 3]
    np.testing.assert_array_equal(held["joints"], held["image"] * 10)
    c = keypoints_config()
    c.dataset = "coco:/x"
    with pytest.raises(ValueError, match="unknown keypoint dataset 'coco:/x'"):
        from jaxaug.train.task import load_keypoints
        load_keypoints(c)


_RUN = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
from test_pose_training import _tiny_config
import jax
import jaxaug.train.loop as loop
from jaxaug.train import make_mesh, train

def run(method, devices):
    # train meshes every device; the 1-device run gets a mesh of the first one instead.
    mesh, used = make_mesh(jax.devices()[:devices]), []

    def own_mesh():
        used.append(mesh.size)
        return mesh

    loop.make_mesh = own_mesh
    # Full precision: quantizers round, so the sharded reductions' last-bit differences can move
    # a feature across a grid point, which is not what this test is about.
    config = _tiny_config(1, "fp")
    if method == "adversarial_pose":  # one epoch per stage; batches split in thirds of 8
        config.method, config.epochs, config.batch_size, config.train_size = method, 3, 24, 48
        config.adversarial.update({"pose_epochs": 1, "pretrain_epochs": 1, "width": 8})
    summary = train(config, f"{sys.argv[1]}/{method}-{devices}")
    return {"devices": jax.device_count(), "mesh": used, "pckh": summary["last_test_pckh"]}

print(json.dumps({d: run(sys.argv[3], d) for d in (8, 1)}))
"""


@pytest.mark.parametrize("method", [
    # Slow: the loop, the step's sharding and the batches' order across devices are the
    # classification run's (one loop), checked fast by tests/test_train.py's 8-device test.
    pytest.param("heatmap_regression", marks=pytest.mark.slow),
    pytest.param("adversarial_pose", marks=pytest.mark.slow),  # compiles three more steps twice
])
def test_train_pose_on_8_devices_equals_1_device(tmp_path, method):
    """The whole keypoint loop (sharded batches, BatchNorm over the global batch, evaluation) on 8
    simulated CPU devices logs the same losses and PCKh as on a mesh of one of them, both in one
    process; for adversarial_pose through all three stages (G's losses too).

    The adversarial_pose case is slow; its fast counterparts are the heatmap_regression case
    (the same loop and sharding) and test_adversarial_pose_runs_its_three_stages_and_resumes_
    across_them (its three stages through train on one device)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # as unoptimized_xla does here
    out = subprocess.run(
        [sys.executable, "-c", _RUN, str(tmp_path), os.path.dirname(__file__), method],
        env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    results = {}
    for devices in (8, 1):
        run = report[str(devices)]
        assert run["devices"] == 8 and run["mesh"] == [devices], run
        lines = (tmp_path / f"{method}-{devices}" / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines if '"train"' in line]
        losses = [r.get("loss", r.get("adversary_loss")) for r in records]
        results[devices] = (run["pckh"], losses)
    np.testing.assert_allclose(results[8][1], results[1][1], rtol=1e-4)
    assert abs(results[8][0] - results[1][0]) <= 0.02  # a near-tie joint may flip


def test_rmsprop_is_torchs_with_eps_outside_the_root():
    """Three steps of `torch_rmsprop` against torch.optim.RMSprop's update written out in numpy,
    on gradients small enough (v ~ 1e-12 << eps = 1e-8) that optax's default, eps under the
    root, would move the parameter about 100 times less."""

    from jaxaug.methods.pose import torch_rmsprop

    lr, alpha, eps = 2.5e-4, 0.99, 1e-8
    grads = np.array([[1e-6, -3e-6], [2e-6, 5e-7], [-1e-6, 4e-6]], np.float32)
    optimizer = torch_rmsprop(lr, alpha, eps)
    w = np.zeros(2, np.float32)
    state = optimizer.init(jnp.asarray(w))
    v, expected, steps = np.zeros(2), np.zeros(2), []
    for g in grads:
        update, state = optimizer.update(jnp.asarray(g), state)
        steps.append(np.asarray(update))
        w = w + steps[-1]
        v = alpha * v + (1 - alpha) * g.astype(np.float64) ** 2
        expected = expected - lr * g / (np.sqrt(v) + eps)
    np.testing.assert_allclose(w, expected, rtol=1e-4)
    default = optax.rmsprop(lr, decay=alpha, eps=eps)
    first, _ = default.update(jnp.asarray(grads[0]), default.init(jnp.zeros(2)))
    assert np.all(np.abs(np.asarray(first)) < np.abs(steps[0]) / 100)
