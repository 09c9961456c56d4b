"""Uncertainty-based sampling: the step trains on exactly the copies a brute-force per-image
search picks (the S highest eval-mode losses of the C copies), the reference code's sampled
selection draws in proportion to the losses, and the config builds with the paper's C and S."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyNet, jit_init

from jaxaug import objectives
from jaxaug.methods import base
from jaxaug.methods import uncertainty as unc
from jaxaug.train.config import load_config_file, validate

pytestmark = pytest.mark.usefixtures("unoptimized_xla")


def _brightness(key, img):
    """A cheap stand-in policy (the selection does not depend on which policy drew the copies):
    every draw its own brightness factor, so the copies' losses differ."""
    return jnp.clip(img * jax.random.uniform(key, (), minval=0.2, maxval=1.8), 0.0, 1.0)


def test_step_trains_on_the_brute_force_top_k_copies():
    model, lr, c, s = TinyNet(num_classes=4), 0.3, 4, 2
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(6, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    batch = {"image": images, "label": labels}
    method = unc.uncertainty(model, optax.sgd(lr), policy=_brightness, num_copies=c,
                             num_selected=s, cutout=4, cutout_fill=0.5)
    state = jit_init(method.init, jax.random.key(0), batch)
    key = jax.random.key(1)
    new, metrics = jax.jit(method.step)(state, batch, key)

    copy_key, _, model_key = jax.random.split(key, 3)

    @jax.jit
    def scored(state):
        copies = unc.augment_copies(_brightness, copy_key, images, c, cutout=4, cutout_fill=0.5)
        logits = base.predict_target(model, state, copies.reshape(-1, 8, 8, 3))
        return copies, objectives.softmax_cross_entropy(logits, np.repeat(labels, c))

    copies, losses = jax.device_get(scored(state))
    losses = losses.reshape(6, c)
    # The brute force: per image, sort its C losses and keep the S largest.
    picked = [sorted(range(c), key=lambda j, i=i: -losses[i, j])[:s] for i in range(6)]
    kept = np.stack([copies[i, j] for i in range(6) for j in picked[i]])
    assert len({tuple(p) for p in picked}) > 1  # the picks differ between images

    @jax.jit
    def reference(state):
        return base.gradient_update(state, objectives.cross_entropy, optax.sgd(lr),
                                    {"image": kept, "label": np.repeat(labels, s)}, model=model,
                                    batch_stats=state.batch_stats, key=model_key)[:2]

    expected, aux = reference(state)
    print(f"uncertainty step: copy loss {float(metrics['copy_loss']):.4f}, selected loss "
          f"{float(metrics['selected_loss']):.4f} (brute force "
          f"{np.mean([losses[i, picked[i]] for i in range(6)]):.4f})")
    np.testing.assert_allclose(metrics["selected_loss"],
                               np.mean([losses[i, picked[i]] for i in range(6)]), rtol=1e-5)
    np.testing.assert_allclose(metrics["copy_loss"], losses.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], aux["loss"], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                 jax.device_get(new.params), jax.device_get(expected.params))


def test_sampled_selection_draws_in_proportion_to_the_losses():
    losses = jnp.tile(jnp.asarray([[1.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), (2000, 1))
    # Eager: a handful of ops, cheaper than compiling them.
    index = np.asarray(unc.select(losses, 2, selection="sampled", key=jax.random.key(0)))
    weighted, zero = index[0::2].ravel(), index[1::2].ravel()
    share = np.bincount(weighted, minlength=4) / weighted.size
    print(f"sampled selection: shares {share.round(3)} (expected 0.25, 0.75, 0, 0)")
    np.testing.assert_allclose(share, [0.25, 0.75, 0.0, 0.0], atol=0.02)
    # All losses 0: uniform, as the reference's fallback.
    np.testing.assert_allclose(np.bincount(zero, minlength=4) / zero.size, 0.25, atol=0.02)


def test_config_is_the_papers_cifar_setting_and_rejects_bad_fields():
    path = os.path.join(os.path.dirname(__file__), "..", "configs", "policy_learners.py")
    config = load_config_file(path, "uncertainty,cifar10")
    validate(config, device_count=1)
    assert (config.method, config.augment.cutout, config.augment.policy) == (
        "uncertainty", 16, "")
    assert dict(config.uncertainty) == {"policy": "randaugment", "num_ops": 2, "magnitude": 9,
                                        "num_copies": 4, "num_selected": 1, "selection": "top_k"}
    config.uncertainty.num_selected = 5
    with pytest.raises(ValueError, match=r"config\.uncertainty\.num_selected=5"):
        validate(config, device_count=1)
    config.uncertainty.num_selected, config.uncertainty.selection = 1, "max"
    with pytest.raises(ValueError, match=r"config\.uncertainty\.selection='max'"):
        validate(config, device_count=1)
    config.uncertainty.selection, config.augment.policy = "top_k", "randaugment"
    with pytest.raises(ValueError, match=r"config\.augment\.policy"):
        validate(config, device_count=1)


def test_reference_config_draws_its_copies_from_the_authors_random_composition(monkeypatch):
    """``uncertainty_reference``: what reaches the method, captured instead of building it."""
    from jaxaug import methods, models
    monkeypatch.setattr(unc, "uncertainty", lambda model, optimizer, **kw: kw)
    path = os.path.join(os.path.dirname(__file__), "..", "configs", "policy_learners.py")
    config = load_config_file(path, "uncertainty_reference,cifar10")
    validate(config, device_count=1)
    got = methods.create(methods.Context(
        model=None, optimizer=None, lr_schedule=None, steps_per_epoch=391, num_classes=10,
        normalization=models.Normalization((0.5,), (0.25,)), config=config))
    assert got["policy"].name == "random_composition_2"
    assert (got["num_copies"], got["num_selected"], got["cutout"]) == (4, 1, 16)
