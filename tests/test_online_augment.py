"""The OnlineAugment method: one jitted iteration, its gradients' roles, the reference's update
structure (generated updates, then a clean supervised one, each clipped), the generators' input
before the standard augmentation, inner_num, NaN skipping, the BatchNorm-set routing of Comb.
The meta variant runs in tests/test_online_augment_devices.py (one compile of it is enough).

The target is a one-layer CNN whose BatchNorm honours `bn_set` (tests/tiny_models.py): the method
only needs the models' interface, and WRN-10-1 added seconds to tens of seconds to each compile."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TinyMultiBNNet, jit_init

from jaxaug import data, objectives
from jaxaug.methods import online_augment as oa
from jaxaug.methods import supervised
from jaxaug.methods.base import UNAUGMENTED
from jaxaug.train import base_config, make_mesh
from jaxaug.train.steps import augmentation, compile_steps

pytestmark = pytest.mark.usefixtures("unoptimized_xla")

MODEL = TinyMultiBNNet(num_classes=3, num_bn_sets=2)
OPTIMIZER = optax.sgd(0.05, momentum=0.9)


def _batch(n=8, size=16, seed=0):
    """Standard-augmented images, labels, and other images as the ones before augmentation: the
    generators must read only the latter, the clean update only the former."""
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.normal(size=(n, size, size, 3)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 3, n), jnp.int32),
            UNAUGMENTED: jnp.asarray(rng.normal(size=(n, size, size, 3)), jnp.float32)}


def _clean(batch):
    return {"image": batch["image"], "label": batch["label"]}


def _method(generator=None, **kwargs):
    return oa.online_augment(MODEL, OPTIMIZER, generator or oa.astn(beta=0.1), **kwargs)


SUPERVISED_STEP = jax.jit(supervised(MODEL, OPTIMIZER).step)


def _init(method, batch):
    return jit_init(method.init, jax.random.key(0), batch)


@functools.cache
def _astn_state():
    """The initial state of the one-A-STN methods (their init does not depend on inner_num)."""
    return _init(_method(), _batch())


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _update_keys(step_key, inner_num=1):
    """The (generator, target) keys of each generated update, and the clean update's key."""
    keys = jax.random.split(step_key, inner_num + 1)
    return [tuple(jax.random.split(k, 3)[:2]) for k in keys[:inner_num]], keys[inner_num]


def _generate(gens, params, stats, batch, gen_key):
    """A second, plain writing of the method's generation: each generator on the batch with its
    own key; returns the generated images, their labels and the summed regularizer."""
    augs, labels, reg = [], [], 0.0
    for gen, p, s, key in zip(gens, params, stats, jax.random.split(gen_key, len(gens))):
        noise, dropout = jax.random.split(key)
        out, _ = gen.module.apply({"params": p, "batch_stats": s}, batch["image"], train=True,
                                  rngs={"noise": noise, "dropout": dropout},
                                  mutable=["batch_stats"])
        aug, aug_y, r = gen.augment(out, batch["image"], batch["label"])
        augs.append(aug)
        labels.append(aug_y)
        reg += r
    return augs, jnp.concatenate(labels), reg


def _target_ce(target, images, labels, bn_set, key, model=MODEL):
    ce, _ = objectives.cross_entropy(
        target.params, {"image": jnp.concatenate(images), "label": labels}, model=model,
        batch_stats=target.batch_stats, key=key, bn_set=bn_set)
    return ce


def _clipped_update(target, loss, clip, optimizer=OPTIMIZER):
    """A second writing of a target update: the gradient of ``loss(params) -> (ce, aux)`` scaled
    to global norm at most ``clip``, then ``optimizer``. Returns the target and the norm."""
    grads, aux = jax.grad(loss, has_aux=True)(target.params)
    norm = jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads)))
    grads = jax.tree.map(lambda g: g * jnp.minimum(1.0, clip / norm), grads)
    return target.apply_gradients(grads, aux["batch_stats"], optimizer), norm


def _generated_update(state, batch, keys, clip):
    """The target half of an A-STN generated update: its CE on A-STN(batch[UNAUGMENTED]) on
    BatchNorm set 1, clipped."""
    gen_key, target_key = keys

    def loss(params):
        augs, aug_y, _ = _generate([oa.astn()], state.generator.params,
                                   state.generator.batch_stats,
                                   {"image": batch[UNAUGMENTED], "label": batch["label"]}, gen_key)
        return objectives.cross_entropy(params, {"image": jnp.concatenate(augs), "label": aug_y},
                                        model=MODEL, batch_stats=state.target.batch_stats,
                                        key=target_key, bn_set=(1, 1))

    return _clipped_update(state.target, loss, clip)


def _assert_trees_close(actual, expected, rtol=1e-5, atol=1e-6):
    for a, b in zip(_leaves(actual), _leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def astn_run():
    """One iteration from an A-STN moved off the identity: at exactly the identity the gradients of
    T(x) and T^-1(x) cancel (d T^-1 / d theta = -d T / d theta there), so the generator's
    adversarial gradient is zero."""
    method = _method()
    batch = _batch()
    state = _astn_state()
    params = state.generator.params[0]
    output = {**params["output"], "bias": params["output"]["bias"] + jnp.asarray(
        [0.05, 0.1, -0.05, -0.1, 0.02, 0.08]), "kernel": params["output"]["kernel"] + 0.05}
    state = state.replace(generator=state.generator.replace(params=({**params, "output": output},)))
    new, metrics = jax.jit(method.step)(state, batch, jax.random.key(1))
    return method, batch, state, new, metrics


def test_one_iteration_updates_both_networks(astn_run):
    _, _, state, new, metrics = astn_run
    assert int(new.step) == 1 and int(new.target.step) == 2 and int(new.skipped) == 0
    assert all(np.isfinite(float(v)) for v in metrics.values())
    for old, moved in [(state.target.params, new.target.params),
                       (state.generator.params, new.generator.params)]:
        assert any(not np.array_equal(a, b) for a, b in zip(_leaves(old), _leaves(moved)))
    assert float(metrics["regularizer"]) > 0  # cycle consistency of a non-identity transform


def test_generator_gradient_is_the_reversed_adversarial_one(astn_run):
    """The joint backward pass gives phi g = -beta * dCE/dphi + dR/dphi, CE the target's on the
    generated images of the batch before augmentation. The first step of the reference's Adam
    (L2 weight decay wd added to the gradient) moves each parameter by
    -lr * (g + wd p) / (|g + wd p| + eps), so its sign reveals that of g + wd p."""
    _, batch, state, new, _ = astn_run
    [(gen_key, target_key)], _ = _update_keys(jax.random.key(1))

    def generated(gen_params):
        augs, aug_y, reg = _generate([oa.astn()], (gen_params,), state.generator.batch_stats,
                                     {"image": batch[UNAUGMENTED], "label": batch["label"]},
                                     gen_key)
        return _target_ce(state.target, augs, aug_y, (1, 1), target_key), reg

    d_ce, d_reg = jax.jit(jax.jacrev(generated))(state.generator.params[0])
    old = np.concatenate([np.ravel(x) for x in _leaves(state.generator.params)])
    expected = np.concatenate([np.ravel(-0.1 * c + r) for c, r in
                               zip(_leaves(d_ce), _leaves(d_reg))]) + 1e-4 * old
    moved = np.concatenate([np.ravel(x) for x in _leaves(new.generator.params)])
    normalized = (old - moved) / 1e-3  # (g + wd p) / (|g + wd p| + eps)
    big = np.abs(expected) > 1e-6
    assert big.sum() > 10
    np.testing.assert_array_equal(np.sign(normalized[big]), np.sign(expected[big]))
    np.testing.assert_allclose(np.abs(normalized[big]), 1.0, atol=1e-2)


def test_clean_update_is_a_supervised_step(astn_run):
    """After the generated update (its target half written again, clipped at 5), the target is
    exactly the supervised method's step on the standard-augmented batch, same optimizer, same
    key: parameters, BatchNorm statistics, momentum and step count. The clean gradient's norm is
    below 5 here, so the supervised step (which does not clip) is the right reference."""
    _, batch, state, new, metrics = astn_run
    [generated_keys], clean_key = _update_keys(jax.random.key(1))

    @jax.jit
    def reference(state):
        target, generated_norm = _generated_update(state, batch, generated_keys, 5.0)
        target, supervised_metrics = supervised(MODEL, OPTIMIZER).step(target, _clean(batch),
                                                                       clean_key)
        return target, generated_norm, supervised_metrics["loss"]

    target, generated_norm, loss = reference(state)
    print(f"gradient norms: generated {float(generated_norm):.4f}, "
          f"clean {float(metrics['grad_norm']):.4f}")
    assert float(metrics["grad_norm"]) < 5.0
    np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-6)
    _assert_trees_close(new.target, target)


def test_every_target_update_is_clipped():
    """grad_clip 1e-3, far below the gradients' norms (about 1): both target updates, generated
    and clean, use the gradient rescaled to norm 1e-3, so the parameters move by at most
    lr * 1e-3 * (1.9 + 1) and at least lr * 1e-3 * (1.9 - 1) (momentum 0.9), and exactly as a
    second writing of the two clipped updates says."""
    clip = 1e-3
    batch, state = _batch(), _astn_state()
    new, metrics = jax.jit(_method(grad_clip=clip).step)(state, batch, jax.random.key(1))
    [generated_keys], clean_key = _update_keys(jax.random.key(1))

    @jax.jit
    def reference(state):
        target, generated_norm = _generated_update(state, batch, generated_keys, clip)
        loss = functools.partial(objectives.cross_entropy, batch=_clean(batch), model=MODEL,
                                 batch_stats=target.batch_stats, key=clean_key)
        target, clean_norm = _clipped_update(target, loss, clip)
        return target, generated_norm, clean_norm

    target, generated_norm, clean_norm = reference(state)
    moved = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in
                        zip(_leaves(new.target.params), _leaves(state.target.params))))
    print(f"unclipped norms: generated {float(generated_norm):.4f}, clean "
          f"{float(clean_norm):.4f}; parameters moved {moved:.3e} (bound {0.05 * clip * 2.9:.3e})")
    assert min(float(generated_norm), float(clean_norm)) > 100 * clip
    np.testing.assert_allclose(float(metrics["grad_norm"]), float(clean_norm), rtol=1e-5)
    assert 0.05 * clip * 0.9 <= moved <= 0.05 * clip * 2.9 * (1 + 1e-5)
    _assert_trees_close(new.target, target, rtol=1e-5, atol=1e-9)


class _Recorder(nn.Module):
    """A generator that keeps the batch mean of its input in its BatchNorm-statistics collection
    and returns that input times a learned scalar."""

    @nn.compact
    def __call__(self, x, train=True):
        seen = self.variable("batch_stats", "seen", jnp.zeros, x.shape[1:])
        if train:
            seen.value = x.mean(0)
        return {"images": x * self.param("scale", nn.initializers.ones, ())}


def test_generate_samples_the_generator_as_the_step_does(astn_run):
    """`generate` is the generated update's sampling: from the moved A-STN it equals `_generate`,
    the second writing the gradient tests use, with the same key; from the identity
    initialisation it returns the input twice ([T(x), T^-1(x)] with T = id); a bad index is
    named."""
    method, batch, moved, _, _ = astn_run
    images, key = batch[UNAUGMENTED], jax.random.key(3)

    @jax.jit
    def both(state):
        expected, _, _ = _generate([oa.astn()], state.generator.params,
                                   state.generator.batch_stats,
                                   {"image": images, "label": batch["label"]}, key)
        return method.generate(state, images, key), expected[0]

    got, expected = both(moved)
    assert got.shape == (16, *images.shape[1:])
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    assert float(jnp.max(jnp.abs(got[:8] - images))) > 0.1  # the moved A-STN transforms
    identity, _ = both(_astn_state())
    np.testing.assert_allclose(np.asarray(identity), np.concatenate([images, images]), atol=1e-5)
    for bad in (1, -1, True):
        with pytest.raises(ValueError, match=r"generator must be an index in \[0, 1\)"):
            method.generate(moved, images, key, generator=bad)


def test_generators_read_the_batch_before_the_standard_augmentation():
    """Through the trainer's step with crop, flip and Cutout 8 on: the generator's input is the
    batch as loaded (in [0, 1]: no normalization given), not the augmented one the clean update
    trains on."""
    dataset = data.load_dataset("synthetic", image_size=16, reduced=40)
    config = base_config()
    config.augment.cutout = 8
    recorder = oa.Generator(_Recorder(), lambda out, images, labels: (out["images"], labels, 0.0),
                            beta=0.1)
    method = oa.online_augment(TinyMultiBNNet(dataset.num_classes, num_bn_sets=2), OPTIMIZER,
                               recorder)
    steps = compile_steps(method, dataset, config, make_mesh(jax.devices()[:1]))
    batch = next(data.epoch_batches(dataset.train, 16, seed=0, epoch=0))
    new, _ = steps.train_step(steps.init(jax.random.key(0)), batch)
    seen = np.asarray(new.generator.batch_stats[0]["seen"])
    unaugmented = np.asarray(batch["image"] / 255.0).mean(0)
    step_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 1), 0)
    augment_key = jax.random.split(step_key)[0]  # the trainer's, at step 0
    augmented = augmentation(config.augment, dataset.mean)(augment_key, batch)["image"]
    print(f"max |seen - unaugmented| {np.abs(seen - unaugmented).max():.2e}, "
          f"max |seen - augmented| {np.abs(seen - np.asarray(augmented).mean(0)).max():.2f}")
    np.testing.assert_allclose(seen, unaugmented, rtol=1e-5, atol=1e-5)
    assert np.abs(seen - np.asarray(augmented).mean(0)).max() > 0.03
    # Cutout's boxes, in the dataset's mean colour
    assert np.mean(np.all(np.asarray(augmented) == dataset.mean, axis=-1)) > 0.05


@pytest.fixture(scope="module")
def inner_two():
    """inner_num 2, one compiled step for both its tests: the NaN test poisons the generator
    through its state (a non-finite A-STN output layer) instead of compiling a poisoned one."""
    return _batch(), _astn_state(), jax.jit(_method(inner_num=2).step)


def test_inner_num_counts_updates(inner_two):
    """inner_num 2: two generated updates (the target's and the generator's Adam count 2), then
    the clean one: three target updates."""
    batch, state, step = inner_two
    new, metrics = step(state, batch, jax.random.key(1))
    assert int(new.target.step) == 3 and int(new.step) == 1
    assert int(optax.tree_utils.tree_get(new.generator.opt_state, "count")) == 2
    assert float(metrics["skipped"]) == 0


def test_non_finite_generator_output_is_skipped_and_counted(inner_two):
    """Both generated updates are skipped; the clean one still runs: the target is then the
    supervised step from the initial target."""
    batch, state, step = inner_two
    params = state.generator.params[0]
    output = {**params["output"], "bias": params["output"]["bias"] * jnp.nan}  # theta is NaN
    state = state.replace(generator=state.generator.replace(params=({**params, "output": output},)))
    new, metrics = step(state, batch, jax.random.key(1))
    assert int(new.skipped) == 2 and float(metrics["skipped"]) == 2
    _, clean_key = _update_keys(jax.random.key(1), inner_num=2)
    target, _ = SUPERVISED_STEP(state.target, _clean(batch), clean_key)
    _assert_trees_close(new.target, target)
    for a, b in zip(_leaves(state.generator), _leaves(new.generator)):
        np.testing.assert_array_equal(a, b)


def test_bad_options_are_named():
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="inner_num must be an integer, at least 1"):
            _method(inner_num=bad)
    with pytest.raises(ValueError, match="meta_mode"):
        _method(meta_mode="second")
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="grad_clip"):
            _method(grad_clip=bad)
    with pytest.raises(ValueError, match="at least one generator"):
        oa.online_augment(MODEL, OPTIMIZER, [])
    with pytest.raises(ValueError, match="'stn'"):
        oa.generator_names("astn,stn")
    with pytest.raises(ValueError, match="repeats"):
        oa.generator_names("astn,astn")
    assert oa.generator_names("comb") == ("astn", "deform_vae", "perturb_vae")


def test_comb_trains_all_three_generators_on_their_own_batchnorm_sets():
    """Comb.: the generated update's loss is the target's CE on [A-STN(x) doubled, D-VAE(x),
    P-VAE(x)] with BatchNorm sets (1, 1, 2, 3), x the batch before augmentation, the regularizer
    the sum of the three, and every generator moves. Checked against `_generate`, a second
    writing of the generation (jitted: run eagerly it compiles each of its hundreds of primitives
    on its own)."""
    model = TinyMultiBNNet(num_classes=3, num_bn_sets=4)
    gens = [oa.astn(), oa.deform_vae(), oa.perturb_vae()]
    method = oa.online_augment(model, OPTIMIZER, gens)
    batch = _batch()
    state = _init(method, batch)
    new, metrics = jax.jit(method.step)(state, batch, jax.random.key(1))

    @jax.jit
    def reference(state):
        [(gen_key, target_key)], _ = _update_keys(jax.random.key(1))
        augs, aug_y, reg = _generate(gens, state.generator.params, state.generator.batch_stats,
                                     {"image": batch[UNAUGMENTED], "label": batch["label"]},
                                     gen_key)
        ce = _target_ce(state.target, augs, aug_y, (1, 1, 2, 3), target_key, model)
        return augs, ce, reg

    augs, ce, reg = reference(state)
    assert [a.shape[0] for a in augs] == [16, 8, 8]
    np.testing.assert_allclose(float(metrics["generated_loss"]), float(ce), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["regularizer"]), float(reg), rtol=1e-5)
    for old, moved in zip(state.generator.params, new.generator.params):
        assert any(not np.array_equal(a, b) for a, b in zip(_leaves(old), _leaves(moved)))
    too_few = oa.online_augment(MODEL, OPTIMIZER, gens)  # MODEL has 2 BatchNorm sets
    shapes = jax.eval_shape(too_few.init, jax.random.key(0), batch)
    with pytest.raises(ValueError, match="num_sets=2"):
        jax.eval_shape(too_few.step, shapes, batch, jax.random.key(1))



def test_generated_distance_is_the_mean_absolute_change():
    """0 at the identity; A-STN's doubled batch is compared with the input repeated; the mean
    is over generators."""
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 4, 4, 3)), jnp.float32)
    assert float(oa.generated_distance([x], x)) == 0.0
    doubled = jnp.concatenate([x + 0.1, x - 0.3])
    np.testing.assert_allclose(float(oa.generated_distance([doubled], x)), 0.2, rtol=1e-5)
    np.testing.assert_allclose(float(oa.generated_distance([doubled, x], x)), 0.1, rtol=1e-5)


def test_generator_regularizers_are_the_references_weighted_sums():
    """Each generator's R from made-up module outputs, against numpy writings of the reference's
    terms with non-default weights (so a weight on the wrong term fails): D-VAE
    lambda_v (KL + mean offset^2) + lambda_s smoothness, P-VAE lambda (sum (x' - x)^2 / B + KL),
    A-STN lambda_c x the double cycle of a one-pixel x-translation, which loses (zero padding)
    exactly the first column in one cycle and the last in the other."""
    rng = np.random.default_rng(0)
    b, h, w = 2, 8, 8
    x = rng.uniform(size=(b, h, w, 3)).astype(np.float32)
    y = np.arange(b, dtype=np.int32)
    mean, logvar = rng.normal(size=(2, b, 4)).astype(np.float32)
    offset = rng.normal(size=(b, h, w, 2)).astype(np.float32)
    moved = rng.normal(size=(b, h, w, 3)).astype(np.float32)
    theta = np.tile(np.asarray([[1, 0, 2 / (w - 1)], [0, 1, 0]], np.float32), (b, 1, 1))
    dvae = oa.deform_vae(kl_weight=0.7, smooth_weight=3.0)
    pvae = oa.perturb_vae(weight=0.2)
    stn = oa.astn(cycle_weight=0.3)

    @jax.jit
    def regularizers():
        vae_out = {"mean": mean, "logvar": logvar}
        d = dvae.augment({**vae_out, "grid_offset": offset, "images": moved}, x, y)
        p = pvae.augment({**vae_out, "reconstruction": moved, "images": moved}, x, y)
        return d, p, stn.augment(theta, x, y)

    (d_img, d_y, d_reg), (p_img, p_y, p_reg), (s_img, s_y, s_reg) = regularizers()
    kl = -0.5 * np.sum(1 + logvar - mean ** 2 - np.exp(logvar)) / b
    smooth = 0.5 * (np.mean(np.diff(offset, axis=2) ** 2) + np.mean(np.diff(offset, axis=1) ** 2))
    np.testing.assert_allclose(d_reg, 0.7 * (kl + np.mean(offset ** 2)) + 3.0 * smooth, rtol=1e-5)
    np.testing.assert_allclose(p_reg, 0.2 * (np.sum((moved - x) ** 2) / b + kl), rtol=1e-5)
    cycle = (np.sum(x[:, :, 0] ** 2) + np.sum(x[:, :, -1] ** 2)) / x.size
    print(f"R: D-VAE {float(d_reg):.4f}, P-VAE {float(p_reg):.4f}, A-STN {float(s_reg):.5f} "
          f"(numpy {0.3 * cycle:.5f})")
    np.testing.assert_allclose(s_reg, 0.3 * cycle, rtol=1e-4)
    for images, want in ((d_img, moved), (p_img, moved), (s_img[:b, :, :-1], x[:, :, 1:])):
        np.testing.assert_allclose(images, want, atol=1e-5)
    for labels, want in ((d_y, y), (p_y, y), (s_y, np.concatenate([y, y]))):
        np.testing.assert_array_equal(labels, want)


def test_default_generator_optimizer_is_the_references_coupled_adam():
    """The reference's torch.optim.Adam(lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-4) adds
    wd * p to the gradient before the moments (AdamW would instead subtract lr * wd * p after
    them), written out here for two steps with a decay term as large as the gradient; and the
    method's generators start from that optimizer's state."""
    p0 = jnp.asarray([100.0, -50.0, 3.0])
    grads = [jnp.asarray([0.01, 0.02, -0.5]), jnp.asarray([-0.03, 0.005, 0.2])]
    opt = oa.default_generator_optimizer()
    p, opt_state = p0, opt.init(p0)
    for g in grads:
        updates, opt_state = opt.update(g, opt_state, p)
        p = optax.apply_updates(p, updates)
    q, m, v = np.asarray(p0, np.float64), 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = np.asarray(g, np.float64) + 1e-4 * q
        m, v = 0.5 * m + 0.5 * g, 0.999 * v + 0.001 * g * g
        q = q - 1e-3 * (m / (1 - 0.5 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(np.asarray(p), q, rtol=1e-6)
    state = _astn_state()
    assert (jax.tree.structure(state.generator.opt_state)
            == jax.tree.structure(opt.init(state.generator.params)))
