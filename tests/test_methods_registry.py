"""The method registry: every method's factory hands the target the context's loss, and a
method registered in a few lines gets a config section and field-named validation."""

import functools
import importlib
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug import methods, models, objectives
from jaxaug.methods import registry
from jaxaug.methods.base import require
from jaxaug.train.config import base_config, validate

# name -> (module, function) that its factory calls.
FACTORIES = {
    "supervised": ("jaxaug.methods.supervised", "supervised"),
    "online_augment": ("jaxaug.methods.online_augment", "online_augment"),
    "adv_autoaugment": ("jaxaug.methods.adv_autoaugment", "adv_autoaugment"),
    "adatransform": ("jaxaug.methods.adatransform", "adatransform"),
    "tanda": ("jaxaug.methods.tanda", "tanda"),
    "cnsn_consistency": ("jaxaug.methods.cnsn_consistency", "cnsn_consistency"),
    "augmix": ("jaxaug.methods.augmix", "augmix"),
    "deep_co_training": ("jaxaug.methods.deep_co_training", "deep_co_training"),
    "teachaugment": ("jaxaug.methods.teachaugment", "teachaugment"),
    "uncertainty": ("jaxaug.methods.uncertainty", "uncertainty"),
    "dada": ("jaxaug.methods.dada", "dada"),
}


def test_the_table_covers_every_registered_method():
    assert set(FACTORIES) == set(registry.names())


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_method_trains_the_target_on_the_contexts_loss(name, monkeypatch):
    """Label smoothing (or any other target loss) reaches every method, not just supervised."""
    module_name, function = FACTORIES[name]
    monkeypatch.setattr(importlib.import_module(module_name), function,
                        lambda model, optimizer, *args, **kwargs: kwargs)
    config = base_config()
    config.method, config.num_bn_sets, config.cnsn.crossnorm = name, 2, True
    loss = functools.partial(objectives.softmax_cross_entropy, label_smoothing=0.1)
    got = methods.create(methods.Context(
        model=None, optimizer=None, lr_schedule=None, steps_per_epoch=10, num_classes=10,
        normalization=models.Normalization((0.5,), (0.25,)), config=config, target_loss=loss))
    assert got["target_loss"] is loss


def test_label_smoothing_matches_its_closed_form():
    logits = jax.random.normal(jax.random.key(0), (4, 5))
    labels = jnp.array([0, 3, 4, 1])
    eps = 0.2
    q = (1 - eps) * np.eye(5)[np.asarray(labels)] + eps / 5
    expected = -np.sum(q * np.asarray(jax.nn.log_softmax(logits)), axis=-1)
    got = objectives.softmax_cross_entropy(logits, labels, label_smoothing=eps)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    plain = -np.asarray(jax.nn.log_softmax(logits))[np.arange(4), np.asarray(labels)]
    np.testing.assert_allclose(objectives.softmax_cross_entropy(logits, labels), plain, rtol=1e-5)


def test_importing_the_package_imports_every_method_module():
    """A method registers on import, so the package imports every module in its directory: a
    new method is one new file, with no import line to add anywhere."""
    directory = os.path.dirname(methods.__file__)
    names = {f[:-3] for f in os.listdir(directory) if f.endswith(".py") and f != "__init__.py"}
    assert {"supervised", "tanda", "online_augment"} <= names
    assert all(f"jaxaug.methods.{name}" in sys.modules for name in names)


def test_a_new_method_registers_in_a_few_lines(monkeypatch):
    """Its defaults become config.<name>, its own argument check names the config field, and
    it is built like any other."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def noisy(model, optimizer, *, strength: float = 0.1, copies: int | None = None):
        require(strength >= 0, "noisy", "strength", strength, "must be non-negative")
        return methods.supervised(model, optimizer)

    @registry.register("noisy", defaults=registry.keyword_defaults(noisy, "strength", "copies"))
    def _from_config(settings, context):
        return noisy(context.model, context.optimizer, **settings)

    config = base_config()
    assert config.noisy.strength == 0.1 and config.noisy.copies is None
    config.noisy.copies = 3  # typed int field that may be None
    with pytest.raises(TypeError):
        config.noisy.copies = "three"
    config.method = "noisy"
    validate(config, device_count=1)
    config.noisy.strength = -1.0
    with pytest.raises(ValueError, match=r"Invalid config\.noisy\.strength=-1\.0: must be non-negative"):
        validate(config, device_count=1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("noisy")(_from_config)
