"""Cost of adversarial pose augmentation (ASR + AHO) against the plain pose step, same run.

  python bench/pose_adversary_cost.py [--model=cunet] [--image_size=64] [--batch=30] [--steps=5]

Times the jitted steps of `jaxaug.methods.adversarial_pose` on one batch of synthetic figures:
"pose" (random augmentation only: heatmap_regression's step), "joint" (the ASR | AHO | random
thirds, G's features, the reward forward pass and both updates) and "pretrain" (G against the
targets from all 7 x 9 bin-centre pairs on the frozen pose network). On top of the pose step's
forward and backward pass over B images, the joint step runs evaluation-mode forward passes over
2B/3 un-augmented images (G's input) and 4B/3 images (the adversarial thirds and their random
references), so its floor is about 1 + 2/3 forward-pass-equivalents of a training step (a training
step costing ~3 forward passes): ~1.7x. The pretrain step runs 63 forward passes over B images.
"""

import types

import jax
import jax.numpy as jnp
from absl import app, flags
from timing import seconds_per_step

from jaxaug import models
from jaxaug.data import keypoint_synthetic
from jaxaug.generators import PoseAdversary
from jaxaug.methods.adversarial_pose import adversarial_pose
from jaxaug.methods.pose import torch_rmsprop
from jaxaug.train.config import keypoints_config

_MODEL = flags.DEFINE_enum("model", "cunet", ["cunet", "hourglass"], "Pose network (the "
                           "CPU-sized sections of jaxaug.train.keypoints_config).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Square input size.")
_BATCH = flags.DEFINE_integer("batch", 30, "Batch size (a multiple of 3).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per variant (median kept).")
_PRETRAIN = flags.DEFINE_bool("pretrain", True, "Also time the pre-training step.")


def main(argv):
    del argv
    size, batch_size = _IMAGE_SIZE.value, _BATCH.value
    data = keypoint_synthetic.load("train", num=batch_size, size=size)
    batch = {"image": jnp.asarray(data.images), "joints": jnp.asarray(data.joints),
             "visible": jnp.asarray(data.visible)}
    config = keypoints_config()
    model = models.create_pose_model(_MODEL.value, 16, **config[_MODEL.value])
    o, a = config.optimizer, config.adversarial

    def rmsprop(lr):  # the optimizer training uses (torch's RMSProp), at the config's rates
        return torch_rmsprop(lr, o.decay, o.eps)

    method = adversarial_pose(
        model, rmsprop(o.lr), PoseAdversary(width=a.width),
        image_shape=(size, size, 3), flip_pairs=data.flip_pairs,
        adversary_optimizer=rmsprop(a.lr), pretrain_optimizer=rmsprop(a.pretrain_lr))
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}); {_MODEL.value} "
          f"{dict(config[_MODEL.value])}, {size}x{size}, batch {batch_size}, median of "
          f"{_STEPS.value} steps")
    stages = ["pose", "joint"] + (["pretrain"] if _PRETRAIN.value else [])
    times = {}
    for stage in stages:
        staged = types.SimpleNamespace(init=method.init, step=method.steps[stage])
        times[stage] = seconds_per_step(staged, batch, _STEPS.value)
        print(f"{stage:<10} {times[stage] * 1e3:10.1f} ms   {times[stage] / times['pose']:6.2f}x "
              "the pose step")
    fields = [f"device={device.platform}", f"model={_MODEL.value}", f"batch={batch_size}"]
    fields += [f"{stage}_over_pose={times[stage] / times['pose']:.3f}" for stage in stages[1:]]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
