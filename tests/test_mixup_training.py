"""MixUp / CutMix in training (`config.augment.mixup`): the trainer's preprocessing mixes the
augmented batch on its own key stream, every classification method takes the soft labels, and
the settings are validated by name."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyMultiBNNet, TinyNet

from jaxaug import methods, mix, models
from jaxaug.methods import online_augment as oa
from jaxaug.methods.base import UNAUGMENTED
from jaxaug.train import steps
from jaxaug.train.config import base_config, validate
from jaxaug.train.task import create_model

DATASET = types.SimpleNamespace(mean=np.array([0.5, 0.4, 0.3], np.float32), num_classes=3,
                                image_shape=(8, 8, 3))


def _config(**mixup):
    config = base_config()
    config.augment.update(pad=2, cutout=4)
    config.augment.mixup.update(mixup)
    return config


def _batch():
    rng = np.random.default_rng(0)
    return {"image": jnp.asarray(rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)),
            "label": jnp.asarray(rng.integers(0, 3, 6), jnp.int32)}


def test_preprocessing_mixes_the_augmented_batch_on_its_own_stream():
    """With mixup on, the batch is the standard augmentation's, then `mix.Mixup` with the key
    fold_in(augment key, 1): soft labels out. With it off the step draws exactly as before."""
    method = methods.supervised(TinyNet(3), optax.sgd(0.1))
    batch, key = _batch(), jax.random.key(3)
    mixer = mix.Mixup(num_classes=3, mixup_alpha=0.4, cutmix_alpha=1.0, mode="elem")
    on = steps.preprocessing(method, DATASET, _config(mixup_alpha=0.4, cutmix_alpha=1.0,
                                                      mode="elem"))
    off = steps.preprocessing(method, DATASET, _config())

    @jax.jit
    def both(batch, key):
        (got, step_key), (plain, plain_key) = on(batch, key), off(batch, key)
        want = mixer(jax.random.fold_in(jax.random.split(key)[0], 1), plain["image"],
                     plain["label"])
        return got, plain, want, jax.random.key_data(step_key), jax.random.key_data(plain_key)

    got, plain, (images, labels), step_key, plain_key = both(batch, key)
    np.testing.assert_allclose(got["image"], images, atol=1e-6)
    np.testing.assert_allclose(got["label"], labels, atol=1e-6)
    assert got["label"].shape == (6, 3)
    np.testing.assert_allclose(np.asarray(got["label"]).sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(step_key, plain_key)
    # Off, the batch is the standard augmentation's, drawn as before mixup existed.
    standard = steps.augmentation(_config().augment, DATASET.mean)(jax.random.split(key)[0], batch)
    np.testing.assert_allclose(plain["image"], standard["image"], atol=1e-6)
    np.testing.assert_array_equal(plain["label"], batch["label"])


def _soft_batch(n=8):
    labels = jax.nn.one_hot(jnp.arange(n) % 3, 3) * 0.7 + jnp.roll(
        jax.nn.one_hot(jnp.arange(n) % 3, 3), 1, axis=0) * 0.3
    return {"image": jnp.full((n, 16, 16, 3), 0.5), "label": labels}


@pytest.mark.parametrize("name", ["supervised", "adv_autoaugment", "adatransform", "tanda",
                                  "cnsn_consistency", "augmix", "online_augment"])
def test_every_classification_method_steps_on_soft_labels(name):
    """Traced, not compiled (`jax.eval_shape`): a method that tiles or compares labels as ints
    fails here with a shape error; each returns a finite-shaped loss."""
    config = base_config()
    config.method, config.model, config.num_bn_sets = name, "wrn-10-1", 2
    config.adatransform.transformer_width = 4
    if name == "cnsn_consistency":
        config.cnsn.crossnorm = True
    # CNSN needs a network with CrossNorm in its blocks; the others take the tiny one.
    network = (create_model(config, num_classes=3) if name == "cnsn_consistency"
               else TinyMultiBNNet(3, num_bn_sets=2))
    normalization = models.Normalization((0.5,), (0.25,))
    method = methods.create(methods.Context(
        model=models.Normalized(network, normalization), optimizer=optax.sgd(0.1),
        lr_schedule=optax.constant_schedule(0.1), steps_per_epoch=4, num_classes=3,
        normalization=normalization, config=config))
    batch = _soft_batch()
    state = jax.eval_shape(method.init, jax.random.key(0), batch)
    _, metrics = jax.eval_shape(method.steps["train"], state, batch, jax.random.key(1))
    assert metrics["loss"].shape == ()


def test_the_batch_before_augmentation_is_mixed_with_the_same_draws():
    """OnlineAugment's generators read the batch before the standard augmentation: with mixing
    on, it is mixed by the same partners and lambdas, so the soft labels describe it too (here
    MixUp of the raw batch, checked against the mixer with the step's mixing key)."""
    method = oa.online_augment(TinyMultiBNNet(3, num_bn_sets=2), optax.sgd(0.1), oa.astn())
    prepare = steps.preprocessing(method, DATASET, _config(mixup_alpha=0.4))
    batch, key = _batch(), jax.random.key(5)
    got, _ = jax.jit(prepare)(batch, key)
    mixer = mix.Mixup(num_classes=3, mixup_alpha=0.4)
    want, labels = jax.jit(mixer)(jax.random.fold_in(jax.random.split(key)[0], 1),
                                  batch["image"] / 255.0, batch["label"])
    np.testing.assert_allclose(got[UNAUGMENTED], want, atol=1e-6)
    np.testing.assert_allclose(got["label"], labels, atol=1e-6)
    assert not np.allclose(got[UNAUGMENTED], batch["image"] / 255.0, atol=1e-3)


@pytest.mark.parametrize("field, value, match", [
    ("mode", "row", "mode"), ("prob", 1.5, "prob"), ("mixup_alpha", -1.0, "mixup_alpha"),
    ("cutmix_minmax", (0.8, 0.2), "cutmix_minmax")])
def test_bad_mixup_settings_name_the_field(field, value, match):
    config = _config(mixup_alpha=0.2)
    config.augment.mixup[field] = value
    with pytest.raises(ValueError, match=rf"Invalid config\.augment\.mixup:.*{match}"):
        validate(config, device_count=1)
