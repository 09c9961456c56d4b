"""The GAN terms: the discriminator loss against its closed form and its gradient signs, the
realness reward, and the DCGAN discriminator's shapes and init."""

import jax
import jax.numpy as jnp
import numpy as np
from tiny_models import jit_init

from jaxaug import models, objectives


def test_discriminator_loss_closed_form_and_gradient_signs():
    real, fake = jnp.asarray([0.3, -1.2, 2.0]), jnp.asarray([0.5, -0.7])
    loss, aux = objectives.discriminator_loss(real, fake)
    sigmoid = lambda s: 1 / (1 + np.exp(-np.asarray(s)))
    want = -np.mean(np.log(sigmoid(real))) - np.mean(np.log(1 - sigmoid(fake)))
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(aux["d_accuracy"], 0.5 * (2 / 3 + 1 / 2))
    g_real, g_fake = jax.grad(lambda r, f: objectives.discriminator_loss(r, f)[0],
                              argnums=(0, 1))(real, fake)
    # Descending the loss raises every real logit and lowers every fake one, by
    # (1 - D(x)) / n_real and D(T(x)) / n_fake.
    assert np.all(g_real < 0) and np.all(g_fake > 0)
    np.testing.assert_allclose(g_real, -(1 - sigmoid(real)) / 3, rtol=1e-5)
    np.testing.assert_allclose(g_fake, sigmoid(fake) / 2, rtol=1e-5)


def test_log_realness_rewards_looking_real():
    logits = jnp.asarray([-3.0, 0.0, 3.0])
    np.testing.assert_allclose(objectives.log_realness(logits),
                               np.log(1 / (1 + np.exp(-np.asarray(logits)))), rtol=1e-6)
    assert np.all(np.asarray(jax.grad(lambda s: objectives.log_realness(s).sum())(logits)) > 0)


def test_discriminator_downsamples_to_one_logit_per_image():
    net = models.Discriminator(width=8)
    variables = jit_init(net.init, jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False)
    kernels = [v.shape for k, v in jax.tree_util.tree_flatten_with_path(variables["params"])[0]
               if "kernel" in str(k[-1])]
    # 32 -> 16 -> 8 -> 4 by three strided convolutions (8, 16, 32 channels), then one logit.
    assert kernels == [(4, 4, 3, 8), (4, 4, 8, 16), (4, 4, 16, 32), (4 * 4 * 32, 1)]
    # DCGAN's init, N(0, 0.02^2) for every weight (flax's lecun_normal: std 1/sqrt(fan_in), 0.14
    # for the first conv), zero bias.
    stds = [float(np.std(v)) for k, v in jax.tree_util.tree_flatten_with_path(
        variables["params"])[0] if "kernel" in str(k[-1])]
    print("discriminator kernel stds", np.round(stds, 4))
    np.testing.assert_allclose(stds, 0.02, rtol=0.15)
    assert not np.any(np.asarray(variables["params"]["Conv_0"]["bias"]))
    logits = jax.jit(net.apply, static_argnames="train")(
        variables, jax.random.uniform(jax.random.key(1), (5, 32, 32, 3)), train=False)
    assert logits.shape == (5,) and np.all(np.isfinite(logits))


def test_discriminator_objective_is_the_loss_on_one_batch_of_real_and_fake():
    net = models.Discriminator(width=8)
    real = jax.random.uniform(jax.random.key(1), (3, 16, 16, 3))
    fake = jax.random.uniform(jax.random.key(2), (3, 16, 16, 3))
    variables = jit_init(net.init, jax.random.key(0), real, train=False)

    @jax.jit
    def objective_and_logits(variables):
        loss, aux = objectives.discriminator_objective(
            variables["params"], variables["batch_stats"], real, fake, discriminator=net)
        logits, _ = net.apply(variables, jnp.concatenate([real, fake]), train=True,
                              mutable=["batch_stats"])
        return loss, aux, logits

    loss, aux, logits = objective_and_logits(variables)
    np.testing.assert_allclose(loss, objectives.discriminator_loss(logits[:3], logits[3:])[0],
                               rtol=1e-6)
    np.testing.assert_allclose(aux["fake_logits"], logits[3:], rtol=1e-6)
    assert jax.tree.structure(aux["batch_stats"]) == jax.tree.structure(
        variables["batch_stats"])
