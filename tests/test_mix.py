"""jaxaug.mix (MixUp, CutMix, timm's Mixup switch) and soft labels in the classification loss.

Each mixing program is jitted once over KEYS keys (vmap) on one fixed 8 x 8 batch of 8, and the
properties are read off its outputs: the weight lam of sample i is recovered from its target
(labels are distinct, so t[i, y_i] = lam (1 - eps) + eps / K), then checked against the images.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxaug import mix, objectives
from tests.tiny_models import TinyNet, numpy_variables

B, H, W, C, K, KEYS = 8, 8, 8, 3, 10, 512
LABELS = np.array([3, 1, 4, 0, 9, 2, 6, 5], np.int32)
PARTNER = np.arange(B)[::-1]
RANDOM_IMAGES = np.random.default_rng(0).uniform(size=(B, H, W, C)).astype(np.float32)
VALUES = (np.arange(B, dtype=np.float32) + 1) / 16  # constant image i has value VALUES[i]
CONSTANT_IMAGES = np.broadcast_to(VALUES[:, None, None, None], (B, H, W, C)).copy()
SOFT = np.random.default_rng(1).dirichlet(np.ones(K), B).astype(np.float32)
MEAN, STD = np.array([0.4, 0.5, 0.6], np.float32), np.array([0.2, 0.25, 0.3], np.float32)


def cases():
    """name -> (mixer, images, labels): every mixing program the tests read."""
    table = {}
    for mode in mix.MODES:
        table[f"mixup_{mode}"] = (functools.partial(
            mix.mixup, alpha=0.4, num_classes=K, label_smoothing=0.1, mode=mode),
            RANDOM_IMAGES, LABELS)
        table[f"cutmix_{mode}"] = (functools.partial(
            mix.cutmix, alpha=1.0, num_classes=K, label_smoothing=0.1, mode=mode),
            CONSTANT_IMAGES, LABELS)
        table[f"switch_{mode}"] = (mix.Mixup(
            num_classes=K, mixup_alpha=1.0, cutmix_alpha=1.0, prob=0.6, switch_prob=0.3,
            mode=mode), CONSTANT_IMAGES, LABELS)
    table["cutmix_raw_lam"] = (functools.partial(
        mix.cutmix, alpha=1.0, num_classes=K, mode="elem", correct_lam=False),
        CONSTANT_IMAGES, LABELS)
    table["cutmix_minmax"] = (functools.partial(
        mix.cutmix, alpha=1.0, num_classes=K, mode="elem", minmax=(0.2, 0.8), correct_lam=False),
        CONSTANT_IMAGES, LABELS)
    table["mixup_soft_labels"] = (table["mixup_elem"][0], RANDOM_IMAGES, SOFT)
    table["switch_normalized"] = (table["switch_elem"][0], (CONSTANT_IMAGES - MEAN) / STD, LABELS)
    return table


@functools.cache
def outputs():
    """name -> (images [KEYS, B, H, W, C], targets [KEYS, B, K]) of each case over KEYS keys.

    One jitted program for all cases."""
    # RBG keys: threefry's random bits, vmapped over the keys, take ~1 s per case to compile on
    # CPU, XLA's RngBitGenerator ~0.1 s; the mixers only call jax.random.uniform on the key.
    keys = jax.random.split(jax.random.key(0, impl="rbg"), KEYS)
    table = cases()
    mixers = {name: jax.vmap(mixer, in_axes=(0, None, None))
              for name, (mixer, _, _) in table.items()}

    def every_case(keys, images, labels):
        return {name: mixer(keys, images[name], labels[name]) for name, mixer in mixers.items()}

    # Arrays as arguments, not constants: constant folding them costs more compiling.
    out = jax.jit(every_case)(keys, {name: case[1] for name, case in table.items()},
                              {name: case[2] for name, case in table.items()})
    return {name: tuple(np.asarray(a) for a in value) for name, value in out.items()}


def run(name):
    return outputs()[name]


def lam_of(targets, eps=0.0):
    """lam [KEYS, B] recovered from each sample's weight on its own label."""
    own = np.take_along_axis(targets, np.broadcast_to(LABELS[None, :, None], targets.shape[:2] +
                                                      (1,)), axis=-1)[..., 0]
    return (own - eps / K) / (1 - eps)


def expected_targets(lam, eps=0.0):
    q = (1 - eps) * np.eye(K, dtype=np.float32)[LABELS] + eps / K
    return lam[..., None] * q + (1 - lam[..., None]) * q[PARTNER]


def check_beta_moments(lam, alpha):
    """Mean and variance of lam ~ Beta(alpha, alpha) within 4 standard errors: var = 1 / (4 (2
    alpha + 1)); the sample variance's standard error uses the excess kurtosis -6 / (2 alpha + 3).
    Then a Kolmogorov-Smirnov test against scipy's Beta CDF (p > 0.001)."""
    lam = np.asarray(lam, np.float64).ravel()
    n, var = lam.size, 1 / (4 * (2 * alpha + 1))
    se_mean = np.sqrt(var / n)
    se_var = var * np.sqrt((2 - 6 / (2 * alpha + 3)) / n)
    print(f"Beta({alpha}) n={n}: mean {lam.mean():.4f} (0.5 +- {4 * se_mean:.4f}), "
          f"var {lam.var():.4f} ({var:.4f} +- {4 * se_var:.4f})")
    assert abs(lam.mean() - 0.5) < 4 * se_mean
    assert abs(lam.var() - var) < 4 * se_var
    ks = scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf)
    print(f"  KS D {ks.statistic:.4f}, p {ks.pvalue:.3f}")
    assert ks.pvalue > 1e-3


def partner_masks(images):
    """Masks [KEYS, B, H, W] of the pixels that came from the partner (constant images)."""
    own = np.all(images == VALUES[None, :, None, None, None], axis=-1)
    theirs = np.all(images == VALUES[PARTNER][None, :, None, None, None], axis=-1)
    assert np.all(own ^ theirs), "a CutMix pixel is neither the sample's nor its partner's"
    return theirs


def boxes_of(masks):
    """(top, bottom, left, right, area) of each mask, asserting it is one rectangle."""
    rows, cols = masks.any(-1), masks.any(-2)
    top, bottom = rows.argmax(-1), H - rows[..., ::-1].argmax(-1)
    left, right = cols.argmax(-1), W - cols[..., ::-1].argmax(-1)
    area = masks.sum((-1, -2))
    filled = rows.any(-1)
    np.testing.assert_array_equal(area[filled], ((bottom - top) * (right - left))[filled])
    return top, bottom, left, right, area


@pytest.mark.parametrize("mode", mix.MODES)
def test_mixup_blends_each_sample_with_its_flip_and_mixes_the_smoothed_one_hots(mode):
    images, targets = run(f"mixup_{mode}")
    lam = lam_of(targets, 0.1)
    assert np.all((lam > -1e-6) & (lam < 1 + 1e-6))
    np.testing.assert_allclose(targets.sum(-1), 1, atol=1e-6)
    np.testing.assert_allclose(targets, expected_targets(lam, 0.1), atol=1e-6)
    w = lam[..., None, None, None]
    np.testing.assert_allclose(images, w * RANDOM_IMAGES + (1 - w) * RANDOM_IMAGES[PARTNER],
                               atol=2e-6)
    # One lam per batch; per pair (i and B-1-i share it); or per element (pairs differ).
    same_as_partner = np.isclose(lam, lam[:, PARTNER], atol=1e-5)
    same_as_first = np.isclose(lam, lam[:, :1], atol=1e-5)
    if mode == "batch":
        assert same_as_first.all()
    elif mode == "pair":
        assert same_as_partner.all() and not same_as_first.all(-1).any()
    else:
        assert same_as_partner.mean() < 0.01


@pytest.mark.parametrize("mode, draws", [("batch", KEYS), ("pair", KEYS * B // 2),
                                         ("elem", KEYS * B)])
def test_mixup_lam_is_beta_distributed_per_batch_pair_or_element(mode, draws):
    lam = lam_of(run(f"mixup_{mode}")[1], 0.1)
    lam = {"batch": lam[:, 0], "pair": lam[:, : B // 2], "elem": lam}[mode]
    assert lam.size == draws
    check_beta_moments(lam, 0.4)


def test_symmetric_beta_matches_scipy_and_keeps_its_small_tail():
    """alpha in {0.2, 0.5, 2} (traced, one program): moments and KS test (alpha >= 0.5; for 0.2,
    ~2% of float32 draws round to exactly 1, which the KS test reads as a gap); for 0.2 the share
    below 1e-10 matches the CDF and no draw underflows to 0, which computing 1/2 (1 + c / b) on
    the lower side would do for ~1.6% of them (every lam < 3e-8)."""
    alphas = np.array([0.2, 0.5, 2.0], np.float32)
    lam = np.asarray(jax.jit(lambda key, a: mix.symmetric_beta(key, a[:, None], (3, 4096)))(
        jax.random.key(1, impl="rbg"), alphas), np.float64)
    for alpha, row in zip(alphas, lam):
        if alpha >= 0.5:
            check_beta_moments(row, float(alpha))
    tail, p = (lam[0] < 1e-10).mean(), scipy.stats.beta(0.2, 0.2).cdf(1e-10)
    print(f"Beta(0.2): P(lam < 1e-10) {tail:.4f} (expected {p:.4f}), min {lam[0].min():.3g}")
    assert abs(tail - p) < 4 * np.sqrt(p * (1 - p) / lam.shape[1])
    assert lam[0].min() > 0


@pytest.mark.parametrize("mode", mix.MODES)
def test_cutmix_lam_is_the_share_of_own_pixels(mode):
    images, targets = run(f"cutmix_{mode}")
    masks = partner_masks(images)
    boxes_of(masks)
    lam = lam_of(targets, 0.1)
    np.testing.assert_allclose(lam, 1 - masks.mean((-1, -2)), atol=1e-6)
    np.testing.assert_allclose(targets, expected_targets(lam, 0.1), atol=1e-6)
    assert 0.3 < (lam < 1).mean()  # the boxes are not all empty
    if mode == "batch":
        assert (masks == masks[:, :1]).all()
    elif mode == "pair":
        assert (masks == masks[:, PARTNER]).all()
    else:
        assert (masks != masks[:, PARTNER]).any((-1, -2)).mean() > 0.5


def test_cutmix_box_has_side_ratio_sqrt_one_minus_lam_and_correct_lam_off_keeps_the_draw():
    """timm's rand_bbox: half side floor(H sqrt(1 - lam)) // 2 each way from a uniform centre,
    clipped; with correct_lam=False the target keeps the Beta(1, 1) draw, not the box area."""
    images, targets = run("cutmix_raw_lam")
    lam = lam_of(targets)
    check_beta_moments(lam, 1.0)
    top, bottom, left, right, area = boxes_of(partner_masks(images))
    side = H * np.sqrt(1 - lam.astype(np.float64))
    half = np.floor(side) // 2
    unambiguous = np.abs(side - np.round(side)) > 1e-4  # float32 may floor the other way
    inner = (area > 0) & (top > 0) & (bottom < H) & (left > 0) & (right < W) & unambiguous
    np.testing.assert_array_equal((bottom - top)[inner], 2 * half[inner])
    np.testing.assert_array_equal((right - left)[inner], 2 * half[inner])
    assert np.all((bottom - top)[area > 0] <= 2 * half[area > 0])
    assert np.all(area[half == 0] == 0) and np.all(area[(half > 0) & unambiguous] > 0)
    moved = np.abs(lam - (1 - area / (H * W))) > 1e-6
    print(f"correct_lam=False: {inner.mean():.3f} of the boxes unclipped, lam differs from the "
          f"own-pixel share in {moved.mean():.3f} of the samples")
    assert moved.mean() > 0.5


def test_cutmix_minmax_box_lies_inside_the_image_and_sets_lam_to_its_area():
    """timm's rand_bbox_minmax: sides uniform in [int(8 * 0.2), int(8 * 0.8)) = [1, 6), top-left
    corner uniform in [0, 8 - side) (so the box never reaches the last row or column); lam is
    the box's area even with correct_lam=False."""
    images, targets = run("cutmix_minmax")
    top, bottom, left, right, area = boxes_of(partner_masks(images))
    assert (area > 0).all()
    for lo, hi in ((top, bottom), (left, right)):
        assert set(np.unique(hi - lo)) == {1, 2, 3, 4, 5}
        assert lo.min() == 0 and hi.max() == H - 1
    np.testing.assert_allclose(lam_of(targets), 1 - area / (H * W), atol=1e-6)


@pytest.mark.parametrize("mode", mix.MODES)
def test_mixup_switch_draws_cutmix_with_switch_prob_and_mixes_with_prob(mode):
    """prob 0.6, switch_prob 0.3, both alphas 1: untouched 0.4 + 0.6 * 0.3 / 16 (a CutMix box is
    empty for lam > 15/16), CutMix with a box 0.6 * 0.3 * 15/16, MixUp 0.6 * 0.7 of the samples
    (elem), pairs (pair: both members of a pair are of one kind) or batches (batch: a batch is
    all of one kind)."""
    images, targets = run(f"switch_{mode}")
    own = np.all(images == CONSTANT_IMAGES, axis=(-1, -2, -3))
    constant = np.all(images == images[..., :1, :1, :1], axis=(-1, -2, -3))
    kinds = {"untouched": own, "cutmix": ~constant, "mixup": constant & ~own}
    expected = {"untouched": 0.4 + 0.6 * 0.3 / 16, "cutmix": 0.6 * 0.3 * 15 / 16,
                "mixup": 0.6 * 0.7}
    np.testing.assert_allclose(lam_of(targets)[own], 1.0)
    if mode == "batch":
        for name, kind in kinds.items():
            assert (kind == kind[:, :1]).all()
            kinds[name] = kind[:, 0]
    elif mode == "pair":
        for name, kind in kinds.items():
            assert (kind == kind[:, PARTNER]).all()
            kinds[name] = kind[:, : B // 2]
    for name, kind in kinds.items():
        se = np.sqrt(expected[name] * (1 - expected[name]) / kind.size)
        print(f"{mode}: {name} {kind.mean():.4f} (expected {expected[name]:.4f} +- {4 * se:.4f})")
        assert abs(kind.mean() - expected[name]) < 4 * se


def test_soft_labels_pass_through_vmap_and_keep_their_mass():
    """Soft input labels are smoothed and mixed like one-hots: t = lam q_i + (1 - lam) q_{B-1-i},
    q = (1 - eps) p + eps / K."""
    images, targets = run("mixup_soft_labels")
    int_images, int_targets = run("mixup_elem")  # the same mixer and keys, int labels
    np.testing.assert_array_equal(images, int_images)
    lam = lam_of(int_targets, 0.1)
    q = 0.9 * SOFT + 0.1 / K
    expected = lam[..., None] * q + (1 - lam[..., None]) * q[PARTNER]
    np.testing.assert_allclose(targets, expected, atol=1e-6)
    np.testing.assert_allclose(targets.sum(-1), 1, atol=1e-5)


def test_mixing_commutes_with_normalization():
    """The trainer may mix before or after normalizing: same key, same targets, and the mixed
    normalized images are the normalized mixed images."""
    images, targets = run("switch_elem")
    normalized_images, normalized_targets = run("switch_normalized")
    np.testing.assert_array_equal(normalized_targets, targets)
    np.testing.assert_allclose(normalized_images, (images - MEAN) / STD, atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda x, y: mix.mixup(jax.random.key(0), x, y, alpha=0.0, num_classes=K), "alpha"),
    (lambda x, y: mix.cutmix(jax.random.key(0), x, y, alpha=-1.0, num_classes=K), "alpha"),
    (lambda x, y: mix.cutmix(jax.random.key(0), x, y, alpha=1.0, num_classes=K,
                             minmax=(0.8, 0.2)), "minmax"),
    (lambda x, y: mix.Mixup(num_classes=K, mixup_alpha=-1.0), "mixup_alpha"),
    (lambda x, y: mix.Mixup(num_classes=K, cutmix_alpha=float("nan")), "cutmix_alpha"),
    (lambda x, y: mix.Mixup(num_classes=K, mixup_alpha=0.0), "mixup_alpha or cutmix_alpha"),
    (lambda x, y: mix.Mixup(num_classes=K, prob=1.5), "prob"),
    (lambda x, y: mix.Mixup(num_classes=K, switch_prob=-0.1), "switch_prob"),
    (lambda x, y: mix.Mixup(num_classes=K, mode="pairs"), "mode"),
    (lambda x, y: mix.Mixup(num_classes=K, label_smoothing=1.0), "label_smoothing"),
    (lambda x, y: mix.Mixup(num_classes=0), "num_classes"),
    (lambda x, y: mix.mixup(jax.random.key(0), x, y, alpha=1.0, num_classes=K, mode="x"), "mode"),
    (lambda x, y: mix.mixup(jax.random.key(0), x, np.full((B, K - 1), 1 / (K - 1), np.float32),
                            alpha=1.0, num_classes=K), "labels"),
    (lambda x, y: mix.mixup(jax.random.key(0), x, y[:, None], alpha=1.0, num_classes=K),
     "labels"),
    (lambda x, y: mix.mixup(jax.random.key(0), x, y[:7], alpha=1.0, num_classes=K), "labels"),
    (lambda x, y: mix.mixup(jax.random.key(0), x[:7], y[:7], alpha=1.0, num_classes=K,
                            mode="pair"), r"mode='pair'.*images.shape\[0\]"),
    (lambda x, y: mix.mixup(jax.random.key(0), (x * 255).astype(np.uint8), y, alpha=1.0,
                            num_classes=K), "images"),
    (lambda x, y: mix.Mixup(num_classes=K, cutmix_minmax=(0.1, 0.12))(jax.random.key(0), x, y),
     "cutmix_minmax"),
    (lambda x, y: objectives.softmax_cross_entropy(np.zeros((B, K)), y.astype(np.float32)),
     "labels"),
])
def test_bad_arguments_raise_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call(RANDOM_IMAGES, LABELS)


@functools.cache
def soft_ce(label_smoothing):
    return jax.jit(functools.partial(objectives.softmax_cross_entropy,
                                     label_smoothing=label_smoothing))


def test_soft_label_cross_entropy_matches_its_hand_computed_value():
    """softmax(log [1, 2, 3]) = [1, 2, 3] / 6, so p = [1/2, 1/4, 1/4] costs 1/2 log 6 + 1/4 log 3
    + 1/4 log 2; uniform logits cost log 3 for any p; smoothing eps = 0.3 turns p into
    0.7 p + 0.1 = [0.45, 0.275, 0.275]."""
    logits = jnp.array([np.log([1.0, 2.0, 3.0]), [0.0, 0.0, 0.0]], jnp.float32)
    labels = jnp.array([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]], jnp.float32)
    plain = [0.5 * np.log(6) + 0.25 * np.log(3) + 0.25 * np.log(2), np.log(3)]
    smoothed = [0.45 * np.log(6) + 0.275 * np.log(3) + 0.275 * np.log(2), np.log(3)]
    np.testing.assert_allclose(soft_ce(0.0)(logits, labels), plain, rtol=1e-6)
    np.testing.assert_allclose(soft_ce(0.3)(logits, labels), smoothed, rtol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_one_hot_soft_labels_cost_what_int_labels_cost(eps):
    logits = jnp.asarray(np.random.default_rng(2).normal(size=(B, K)) * 3, jnp.float32)
    one_hot = jnp.eye(K, dtype=jnp.float32)[LABELS]
    np.testing.assert_allclose(soft_ce(eps)(logits, one_hot), soft_ce(eps)(logits, LABELS),
                               rtol=1e-5, atol=1e-6)


def test_smoothing_in_the_loss_equals_timm_smoothing_in_the_mixed_targets():
    """timm smooths the one-hots before mixing and trains with an unsmoothed soft-target loss;
    smoothing the unsmoothed mixed targets in the loss gives the same loss."""
    logits = jnp.asarray(np.random.default_rng(3).normal(size=(B, K)) * 3, jnp.float32)
    lam = jnp.linspace(0.1, 0.9, B)
    timm = soft_ce(0.0)(logits, mix.mix_targets(LABELS, lam, num_classes=K, label_smoothing=0.1))
    ours = soft_ce(0.1)(logits, mix.mix_targets(LABELS, lam, num_classes=K))
    np.testing.assert_allclose(ours, timm, rtol=1e-6)


def test_cross_entropy_objective_takes_soft_labels_and_scores_their_argmax():
    model = TinyNet(num_classes=K)
    x = jnp.asarray(RANDOM_IMAGES)
    variables = numpy_variables(jax.eval_shape(model.init, jax.random.key(0), x))
    objective = jax.jit(lambda labels: objectives.cross_entropy(
        variables["params"], {"image": x, "label": labels}, model=model,
        batch_stats=variables["batch_stats"], key=jax.random.key(0))[1])
    hard = objective(jnp.asarray(LABELS))
    one_hot = objective(jnp.eye(K, dtype=jnp.float32)[LABELS])
    np.testing.assert_allclose(one_hot["loss"], hard["loss"], rtol=1e-6)
    np.testing.assert_allclose(one_hot["accuracy"], hard["accuracy"])
    # Soft labels whose argmax is the class the model predicts for half the batch.
    predicted = np.asarray(jnp.argmax(hard["logits"], -1))
    target = np.where(np.arange(B) < B // 2, predicted, (predicted + 1) % K)
    soft = 0.3 * np.eye(K, dtype=np.float32)[LABELS] + 0.7 * np.eye(K, dtype=np.float32)[target]
    soft = np.where((target == LABELS)[:, None], np.eye(K, dtype=np.float32)[target], soft)
    mixed = objective(jnp.asarray(soft))
    assert float(mixed["accuracy"]) == 0.5
    expected = -np.sum(soft * np.asarray(jax.nn.log_softmax(mixed["logits"])), -1).mean()
    np.testing.assert_allclose(mixed["loss"], expected, rtol=1e-5)
