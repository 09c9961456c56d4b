"""The ``augmix`` method: one step is CE + 12 JS of the clean batch and two views, checked
against `consistency_objective` (a second writing) with its gradient step; the
``cifar10_wrn.py:augmix`` config is the reference's recipe."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyNet, jit_init

from jaxaug.methods import augmix as augmix_method
from jaxaug.objectives.consistency import consistency_objective
from jaxaug.train.config import load_config_file, validate

pytestmark = pytest.mark.usefixtures("unoptimized_xla")


def _noise(key, img):
    """A cheap stand-in for AugMix (tested in test_augmix.py): every draw shows in the view."""
    return jnp.clip(img + 0.2 * jax.random.normal(key, img.shape), 0, 1)


def test_augmix_step_is_cross_entropy_plus_12_js():
    model, lr = TinyNet(num_classes=4), 0.5
    images = np.random.default_rng(7).uniform(size=(4, 8, 8, 3)).astype(np.float32)
    batch = {"image": images, "label": np.arange(4)}
    # The views' policy is a cheap stand-in: AugMix itself is tested in test_augmix.py.
    method = augmix_method.augmix(model, optax.sgd(lr), policy=_noise)
    state = jit_init(method.init, jax.random.key(0), batch)
    key = jax.random.key(1)
    new, aux = jax.jit(method.step)(state, batch, key)

    @jax.jit
    def second_writing(params, batch_stats):
        views = augmix_method.augmix_views(_noise, jax.random.split(key)[0], images)
        return jax.value_and_grad(consistency_objective, has_aux=True)(
            params, {**batch, "views": views}, model=model, batch_stats=batch_stats, weight=12.0)

    (loss, ref), grads = second_writing(state.params, state.batch_stats)
    print(f"augmix step: loss {float(aux['loss']):.6f} (reference {float(loss):.6f}), "
          f"CE {float(aux['cross_entropy']):.6f}, JS {float(aux['consistency']):.6f}")
    assert float(ref["consistency"]) > 1e-6
    np.testing.assert_allclose(aux["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(aux["cross_entropy"], ref["cross_entropy"], rtol=1e-5)
    np.testing.assert_allclose(aux["consistency"], ref["consistency"], rtol=1e-4)
    before, after, grads, stats, ref_stats = jax.tree.map(
        np.asarray, (state.params, new.params, grads, new.batch_stats, ref["batch_stats"]))
    expected = jax.tree.map(lambda p, g: p - lr * g, before, grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), after, expected)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), stats, ref_stats)


def test_augmix_config_is_the_reference_recipe():
    path = os.path.join(os.path.dirname(__file__), "..", "configs", "cifar10_wrn.py")
    config = load_config_file(path, "augmix")
    validate(config, device_count=8)
    assert (config.method, config.model, config.epochs, config.batch_size) == (
        "augmix", "wrn-40-2", 100, 128)
    assert (config.optimizer.lr, config.optimizer.momentum, config.optimizer.weight_decay,
            config.optimizer.nesterov) == (0.1, 0.9, 5e-4, True)
    assert (config.augment.cutout, config.augment.policy) == (0, "")
    assert dict(config.augmix) == {"severity": 3, "width": 3, "depth": -1, "alpha": 1.0,
                                   "all_ops": False, "weight": 12.0}
    config.augmix.depth = 0
    with pytest.raises(ValueError, match=r"config\.augmix\.depth=0"):
        validate(config, device_count=8)
