"""Deep Co-Training (Qiao thesis, ch. 3): L_cot is the closed-form Jensen-Shannon divergence, the
FGSM examples are adversarial (the perturbation has the gradient's sign and the attacked loss
rises, for the view itself and for a collapsed other view), L_sup / L_dif route each batch to
its view, the unlabelled stream is deterministic, resumable and disjoint from the labelled set,
and the config carries the thesis's values."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from tiny_models import TinyNet, jit_init

from jaxaug import data
from jaxaug.data import splits
from jaxaug.methods import deep_co_training as dct
from jaxaug.train import base_config, train
from jaxaug.train.config import load_config_file, validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = TinyNet(num_classes=4)


def _batch(seed=0, b=8, u=8):
    rng = np.random.default_rng(seed)
    images = lambda n: rng.uniform(size=(n, 8, 8, 3)).astype(np.float32)  # noqa: E731
    return {"image": images(b), "label": rng.integers(0, 4, b).astype(np.int32),
            "image_labelled": images(b), "label_labelled": rng.integers(0, 4, b).astype(np.int32),
            "image_unlabelled": images(u)}


@functools.cache
def _confident_view(seed=0):
    """A TinyNet view that predicts its labelled images confidently, as a trained one does: its
    classifier scaled 10x, each labelled image labelled with the view's own prediction."""
    batch = _batch()
    variables = jit_init(MODEL.init, jax.random.key(seed), batch["image"], train=False)
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 10 if "Dense" in jax.tree_util.keystr(path) else x,
        variables["params"])
    stats = variables["batch_stats"]
    for name in ("", "_labelled"):
        logits = _train_mode_logits(params, stats, batch[f"image{name}"])
        batch[f"label{name}"] = np.asarray(jnp.argmax(logits, -1), np.int32)
    return params, stats, batch


@jax.jit
def _objective(params, batch_stats, batch, epsilon):
    return dct.dct_objective(params, batch, model=MODEL, batch_stats=batch_stats,
                             key=jax.random.key(0), lambda_cot=1.0, lambda_dif=1.0,
                             epsilon=epsilon)[1]


@jax.jit
def _train_mode_logits(params, batch_stats, images):
    return MODEL.apply({"params": params, "batch_stats": batch_stats}, images, train=True,
                       mutable=["batch_stats"])[0]


def _entropy(x, probabilities=False):
    """H of softmax(x) (or of x itself with ``probabilities``), in float64."""
    x = np.asarray(x, np.float64)
    log_p = np.log(x) if probabilities else np.asarray(jax.nn.log_softmax(x, -1))
    return -np.sum(np.exp(log_p) * log_p, -1)


def test_co_training_loss_is_the_closed_form_jensen_shannon_divergence():
    logits = np.array([[[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [5.0, -3.0, 1.0]],
                       [[-1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-4.0, 6.0, 2.0]]])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    m = p.mean(0)
    entropy = lambda q: -np.sum(q * np.log(q), -1)  # noqa: E731
    expected = entropy(m) - (entropy(p[0]) + entropy(p[1])) / 2  # eq. 3.4
    as_kl = 0.5 * sum(np.sum(p[i] * np.log(p[i] / m), -1) for i in range(2))
    got = np.asarray(jax.jit(dct.co_training_divergence)(logits[0], logits[1]))
    print(f"L_cot per example {got}, closed form {expected}")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected, as_kl, rtol=1e-12)
    assert abs(got[1]) < 1e-6 and got[0] > 0.01 and got[2] > 0.5


def test_fgsm_steps_along_the_gradient_sign_and_raises_the_attacked_loss():
    params, stats, batch = _confident_view()
    variables = {"params": params, "batch_stats": stats}
    images, labels, epsilon = batch["image"], batch["label"], 0.02

    @jax.jit
    def attack_and_reference():
        def losses(x):  # a second writing: optax's CE, per example, in evaluation mode
            logits = MODEL.apply(variables, x, train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels)

        grad = jax.grad(lambda x: losses(x).sum())(images)
        g = dct.fgsm(MODEL, variables, images, labels, epsilon)
        return g, grad, losses(images), losses(g)

    g, grad, clean, attacked = map(np.asarray, attack_and_reference())
    moved = grad != 0
    print(f"FGSM: {moved.mean():.3f} of the pixels moved; own-view loss {clean.mean():.4f} -> "
          f"{attacked.mean():.4f}, per image {np.round(attacked - clean, 4)}")
    assert moved.mean() > 0.9
    np.testing.assert_allclose((g - images)[moved], epsilon * np.sign(grad[moved]), atol=1e-6)
    np.testing.assert_array_equal(g[~moved], images[~moved])
    assert np.all(attacked > clean)


def _soft_ce(target_logits, logits):
    log_q = np.asarray(jax.nn.log_softmax(np.asarray(logits, np.float64), -1))
    return -np.sum(np.exp(np.asarray(jax.nn.log_softmax(np.asarray(target_logits, np.float64),
                                                        -1))) * log_q, -1)


def test_each_view_meets_the_others_examples_and_fgsm_raises_the_other_views_loss():
    """At eps 0 the adversarial passes are clean ones, so for two different views L_dif is
    [sum_{b_1 u x_u} H(p_1, p_2) + sum_{b_2 u x_u} H(p_2, p_1)] / (b + |x_u|) (eq. 3.5), L_cot
    the JS of the views on x_u and L_sup each view's CE on its own batch. With both views the
    same confident view (collapsed), eps 0.02 makes view 1's examples fool view 2: L_dif rises."""
    view_1, stats_1, batch = _confident_view()
    view_2 = _confident_view(seed=1)[0]
    params, stats = (view_1, view_2), (stats_1, stats_1)
    two = jax.device_get(_objective(params, stats, batch, 0.0))
    logits = [{k: np.asarray(_train_mode_logits(p, stats_1, batch[f"image{k}"]))
               for k in ("", "_labelled", "_unlabelled")} for p in params]
    b, u = 8, 8
    dif = (_soft_ce(logits[0][""], logits[1][""]).sum()
           + _soft_ce(logits[0]["_unlabelled"], logits[1]["_unlabelled"]).sum()
           + _soft_ce(logits[1]["_labelled"], logits[0]["_labelled"]).sum()
           + _soft_ce(logits[1]["_unlabelled"], logits[0]["_unlabelled"]).sum()) / (b + u)
    ce = lambda x, y: np.mean(-np.take_along_axis(  # noqa: E731
        np.asarray(jax.nn.log_softmax(x, -1)), y[:, None], -1))
    sup = ce(logits[0][""], batch["label"]) + ce(logits[1]["_labelled"], batch["label_labelled"])
    cot = np.mean(_entropy((jax.nn.softmax(logits[0]["_unlabelled"])
                            + jax.nn.softmax(logits[1]["_unlabelled"])) / 2, probabilities=True)
                  - (_entropy(logits[0]["_unlabelled"]) + _entropy(logits[1]["_unlabelled"])) / 2)
    np.testing.assert_allclose([two["dif"], two["sup"], two["cot"]], [dif, sup, cot], rtol=1e-4)

    collapsed = ((view_1, view_1), (stats_1, stats_1))
    clean = jax.device_get(_objective(*collapsed, batch, 0.0))
    adversarial = jax.device_get(_objective(*collapsed, batch, 0.02))
    print(f"two views: L_dif {two['dif']:.4f} (closed form {dif:.4f}), L_cot {two['cot']:.4f}; "
          f"collapsed: L_cot {clean['cot']:.1e}, L_dif {clean['dif']:.4f} -> "
          f"{adversarial['dif']:.4f} at eps 0.02")
    assert abs(clean["cot"]) < 1e-6
    assert adversarial["dif"] > clean["dif"] * 1.05


def test_ramp_up_is_the_thesis_schedule():
    steps = jnp.arange(0, 1000, 10)
    ramp = np.asarray(jax.jit(dct.ramp_up, static_argnums=(1, 2))(steps, 10, 80.0))
    epoch = np.arange(0, 1000, 10) // 10 + 1
    expected = np.where(epoch <= 80, np.exp(-5 * (1 - np.minimum(epoch, 80) / 80) ** 2), 1.0)
    np.testing.assert_allclose(ramp, expected, rtol=1e-6)
    assert ramp[0] == pytest.approx(np.exp(-5 * (79 / 80) ** 2)) and ramp[79] == 1.0


def _indexed_source(n=60, classes=3):
    """Example i's image holds i in its pixels, so a batch names its examples."""
    ids = np.arange(n)
    images = np.stack([ids % 256, ids // 256, np.zeros(n)], -1).astype(np.uint8)[:, None, None]
    return data.ArraySource(images, (ids % classes).astype(np.int32))


def _ids(images):
    return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 0, 1].astype(int)


def test_unlabelled_stream_is_deterministic_resumable_and_disjoint_from_the_labelled_set():
    source = _indexed_source()
    labelled, unlabelled = splits.reduce_with_rest(source, 12, 3, seed=5)
    kept = set(_ids(labelled.images))
    rest = set(_ids(unlabelled.images))
    assert kept == set(_ids(splits.reduce(source, 12, 3, seed=5).images))  # the supervised set
    assert not kept & rest and kept | rest == set(range(60))

    def dataset(**kw):
        streams = {"unlabelled": data.Stream(unlabelled, 6),
                   "labelled": data.Stream(labelled, 4, ("image", "label"))}
        return data.train_dataset(labelled, 4, seed=1, epochs=3, streams=streams, **kw)

    first, again = dataset(), dataset()
    plain = data.train_dataset(labelled, 4, seed=1, epochs=3)
    seen = []
    for k in range(8):  # one epoch of the unlabelled stream: 48 / 6 steps
        element = first[k]
        np.testing.assert_array_equal(element["image"], plain[k]["image"])  # main batch as before
        for name, value in again[k].items():
            np.testing.assert_array_equal(element[name], value)
        seen += list(_ids(element["image_unlabelled"]))
        assert set(_ids(element["image_labelled"])) <= kept
    assert sorted(seen) == sorted(rest)  # each unlabelled example once per stream epoch
    order = [list(_ids(first[k]["image"])) for k in range(3)]
    assert order != [list(_ids(first[k]["image_labelled"])) for k in range(3)]
    resumed = next(data.iterate(first[5:]))
    for name, value in first[5].items():
        np.testing.assert_array_equal(resumed[name], value)
    shares = [dataset(process_index=p, process_count=2)[4] for p in range(2)]
    for name in first[4]:
        np.testing.assert_array_equal(np.concatenate([s[name] for s in shares]), first[4][name])


def test_load_dataset_unlabelled_is_the_rest_of_the_reduced_split():
    full = data.load_dataset("synthetic", image_size=8)
    d = data.load_dataset("synthetic", image_size=8, reduced=40, unlabelled=True, val_size=10)
    kept = splits.reduce_indices(full.train.labels, 40, 10, 0)
    rest = np.setdiff1d(np.arange(len(full.train)), kept)
    assert (len(d.train), len(d.val), len(d.unlabelled)) == (30, 10, len(full.train) - 40)
    np.testing.assert_array_equal(d.unlabelled.images, full.train.images[rest])
    with pytest.raises(data.DataError, match="unlabelled=True needs reduced"):
        data.load_dataset("synthetic", image_size=8, unlabelled=True)


def test_config_is_the_thesis_recipe_and_bad_settings_name_their_field():
    config = load_config_file(os.path.join(REPO, "configs", "dct_cifar10.py"))
    validate(config, device_count=4)
    assert (config.method, config.reduced, config.epochs, config.batch_size) == (
        "deep_co_training", 4000, 600, 8)
    assert dict(config.dct) == {"unlabelled_batch_size": 92, "lambda_cot": 10.0,
                                "lambda_dif": 0.5, "epsilon": 0.02, "warmup_epochs": 80.0}
    assert (config.optimizer.lr, config.optimizer.momentum, config.optimizer.nesterov,
            config.optimizer.weight_decay, config.augment.pad) == (0.1, 0.9, False, 1e-4, 2)
    for field, value, message in (("dct.epsilon", -1.0, r"config\.dct\.epsilon=-1\.0"),
                                  ("dct.unlabelled_batch_size", 90, r"unlabelled_batch_size=90"),
                                  ("reduced", 0, r"config\.reduced=0"),
                                  ("augment.mixup.mixup_alpha", 1.0, r"config\.augment\.mixup")):
        bad = load_config_file(os.path.join(REPO, "configs", "dct_cifar10.py"))
        bad.update_from_flattened_dict({field: value})
        with pytest.raises(ValueError, match=message):
            validate(bad, device_count=4)


@pytest.mark.slow
def test_training_with_the_streams_resumes_exactly(tmp_path):
    """The trainer with DCT (TinyNet views) on synthetic data: stopped at step 7 and resumed, it
    ends where an uninterrupted run does. Fast counterpart: the stream's determinism above."""
    import signal

    config = base_config()
    config.update(dataset="synthetic", image_size=8, reduced=40, model="wrn-10-1", batch_size=8,
                  eval_batch_size=500, epochs=2, log_every_steps=5, save_image_grid=False,
                  method="deep_co_training")
    config.dct.unlabelled_batch_size = 8

    def own(context):
        return dct.deep_co_training(TinyNet(num_classes=10), context.optimizer,
                                    steps_per_epoch=context.steps_per_epoch, batch_size=8,
                                    unlabelled_batch_size=8, warmup_epochs=1)

    def stop_at_7(step):
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    whole = train(config, str(tmp_path / "whole"), method=own)
    assert train(config, str(tmp_path / "resumed"), method=own, step_callback=stop_at_7)[
        "interrupted"]
    resumed = train(config, str(tmp_path / "resumed"), method=own)
    assert resumed["step"] == whole["step"] == 10


    def final_state(run):
        path = tmp_path / run / "checkpoints" / "10" / "state"
        return jax.tree.leaves(ocp.StandardCheckpointer().restore(str(path)))

    for a, b in zip(final_state("resumed"), final_state("whole"), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed["last_test_accuracy"] == whole["last_test_accuracy"]
