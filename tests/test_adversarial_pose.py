"""Adversarial pose augmentation (ASR + AHO): keypoints follow the sampled warps, each stage's step
updates only its networks, pre-training fits the bin-loss and joint-histogram targets, and a short
joint run moves G towards the bins where the pose loss is higher."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxaug import models
from jaxaug.data import keypoint_synthetic, keypoints
from jaxaug.generators import PoseAdversary, bin_centres, sample_binned
from jaxaug.methods.adversarial_pose import adversarial_pose
from jaxaug.methods.pose import heatmap_size, warped_inputs
from jaxaug.objectives import (
    aho_pretraining_target,
    asr_pretraining_targets,
    heatmap_loss_per_example,
    kl_to_target,
)

SIZE = 32
TINY_CUNET = {"num_unets": 1, "order": 0, "depth": 1, "features": 8, "growth": 4, "stem_stride": 2}
NORM = models.Normalization(0.5, 0.25)


pytestmark = pytest.mark.usefixtures("unoptimized_xla")


@pytest.fixture(scope="module")
def setup():
    data = keypoint_synthetic.load("train", num=96, size=SIZE)
    model = models.Normalized(models.create_pose_model("cunet", 16, **TINY_CUNET), NORM)
    adversary = PoseAdversary(width=8)
    # inject_hyperparams: the shift test freezes the pose network by setting its rate to 0.
    common = {"image_shape": (SIZE, SIZE, 3), "flip_pairs": data.flip_pairs, "adversary_optimizer": optax.adam(1e-2),
              "pretrain_optimizer": optax.adam(1e-2)}
    pose_optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=3e-3)
    # "upright" trains the pose network without augmentation, so that warped images are harder;
    # "standard" is the method with the standard ranges (scale 0.75-1.25, +-30 degrees).
    upright = adversarial_pose(model, pose_optimizer, adversary, scale_range=(1.0, 1.0),
                               max_rotation=0.0, flip_prob=0.0, **common)
    standard = adversarial_pose(model, pose_optimizer, adversary, **common)
    arrays = {"image": jnp.asarray(data.images), "joints": jnp.asarray(data.joints),
              "visible": jnp.asarray(data.visible)}
    out = heatmap_size(model, (SIZE, SIZE, 3))

    @jax.jit
    def bin_loss(pose, batch, scale, degrees):
        """The pose loss per visible joint of every image, all warped by (scale, degrees)."""
        n = batch["image"].shape[0]
        inputs = warped_inputs(batch["image"].astype(jnp.float32) / 255.0, batch["joints"],
                               batch["visible"], jnp.full(n, scale), jnp.full(n, degrees),
                               jnp.zeros(n, bool), out_size=out, sigma=1.0,
                               flip_pairs=data.flip_pairs)
        heatmaps = model.apply(_variables(pose), inputs["image"], train=False)
        return heatmap_loss_per_example(heatmaps, inputs["heatmap"], inputs["visible"])

    @functools.partial(jax.jit, static_argnums=2)
    def adversary_logits(state, images, train):
        """G's logits of uint8 images, from the pose network's features (evaluation mode)."""
        images01 = images.astype(jnp.float32) / 255.0
        features = model.apply(_variables(state.pose), images01, train=False,
                               return_features=True)[1]
        logits = adversary.apply(_variables(state.adversary), features, train=train,
                                 mutable=["batch_stats"] if train else False)
        return logits[0] if train else logits

    return {"data": data, "model": model, "arrays": arrays, "bin_loss": bin_loss,
            "adversary_logits": adversary_logits, "init": jax.jit(standard.init),
            "pose_step": jax.jit(upright.steps["pose"]),
            "pretrain_step": jax.jit(standard.steps["pretrain"]),
            "joint_step": jax.jit(standard.steps["joint"])}


def _batch(arrays, seed, size=24):
    index = np.random.default_rng(seed).choice(len(arrays["image"]), size, replace=False)
    return {k: v[index] for k, v in arrays.items()}


def _variables(network):
    return {"params": network.params, "batch_stats": network.batch_stats}


def _bin_losses(setup, state, batch):
    """[m, n, N]: the pose loss per visible joint of every image at every bin-centre pair, by
    warping each pair separately (a second implementation of the pre-training's sweep)."""
    return np.array([[setup["bin_loss"](state.pose, batch, s, r)
                      for r in bin_centres(-30.0, 30.0, 9)] for s in bin_centres(0.75, 1.25, 7)])


def test_keypoints_and_heatmaps_move_with_the_image_under_sampled_scale_and_rotation(setup):
    """Draw scales and rotations from G-style bins, warp images whose three channels are blobs at
    three joints: each blob's peak lands on its moved joint, and so does the target heatmap's."""
    data = setup["data"]
    n, chosen = 8, np.array([0, 9, 14])  # head top, right wrist, left elbow
    yy, xx = np.mgrid[:SIZE, :SIZE]
    joints = data.joints[:n]
    jx, jy = (joints[:, chosen, k][:, None, None, :] for k in (0, 1))
    blobs = np.exp(-((xx[None, ..., None] - jx) ** 2 + (yy[None, ..., None] - jy) ** 2) / 8.0)
    assert blobs.shape == (n, SIZE, SIZE, 3)
    out = heatmap_size(setup["model"], (SIZE, SIZE, 3))

    @jax.jit  # one program, not every op compiled on its own
    def warp(blobs, joints, visible):
        logits = jax.random.normal(jax.random.key(3), (2, n, 9))
        _, scales = sample_binned(jax.random.key(4), logits[0, :, :7], 0.75, 1.25)
        _, degrees = sample_binned(jax.random.key(5), logits[1], -30.0, 30.0)
        inputs = warped_inputs(blobs, joints, visible, scales, degrees, jnp.zeros(n, bool),
                               out_size=out, sigma=1.0, flip_pairs=data.flip_pairs)
        return (inputs, keypoints.decode_heatmaps(inputs["image"])[0],
                keypoints.decode_heatmaps(inputs["heatmap"])[0])

    inputs, peaks, targets = warp(jnp.asarray(blobs, jnp.float32), joints, data.visible[:n])
    moved, visible = np.asarray(inputs["joints"]), np.asarray(inputs["visible"])
    inner = visible[:, chosen] & np.all((moved[:, chosen] > 3) & (moved[:, chosen] < SIZE - 4), -1)
    assert inner.sum() >= 12
    np.testing.assert_allclose(np.asarray(peaks)[inner], moved[:, chosen][inner], atol=0.2)
    expected = keypoints.to_heatmap_coords(moved, (SIZE, SIZE), out)
    inside = visible & np.all((np.asarray(expected) > 1) & (np.asarray(expected) < out[0] - 2), -1)
    np.testing.assert_allclose(np.asarray(targets)[inside], np.asarray(expected)[inside],
                               atol=1e-3)


def test_each_stage_updates_only_its_networks(setup):
    state = setup["init"](jax.random.key(0), None)
    batch = _batch(setup["arrays"], 0)

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    after_pose, _ = setup["pose_step"](state, batch, jax.random.key(1))
    assert same(after_pose.adversary, state.adversary)
    assert not same(after_pose.pose.params, state.pose.params)
    after_pretrain, _ = setup["pretrain_step"](after_pose, batch, jax.random.key(2))
    assert same(after_pretrain.pose, after_pose.pose)  # params, BatchNorm statistics, optimizer
    assert not same(after_pretrain.adversary.params, after_pose.adversary.params)
    after_joint, metrics = setup["joint_step"](after_pretrain, batch, jax.random.key(3))
    assert not same(after_joint.pose.params, after_pretrain.pose.params)
    assert not same(after_joint.adversary.params, after_pretrain.adversary.params)
    assert [int(s.step) for s in (after_pose, after_pretrain, after_joint)] == [1, 2, 3]
    assert set(metrics) >= {"loss", "adversary_loss", "asr_reward_rate", "aho_reward_rate"}


def test_pretraining_fits_the_bin_loss_and_joint_histogram_targets(setup):
    """The pre-training step's KL terms equal KL(target || G) computed here from a separate sweep
    over the 7 x 9 bin-centre pairs and the joints' grid histogram."""
    state = setup["init"](jax.random.key(0), None)
    for i in range(20):  # a pose network whose losses differ between bins
        state, _ = setup["pose_step"](state, _batch(setup["arrays"], i), jax.random.key(i))
    batch = _batch(setup["arrays"], 100)
    logits = setup["adversary_logits"](state, batch["image"], True)
    kl_scale, kl_rotation, kl_occlusion = _kl_to_targets(
        _bin_losses(setup, state, batch), batch["joints"], batch["visible"], logits)
    _, metrics = setup["pretrain_step"](state, batch, jax.random.key(0))
    np.testing.assert_allclose(metrics["kl_scale"], kl_scale, rtol=1e-4)
    np.testing.assert_allclose(metrics["kl_rotation"], kl_rotation, rtol=1e-4)
    np.testing.assert_allclose(metrics["kl_occlusion"], kl_occlusion, rtol=1e-4)


@jax.jit
def _kl_to_targets(bin_losses, joints, visible, logits):
    """KL(target || G) of the scale, rotation and occlusion logits, the targets made from the bin
    losses [m, n, N] and the joints' grid histogram."""
    scale_target, rotation_target = asr_pretraining_targets(jnp.moveaxis(bin_losses, -1, 0))
    occlusion_target = aho_pretraining_target(joints, visible, (SIZE, SIZE))
    n = joints.shape[0]
    return (kl_to_target(scale_target, logits["scale"]),
            kl_to_target(rotation_target, logits["rotation"]),
            kl_to_target(occlusion_target.reshape(n, -1), logits["occlusion"].reshape(n, -1)))


def test_short_adversarial_run_moves_g_towards_the_high_loss_bins(setup):
    """A pose network trained on upright, unscaled figures finds warped ones harder. With it
    frozen, 100 joint steps (reward/penalty against the standard random augmentation) must raise
    the loss expected under G's scale and rotation distributions, measured on held-out images."""
    arrays = setup["arrays"]
    state = setup["init"](jax.random.key(0), None)
    for i in range(100):
        state, _ = setup["pose_step"](state, _batch(arrays, i), jax.random.key(i))
    held_out = {k: v[72:] for k, v in arrays.items()}
    losses = _bin_losses(setup, state, held_out).mean(-1)  # [7 scales, 9 rotations]
    scale_loss, rotation_loss = losses.mean(1), losses.mean(0)

    def expected_losses(state):
        logits = setup["adversary_logits"](state, held_out["image"], False)
        return (float(jnp.mean(jax.nn.softmax(logits["scale"]), 0) @ scale_loss),
                float(jnp.mean(jax.nn.softmax(logits["rotation"]), 0) @ rotation_loss))

    before = expected_losses(state)
    hyperparams = state.pose.opt_state.hyperparams
    frozen = state.pose.opt_state._replace(
        hyperparams={**hyperparams, "learning_rate": jnp.zeros(())})
    state = state.replace(pose=state.pose.replace(opt_state=frozen))
    train = {k: v[:72] for k, v in arrays.items()}
    for i in range(100):
        state, _ = setup["joint_step"](state, _batch(train, 1000 + i), jax.random.key(1000 + i))
    after = expected_losses(state)
    # Rotation matters most to an upright-trained network: its loss grows with |angle|.
    assert rotation_loss[[0, -1]].mean() > 1.1 * rotation_loss[4]
    for b, a, bins in zip(before, after, (scale_loss, rotation_loss)):
        assert a > b + 0.2 * (bins.max() - b), (before, after, scale_loss, rotation_loss)


# Slow (20 s): the joint step's updates run fast on the CU-Net in the tests above, and the dense
# hourglass's features and gradients in tests/test_hourglass_dense.py.
@pytest.mark.slow
def test_joint_step_trains_a_dense_stacked_hourglass(setup):
    """The target can be the stacked hourglass too (here with dense modules): G reads its first
    stack's skip and bridge features and one joint step updates both networks with finite
    values."""
    data = setup["data"]
    model = models.Normalized(models.create_pose_model(
        "hourglass", 16, num_stacks=2, depth=1, features=8, stem_stride=2, block="dense",
        growth=4), NORM)
    method = adversarial_pose(
        model, optax.adam(1e-3), PoseAdversary(width=8), image_shape=(SIZE, SIZE, 3),
        flip_pairs=data.flip_pairs, adversary_optimizer=optax.adam(1e-3),
        pretrain_optimizer=optax.adam(1e-3))
    state = jax.jit(method.init)(jax.random.key(0), None)
    new, metrics = jax.jit(method.steps["joint"])(state, _batch(setup["arrays"], 0, size=12),
                                                  jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    for old, updated in ((state.pose.params, new.pose.params),
                         (state.adversary.params, new.adversary.params)):
        assert any(not np.array_equal(a, b) for a, b in
                   zip(jax.tree.leaves(old), jax.tree.leaves(updated)))
