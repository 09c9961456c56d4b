"""Policies: the published (op, magnitude) pairs, sampling frequencies, parity of the applied steps
with the Pillow reference, the fused schedule against the sequential one, gradients, bad input."""

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cifar_images import load_images
from PIL import Image

from jaxaug import ops, policies
from jaxaug.policies import episodes, levels, pil_reference, tables
from jaxaug.policies.policy import _autoaugment_tables

N_SAMPLES = 4000
IMAGES = load_images()
# A policy program takes seconds to compile, and one program holding several policies compiles in
# about half the time of separate ones (measured: 10 policies, 18 s against 36 s), so each family of
# tests below takes its results from one cached program.
SAMPLED = {"autoaugment_cifar10": policies.autoaugment("cifar10"),
           "randaugment_2_9": policies.randaugment(2, 9),
           "randaugment_3_5": policies.randaugment(3, 5),
           "trivial_augment_wide": policies.trivial_augment_wide(),
           "random_composition_2": policies.random_composition(2)}


@functools.cache
def _all_samples():
    """{policy name: (op_index, value, applied)} of N_SAMPLES keys split from key(0), each policy
    sampled as jax.vmap(policy.sample) would, all policies in one program."""
    keys = jax.random.split(jax.random.key(0), N_SAMPLES)
    sample_all = jax.jit(lambda keys: {name: jax.vmap(lambda k, p=p: p.sample(k, 32))(keys)
                                       for name, p in SAMPLED.items()})
    return {name: tuple(np.asarray(a) for a in out) for name, out in sample_all(keys).items()}


@pytest.mark.parametrize("name", ["cifar10", "svhn", "imagenet"])
def test_autoaugment_tables_hold_the_published_pairs(name):
    table = tables.POLICIES[f"autoaugment_{name}"]
    policy = policies.autoaugment(name)
    ops_idx, probs, values = _autoaugment_tables(table, 32)
    for s, sub in enumerate(table):
        for t, (op, prob, level) in enumerate(sub):
            assert policy.op_names[ops_idx[s, t]] == op
            assert probs[s, t] == np.float32(prob)
            expected = levels.level_to_arg(op, level, image_size=32)
            assert values[s, t] == np.float32(0.0 if expected is None else expected)


def test_autoaugment_samples_published_sub_policies_at_their_probabilities():
    policy = SAMPLED["autoaugment_cifar10"]
    table = tables.AUTOAUGMENT_CIFAR10
    op_index, value, applied = _all_samples()["autoaugment_cifar10"]
    published = collections.defaultdict(list)  # (op0, op1, |v0|, |v1|) -> sub-policy indices
    for s, sub in enumerate(table):
        key = tuple(op for op, _, _ in sub) + tuple(
            round(abs(levels.level_to_arg(op, lv, image_size=32) or 0.0), 5) for op, _, lv in sub)
        published[key].append(s)
    hits = collections.Counter()
    applied_count = collections.Counter()
    for i in range(len(op_index)):
        names = tuple(policy.op_names[o] for o in op_index[i])
        key = names + tuple(round(float(abs(v)), 5) for v in value[i])
        assert key in published, key  # every sample is a published sub-policy, up to sign
        subs = published[key]
        hits[subs[0]] += 1
        for t in range(2):
            applied_count[(subs[0], t)] += bool(applied[i, t])
    # Sub-policies that look alike (repeats, or magnitude-free ops at different levels) form
    # one group, drawn at its size / 25; each step applied at the group's mean probability.
    for key, subs in published.items():
        n = hits[subs[0]]
        expected = N_SAMPLES * len(subs) / len(table)
        assert abs(n - expected) < 5 * np.sqrt(expected), (key, n, expected)
        for t in range(2):
            p = np.mean([table[s][t][1] for s in subs])
            assert abs(applied_count[(subs[0], t)] / n - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-9


def test_signed_ops_take_both_signs_and_unsigned_ops_never_change_sign():
    policy = SAMPLED["randaugment_2_9"]
    op_index, value, applied = _all_samples()["randaugment_2_9"]
    assert applied.all()
    for o, name in enumerate(policy.op_names):
        v = value[op_index == o]
        magnitude = levels.level_to_arg(name, 9, variant="randaugment") or 0.0
        np.testing.assert_allclose(np.abs(v), abs(magnitude), rtol=1e-6)
        if levels.is_signed(name, variant="randaugment"):
            assert 0.4 < np.mean(v < 0) < 0.6, name
        else:
            assert np.all(v == np.float32(magnitude)), name


def test_randaugment_draws_ops_uniformly_with_replacement():
    op_index, _, _ = _all_samples()["randaugment_3_5"]
    assert op_index.shape == (N_SAMPLES, 3)
    counts = np.bincount(op_index.ravel(), minlength=14)
    expected = 3 * N_SAMPLES / 14
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts
    assert np.mean(op_index[:, 0] == op_index[:, 1]) > 0.03  # with replacement (1/14)


def test_trivial_augment_draws_op_and_level_uniformly():
    policy = SAMPLED["trivial_augment_wide"]
    op_index, value, _ = _all_samples()["trivial_augment_wide"]
    assert op_index.shape == (N_SAMPLES, 1)
    rotations = np.abs(value[op_index == policy.op_names.index("rotate")])
    # rotate level l -> l / 30 * 135 degrees: all 31 levels appear, nothing else.
    level = rotations * 30 / 135
    np.testing.assert_allclose(level, np.round(level), atol=1e-4)
    assert set(np.round(level).astype(int)) == set(range(31))


def test_random_composition_draws_ops_levels_and_coins_as_the_reference():
    policy = SAMPLED["random_composition_2"]
    op_index, value, applied = _all_samples()["random_composition_2"]
    assert policy.op_names == tables.RANDOM_COMPOSITION_OPS and op_index.shape == (N_SAMPLES, 2)
    counts = np.bincount(op_index.ravel(), minlength=15)
    expected = 2 * N_SAMPLES / 15
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts
    # Applied with p ~ U(0, 1) drawn per step: with probability E[p] = 1/2, independently of the
    # op, the level and the other step.
    n = applied.size
    assert abs(applied.mean() - 0.5) < 5 * np.sqrt(0.25 / n), applied.mean()
    both = np.mean(applied[:, 0] & applied[:, 1])
    assert abs(both - 0.25) < 5 * np.sqrt(0.25 * 0.75 / N_SAMPLES), both
    # rotate level l -> l / 10 * 30 degrees, either sign: the 11 levels 0-10, uniformly.
    level = np.abs(value[op_index == policy.op_names.index("rotate")]) / 3
    np.testing.assert_allclose(level, np.round(level), atol=1e-4)
    level_counts = np.bincount(np.round(level).astype(int), minlength=11)
    assert len(level_counts) == 11
    expected = len(level) / 11
    assert np.all(np.abs(level_counts - expected) < 5 * np.sqrt(expected)), level_counts
    assert policies.get("random_composition", num_ops=3).name == "random_composition_3"


def _pillow_diff(op_names, images, out, steps):
    """|ours - Pillow| in 8-bit levels per pixel: `out` (float images) against Pillow replaying
    each image's applied `steps` (op_index, value, applied) on `images`."""
    steps = [[(op_names[o], float(v)) for o, v, a in zip(oi, vi, ai) if a]
             for oi, vi, ai in zip(*(np.asarray(a) for a in steps))]
    ref = np.stack([np.asarray(pil_reference.apply_steps(Image.fromarray(im), s))
                    for im, s in zip(images, steps)]).astype(int)
    return np.abs(np.asarray(ops.to_uint8(out)).astype(int) - ref)


# Mean |ours - Pillow| in 8-bit levels over 64 images, both schedules. Measured on CIFAR-10 test
# images (256 images: 0.12-0.24, the fused schedule equal to the sequential one for these
# two-step policies). The gap comes from PIL truncating enhance blends where we keep floats,
# which a following equalize / auto_contrast can amplify.
PARITY = {"autoaugment_cifar10": 0.3, "autoaugment_svhn": 0.3, "autoaugment_imagenet": 0.3,
          "randaugment": 0.5, "trivial_augment_wide": 0.3}
PARITY_IMAGES = np.concatenate([IMAGES] * 4)
PARITY_POLICIES = {(name, fuse): policies.get(name, fuse=fuse) for name in PARITY
                   for fuse in (False, True)}


PARITY_KEYS = jax.random.split(jax.random.key(1), len(PARITY_IMAGES))


@functools.cache
def _parity_outputs():
    """{(name, fuse): (images, drawn steps)}: each policy on PARITY_IMAGES with PARITY_KEYS, as
    jax.vmap(policy) computes it, and the steps each image drew (the sample the policy takes from
    the first half of its key). One program for all policies."""

    def run(policy, key, img):
        return policy(key, img), policy.sample(jax.random.split(key)[0], max(img.shape[:2]))

    run_all = jax.jit(lambda keys, x: {
        name: jax.vmap(functools.partial(run, p))(keys, x) for name, p in PARITY_POLICIES.items()})
    return run_all(PARITY_KEYS, ops.to_float(PARITY_IMAGES))


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("name", list(PARITY))
def test_policy_matches_pillow_reference(name, fuse):
    out, steps = _parity_outputs()[name, fuse]
    mean = _pillow_diff(PARITY_POLICIES[name, fuse].op_names, PARITY_IMAGES, out, steps).mean()
    assert mean <= PARITY[name], (name, fuse, mean)


def _custom(*steps, **options):
    return policies.autoaugment(((tuple((op, 1.0, level) for op, level in steps)),), **options)


FUSED_CASES = [
    (("invert", 0), ("translate_x", 9)),       # point op before a warp: fill stays grey
    (("translate_y", 9), ("solarize", 4)),     # after a warp: the fill is solarized too
    (("equalize", 0), ("rotate", 9)),          # statistics from the unwarped image
    (("translate_y", 9), ("translate_y", 9)),  # content leaving the frame is lost
    (("rotate", 9), ("shear_x", 9)),           # nearest snapping after every warp
    (("sharpness", 9), ("rotate", 9)),         # any two steps run in the reference's order
    (("contrast", 8), ("translate_x", 9), ("auto_contrast", 0)),
    (("solarize", 3), ("equalize", 0), ("shear_y", 9)),  # middle step's statistics, unwarped
]
SHARPNESS_CASE = (("brightness", 6), ("sharpness", 9), ("rotate", 9))
# The custom sub-policies are applied over one shared vocabulary, so that each (number of steps,
# schedule) compiles once instead of once per sub-policy: a step selects the stages of its drawn
# op with jnp.where, so the other ops of the vocabulary change nothing.
VOCAB = tuple(dict.fromkeys(op for case in (*FUSED_CASES, SHARPNESS_CASE) for op, _ in case))


@functools.cache
def _custom_outputs():
    """{case: (policy, fused, sequential, drawn steps)}: the custom policy of every case on IMAGES
    with keys split from key(0), as jax.vmap(policy) computes it (the policy's own sampling and key
    split), fused and sequential. One program samples all cases; in another, the cases with the
    same number of steps are applied as one batch, their ops re-indexed into VOCAB."""
    cases = (*FUSED_CASES, SHARPNESS_CASE)
    custom = [_custom(*case) for case in cases]
    keys = jax.random.split(jax.random.key(0), len(IMAGES))
    sample_keys, apply_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    drawn = jax.jit(lambda keys: [jax.vmap(lambda k, p=p: p.sample(k, 32))(keys)
                                  for p in custom])(sample_keys)
    groups = collections.defaultdict(list)  # number of steps -> indices of its cases
    for i, case in enumerate(cases):
        groups[len(case)].append(i)

    def batch(group):
        op_index = [np.asarray([VOCAB.index(n) for n in custom[i].op_names])[drawn[i][0]]
                    for i in group]
        return (jnp.concatenate([apply_keys] * len(group)),
                jnp.concatenate([ops.to_float(IMAGES)] * len(group)), jnp.concatenate(op_index),
                *(jnp.concatenate([drawn[i][j] for i in group]) for j in (1, 2)))

    apply_all = jax.jit(lambda batches: {
        (num_steps, fuse): jax.vmap(functools.partial(
            policies.apply.apply_steps, op_names=VOCAB, fuse=fuse))(*batch)
        for num_steps, batch in batches.items() for fuse in (True, False)})
    out = apply_all({num_steps: batch(group) for num_steps, group in groups.items()})
    results = {}
    for num_steps, group in groups.items():
        fused, sequential = (np.split(np.asarray(out[num_steps, fuse]), len(group))
                             for fuse in (True, False))
        for i, f, s in zip(group, fused, sequential):
            results[cases[i]] = custom[i], f, s, drawn[i]
    return results


@pytest.mark.parametrize("steps", FUSED_CASES)
def test_fused_schedule_is_the_sequential_one(steps):
    policy, fused, sequential, drawn = _custom_outputs()[steps]
    np.testing.assert_array_equal(np.asarray(ops.to_uint8(fused)), np.asarray(ops.to_uint8(sequential)))
    assert _pillow_diff(policy.op_names, IMAGES, fused, drawn).mean() <= 0.6


def test_sharpness_between_the_first_step_and_a_warp_is_the_documented_approximation():
    _, fused, sequential, _ = _custom_outputs()[SHARPNESS_CASE]
    fused, seq = (np.asarray(ops.to_uint8(a)).astype(int) for a in (fused, sequential))
    assert 0 < np.abs(fused - seq).mean() < 3.0


def test_geometric_chain_resamples_once():
    """Bilinear: a two-warp sub-policy equals ONE warp by the composed matrix (no double blur)."""
    policy = _custom(("rotate", 3), ("shear_y", 2), interpolation="bilinear")

    @jax.jit
    def run(key, img):
        op_index, value, _ = policy.sample(jax.random.split(key)[0], 32)
        mats = [policies.apply.step_matrix(op_index[t], value[t], policy.op_names, 32, 32)
                for t in range(2)]
        once = ops.affine(img, ops.compose(*mats), fill=policies.apply.GREY)
        twice = ops.affine(ops.affine(img, mats[0], fill=0.5), mats[1], fill=0.5)
        return policy(key, img), once, twice

    out, once, twice = (np.asarray(a) for a in run(jax.random.key(4), ops.to_float(IMAGES[0])))
    inner = (slice(6, -6), slice(6, -6))  # away from the frame, nothing left it
    np.testing.assert_allclose(out[inner], once[inner], atol=1e-5)
    assert np.abs(twice[inner] - once[inner]).mean() > 1e-3


def test_gradient_through_a_policy_matches_finite_differences():
    # Ops without 8-bit rounding (which finite differences would see as jumps), clips inactive.
    policy = _custom(("brightness", 3), ("rotate", 5), ("shear_x", 4), interpolation="bilinear")
    key = jax.random.key(2)
    img = jnp.asarray(IMAGES[1], jnp.float32) / 255.0 * 0.5 + 0.25
    weights = jax.random.normal(jax.random.key(9), img.shape)
    direction = jax.random.normal(jax.random.key(8), img.shape)
    eps = 1e-2

    def loss(x):
        return jnp.sum(policy(key, x) * weights)

    @jax.jit
    def analytic_and_numeric(x):
        numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
        return jnp.vdot(jax.grad(loss)(x), direction), numeric

    analytic, numeric = analytic_and_numeric(img)
    np.testing.assert_allclose(float(analytic), float(numeric), rtol=2e-2)


def test_apply_actions_runs_distribution_samples():
    names = ("solarize", "posterize", "auto_contrast")  # exact 8-bit ops: results must be equal
    dist = policies.PolicyDistribution(op_names=names, num_steps=2)
    actions = dist.sample(jax.random.key(0), dist.init_logits(), shape=(len(IMAGES),))
    x = ops.to_float(IMAGES)
    keys = jax.random.split(jax.random.key(1), len(IMAGES))
    out = jax.jit(jax.vmap(lambda k, im, a: policies.apply_actions(k, im, a, op_names=names)))(
        keys, x, actions)
    for i in range(len(IMAGES)):
        steps = [(names[o], levels.level_to_arg(names[o], int(lv))) for o, lv in np.asarray(actions[i])]
        ref = np.asarray(pil_reference.apply_steps(Image.fromarray(IMAGES[i]), steps)).astype(int)
        got = np.asarray(ops.to_uint8(out[i])).astype(int)
        np.testing.assert_array_equal(got, ref, err_msg=str(steps))


def test_policy_on_a_batch_is_the_per_image_policy():
    policy = PARITY_POLICIES["randaugment", True]  # randaugment(2, 9)
    batched, _ = _parity_outputs()["randaugment", True]
    x = ops.to_float(PARITY_IMAGES)
    single = jax.jit(policy)
    for i in range(4):
        np.testing.assert_array_equal(np.asarray(batched[i]),
                                      np.asarray(single(PARITY_KEYS[i], x[i])))


@pytest.mark.parametrize("call,message", [
    (lambda: policies.autoaugment(((("rotat", 0.5, 3),),)), "rotat"),
    (lambda: policies.autoaugment(((("rotate", 0.5, 11),),)), "level 11"),
    (lambda: policies.autoaugment(((("rotate", 1.5, 3),),)), "probability 1.5"),
    (lambda: policies.autoaugment(((("sample_pairing", 0.5, 3),),)), "sample_pairing"),
    (lambda: policies.autoaugment("cifar100"), "cifar100"),
    (lambda: policies.randaugment(2, 11), "magnitude 11"),
    (lambda: policies.randaugment(0, 9), "num_ops 0"),
    (lambda: policies.get("autoaugment"), "autoaugment"),
    (lambda: policies.randaugment()(jax.random.key(0), jnp.zeros((32, 32))), "randaugment_2_9"),
    (lambda: policies.randaugment()(jax.random.key(0), jnp.zeros((32, 32, 3), jnp.uint8)), "dtype"),
    (lambda: policies.apply_actions(jax.random.key(0), jnp.zeros((8, 8, 3)), jnp.zeros((1, 2), int),
                                    op_names=("blur",)), "blur"),
    # An unknown episode mode ran as "erasing" (its else branch).
    (lambda: episodes.rollout(lambda x, e, k: jnp.zeros((1, 5)), jnp.zeros((1, 8, 8, 3)),
                              jax.random.key(0), mode="cutot", num_steps=1), "'cutot'"),
    (lambda: episodes.num_actions("box"), "'box'"),
])
def test_bad_input_names_the_offender(call, message):
    with pytest.raises(ValueError, match=message):
        call()
