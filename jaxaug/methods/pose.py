"""Heatmap pose estimation with random scale / rotation / flip augmentation: the baseline that the
adversarial pose augmentation extends, and how CU-Net and its quantized variants are trained.

A batch holds uint8 ``image`` [B, H, W, 3], ``joints`` [B, J, 2] (x, y image pixels) and
``visible`` [B, J]. The step augments each image on the device and moves its joints with it
(`jaxaug.data.keypoints.affine_augment`), renders Gaussian heatmap targets at the network's output
resolution, and minimises `jaxaug.objectives.heatmap_objective` (the MSE summed over every
supervised output).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxaug.data import keypoints
from jaxaug.methods import registry
from jaxaug.methods.base import Method, init_target
from jaxaug.objectives import heatmap_objective


def torch_rmsprop(learning_rate, decay: float, eps: float) -> optax.GradientTransformation:
    """``torch.optim.RMSprop(lr, alpha=decay, eps)``, which the pose papers' reference code trains
    with (zhiqiangdon/CU-Net, pose-adv-aug): v <- decay v + (1 - decay) g^2 from v_0 = 0, and
    w <- w - lr g / (sqrt(v) + eps). optax's default puts eps under the root, g / sqrt(v + eps):
    where v is far below eps, as it is for most of a CU-Net's parameters, its steps are smaller by
    about sqrt(eps / v)."""
    return optax.rmsprop(learning_rate, decay=decay, eps=eps, eps_in_sqrt=False)


def heatmap_size(model: nn.Module, image_shape) -> tuple[int, int]:
    """The (H', W') of the model's heatmaps for images of ``image_shape`` (H, W, C)."""
    out = jax.eval_shape(
        lambda x: model.init_with_output(jax.random.key(0), x, train=False)[0],
        jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))
    return tuple(out.shape[-3:-1])


def pose_inputs(key, batch, *, out_size, sigma, flip_pairs, augment=True,
                scale_range=(0.75, 1.25), max_rotation=30.0, flip_prob=0.5):
    """The network's batch: (augmented) images in [0, 1], heatmap targets and visibility."""
    images = batch["image"].astype(jnp.float32) / 255.0
    joints, visible = batch["joints"], batch["visible"]
    if augment:
        keys = jax.random.split(key, images.shape[0])
        images, joints, visible = jax.vmap(functools.partial(
            keypoints.affine_augment, flip_pairs=flip_pairs, scale_range=scale_range,
            max_rotation=max_rotation, flip_prob=flip_prob))(keys, images, joints, visible)
    return _network_batch(images, joints, visible, out_size=out_size, sigma=sigma)


def random_pose_params(key, n, *, scale_range, max_rotation, flip_prob):
    """Random warps for ``n`` images as `keypoints.affine_augment` draws them: (scale
    ~ U(scale_range), degrees ~ U(-max_rotation, max_rotation), flip ~ Bernoulli(flip_prob)),
    each [n]."""
    k_scale, k_rot, k_flip = jax.random.split(key, 3)
    return (jax.random.uniform(k_scale, (n,), jnp.float32, *scale_range),
            jax.random.uniform(k_rot, (n,), jnp.float32, -max_rotation, max_rotation),
            jax.random.bernoulli(k_flip, flip_prob, (n,)))


def warped_inputs(images, joints, visible, scale, degrees, flip, *, out_size, sigma, flip_pairs):
    """The network's batch for images [N, H, W, C] in [0, 1] warped by given per-image
    ``scale``, ``degrees`` and ``flip`` [N] (`jaxaug.data.keypoints.transform_sample`: the joints
    move with the image), e.g. values an augmentation network chose."""
    images, joints, visible = jax.vmap(functools.partial(
        keypoints.transform_sample, flip_pairs=flip_pairs))(
            images, joints, visible, scale, degrees, flip)
    return _network_batch(images, joints, visible, out_size=out_size, sigma=sigma)


def _network_batch(images, joints, visible, *, out_size, sigma):
    hm_joints = keypoints.to_heatmap_coords(joints, images.shape[1:3], out_size)
    targets = keypoints.gaussian_heatmaps(hm_joints, visible, out_size, sigma)
    return {"image": images, "heatmap": targets, "visible": visible,
            "joints": joints}


def predict_joints(model, state, images, image_size):
    """Joint coordinates (x, y image pixels) and peak values from the last supervised output."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    heatmaps = model.apply(variables, images, train=False)[-1]
    coords, peaks = keypoints.decode_heatmaps(heatmaps)
    return keypoints.to_image_coords(coords, heatmaps.shape[1:3], image_size), peaks


def heatmap_regression(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    *,
    image_shape: tuple[int, int, int],
    flip_pairs,
    sigma: float = 1.0,
    scale_range: tuple[float, float] = (0.75, 1.25),
    max_rotation: float = 30.0,
    flip_prob: float = 0.5,
) -> Method:
    """Trains ``model`` (CU-Net, stacked hourglass, quantized or not) on heatmap MSE.

    ``predict(state, images in [0, 1])`` returns the joints in image pixels and their peaks.
    """
    out_size = heatmap_size(model, image_shape)
    prepare = functools.partial(
        pose_inputs, out_size=out_size, sigma=sigma, flip_pairs=flip_pairs,
        scale_range=scale_range, max_rotation=max_rotation, flip_prob=flip_prob)

    def init(key, batch):
        return init_target(key, jnp.zeros((1, *image_shape), jnp.float32), model, optimizer)

    def step(state, batch, key):
        augment_key, model_key = jax.random.split(key)
        inputs = prepare(augment_key, batch)
        objective = functools.partial(heatmap_objective, model=model,
                                      batch_stats=state.batch_stats, key=model_key)
        grads, aux = jax.grad(objective, has_aux=True)(state.params, inputs)
        state = state.apply_gradients(grads, aux["batch_stats"], optimizer)
        return state, {"loss": aux["loss"]}

    def predict(state, images):
        return predict_joints(model, state, images, image_shape[:2])

    return Method(init=init, step=step, predict=predict)


def pose_arguments(context: registry.Context) -> dict:
    """The keyword arguments every keypoint method shares, from the context: the image shape and
    flip pairs of the data, the heatmaps' ``config.heatmap_sigma`` and the random augmentation of
    ``config.augment``."""
    config = context.config
    a = config.augment
    return {"image_shape": context.image_shape, "flip_pairs": context.flip_pairs, "sigma": config.heatmap_sigma,
            "scale_range": (a.scale_min, a.scale_max), "max_rotation": a.max_rotation,
            "flip_prob": a.flip_prob}


@registry.register("heatmap_regression", task="keypoints")
def _from_config(settings, context: registry.Context) -> Method:
    del settings  # its settings are the keypoint task's own: config.augment, config.heatmap_sigma
    return heatmap_regression(context.model, context.optimizer, **pose_arguments(context))
