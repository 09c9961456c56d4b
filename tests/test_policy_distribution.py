"""Tests of the learnable policy distribution (jaxaug.policies.distribution)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug.policies.distribution import PolicyDistribution
from jaxaug.policies.tables import RANDAUGMENT_OPS

DIST = PolicyDistribution()  # 14 RandAugment ops x 11 levels, 2 steps


def _random_logits(dist, seed=0, scale=1.5):
    return jnp.asarray(
        np.random.default_rng(seed).normal(size=dist.logits_shape) * scale, jnp.float32
    )


def _np_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def test_defaults_and_shapes():
    assert DIST.op_names == RANDAUGMENT_OPS
    assert (DIST.num_ops, DIST.num_levels, DIST.num_steps) == (14, 11, 2)
    assert DIST.logits_shape == (2, 154)
    logits = DIST.init_logits()
    assert logits.shape == (2, 154) and not np.any(np.asarray(logits))
    probs = DIST.probs(_random_logits(DIST))
    assert probs.shape == (2, 14, 11)
    np.testing.assert_allclose(np.asarray(probs).sum(axis=(1, 2)), 1.0, rtol=1e-5)
    actions = DIST.sample(jax.random.key(0), logits, shape=(5, 3))
    assert actions.shape == (5, 3, 2, 2) and jnp.issubdtype(actions.dtype, jnp.integer)
    assert DIST.sample(jax.random.key(0), logits).shape == (2, 2)
    assert DIST.log_prob(logits, actions).shape == (5, 3)
    assert DIST.entropy(logits).shape == ()


def test_log_prob_matches_numpy_and_product_of_probs():
    dist = PolicyDistribution(num_steps=3)
    logits = _random_logits(dist, seed=1)
    actions = np.asarray(dist.sample(jax.random.key(1), logits, shape=(64,)))
    got = np.asarray(dist.log_prob(logits, actions))

    logp = _np_log_softmax(logits)
    want = np.zeros(64)
    for i in range(64):
        for t in range(3):
            op, level = actions[i, t]
            want[i] += logp[t, op * dist.num_levels + level]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    probs = np.asarray(dist.probs(logits), np.float64)
    prod = np.ones(64)
    for t in range(3):
        prod *= probs[t, actions[:, t, 0], actions[:, t, 1]]
    np.testing.assert_allclose(got, np.log(prod), rtol=1e-5, atol=1e-5)

    # A hand-picked action: the reversed-op layout would give a different value.
    a = np.array([[3, 7], [0, 0], [13, 10]])
    want_a = logp[0, 3 * 11 + 7] + logp[1, 0] + logp[2, 13 * 11 + 10]
    np.testing.assert_allclose(float(dist.log_prob(logits, a)), want_a, rtol=1e-5)


def test_score_function_gradient_is_onehot_minus_softmax():
    logits = _random_logits(DIST, seed=2)
    actions = np.array([[4, 2], [10, 9]])  # (op, level) at steps 0 and 1
    grad = np.asarray(jax.grad(DIST.log_prob)(logits, actions))
    softmax = np.exp(_np_log_softmax(logits))
    want = -softmax
    want[0, 4 * 11 + 2] += 1.0
    want[1, 10 * 11 + 9] += 1.0
    np.testing.assert_allclose(grad, want, atol=1e-6)


def test_entropy_gradient_matches_finite_differences():
    dist = PolicyDistribution(
        op_names=("rotate", "color", "invert"), num_levels=4, num_steps=2
    )
    logits = _random_logits(dist, seed=3)
    grad = np.asarray(jax.grad(dist.entropy)(logits))
    assert np.abs(grad).max() > 1e-2  # non-trivial gradient

    eps = 1e-2
    basis = jnp.eye(logits.size, dtype=jnp.float32).reshape((-1,) + logits.shape)
    plus = jax.vmap(lambda e: dist.entropy(logits + eps * e))(basis)
    minus = jax.vmap(lambda e: dist.entropy(logits - eps * e))(basis)
    fd = np.asarray((plus - minus) / (2 * eps)).reshape(logits.shape)
    np.testing.assert_allclose(grad, fd, atol=2e-3)


def test_entropy_closed_form_uniform_and_decreasing():
    logits = DIST.init_logits()
    h0 = float(DIST.entropy(logits))
    np.testing.assert_allclose(h0, 2 * math.log(14 * 11), rtol=1e-6)
    np.testing.assert_allclose(DIST.max_entropy(), 2 * math.log(154))
    h1 = float(DIST.entropy(logits.at[0, 5].set(2.0)))
    h2 = float(DIST.entropy(logits.at[0, 5].set(4.0)))
    assert h2 < h1 < h0
    # Matches -sum p log p with numpy for random logits.
    rl = _random_logits(DIST, seed=4)
    lp = _np_log_softmax(rl)
    np.testing.assert_allclose(
        float(DIST.entropy(rl)), -(np.exp(lp) * lp).sum(), rtol=1e-5
    )
    # A class masked out with -inf contributes nothing and does not make it nan.
    masked = rl.at[1, 0].set(-jnp.inf)
    assert np.isfinite(float(DIST.entropy(masked)))
    assert np.all(np.isfinite(np.asarray(jax.grad(DIST.entropy)(masked))))


def test_sampling_frequencies_and_step_independence():
    dist = PolicyDistribution(
        op_names=("rotate", "color", "invert", "equalize"), num_levels=3
    )
    rng = np.random.default_rng(5)
    logits = jnp.asarray(rng.normal(size=dist.logits_shape) * 1.2, jnp.float32)
    n = 20000
    actions = np.asarray(
        jax.jit(dist.sample, static_argnames="shape")(
            jax.random.key(5), logits, shape=(n,)
        )
    )
    probs = np.asarray(dist.probs(logits), np.float64).reshape(2, -1)
    index = actions[..., 0] * dist.num_levels + actions[..., 1]  # [n, 2]
    for t in range(2):
        freq = np.bincount(index[:, t], minlength=dist.num_classes) / n
        tol = 4 * np.sqrt(probs[t] * (1 - probs[t]) / n) + 1e-4
        assert np.all(np.abs(freq - probs[t]) < tol), (t, freq, probs[t])

    # Joint frequency of (step-0 op, step-1 op) is the product of the marginals.
    op_p = np.asarray(dist.probs(logits), np.float64).sum(axis=-1)  # [2, num_ops]
    joint = np.zeros((dist.num_ops, dist.num_ops))
    np.add.at(joint, (actions[:, 0, 0], actions[:, 1, 0]), 1.0)
    joint /= n
    product = np.outer(op_p[0], op_p[1])
    tol = 4 * np.sqrt(product * (1 - product) / n) + 1e-4
    assert np.all(np.abs(joint - product) < tol), (joint, product)


def test_reinforce_learns_to_pick_rotate_first():
    dist = DIST
    rotate = dist.op_index("rotate")
    n_samples, n_iters, lr = 256, 100, 20.0

    def reward(actions):
        return (actions[:, 0, 0] == rotate).astype(jnp.float32)

    def step(i, carry):
        logits, key = carry
        key, sub = jax.random.split(key)
        actions = dist.sample(sub, logits, shape=(n_samples,))
        r = reward(actions)
        # Score-function estimator: mean over samples of r * grad log p(a).
        grad = jax.grad(lambda l: jnp.mean(r * dist.log_prob(l, actions)))(logits)
        return logits + lr * grad, key

    @jax.jit
    def train(key):
        return jax.lax.fori_loop(0, n_iters, step, (dist.init_logits(), key))[0]

    logits = train(jax.random.key(6))
    p_rotate = float(dist.probs(logits)[0, rotate].sum())
    assert p_rotate > 0.9, p_rotate
    # Step 1 carries no reward signal, so its op marginal stays close to uniform.
    p1 = np.asarray(dist.probs(logits)[1].sum(axis=-1))
    assert p1.max() < 0.5


def test_jit_vmap_and_pytree():
    logits = _random_logits(DIST, seed=7)
    actions = DIST.sample(jax.random.key(7), logits, shape=(8,))
    want = DIST.log_prob(logits, actions)
    np.testing.assert_allclose(jax.jit(DIST.log_prob)(logits, actions), want, rtol=1e-6)

    # The distribution itself is a leafless pytree and passes through jit as an argument.
    assert jax.tree_util.tree_leaves(DIST) == []
    f = jax.jit(lambda d, l, a: d.log_prob(l, a) + d.entropy(l))
    np.testing.assert_allclose(
        f(DIST, logits, actions), want + DIST.entropy(logits), rtol=1e-6
    )

    # vmap over a batch of logits (e.g. one distribution per example).
    batch = jnp.stack([logits, 2 * logits, DIST.init_logits()])
    ent = jax.vmap(DIST.entropy)(batch)
    np.testing.assert_allclose(ent[1], DIST.entropy(2 * logits), rtol=1e-6)
    lp = jax.vmap(DIST.log_prob, in_axes=(0, None))(batch, actions[0])
    np.testing.assert_allclose(lp[0], want[0], rtol=1e-6)
    samples = jax.vmap(lambda l: DIST.sample(jax.random.key(8), l, shape=(5,)))(batch)
    assert samples.shape == (3, 5, 2, 2)
    np.testing.assert_array_equal(
        samples[0], DIST.sample(jax.random.key(8), logits, shape=(5,))
    )


def test_describe_and_mode():
    dist = PolicyDistribution(op_names=("rotate", "color"), num_levels=11, num_steps=2)
    a = np.array([[0, 3], [1, 10]])
    assert dist.describe(a) == (("rotate", 3), ("color", 10))
    batch = np.stack([a, a[::-1]])
    assert dist.describe(batch) == [
        (("rotate", 3), ("color", 10)),
        (("color", 10), ("rotate", 3)),
    ]
    logits = dist.init_logits().at[0, 1 * 11 + 4].set(3.0).at[1, 0 * 11 + 9].set(3.0)
    assert dist.describe(dist.mode(logits)) == (("color", 4), ("rotate", 9))
    np.testing.assert_array_equal(
        dist.actions_from_index(dist.joint_index(batch)), batch
    )


def test_errors():
    with pytest.raises(ValueError, match=r"expected logits of shape \(2, 154\)"):
        DIST.log_prob(jnp.zeros((154,)), np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match=r"\(2, 154\)"):
        DIST.sample(jax.random.key(0), jnp.zeros((2, 14, 11)))
    with pytest.raises(ValueError, match=r"\(2, 154\)"):
        DIST.entropy(jnp.zeros((3, 154)))
    with pytest.raises(ValueError, match=r"\(2, 154\)"):
        DIST.probs(jnp.zeros((2, 150)))
    with pytest.raises(ValueError, match="floating"):
        DIST.entropy(jnp.zeros((2, 154), jnp.int32))

    logits = DIST.init_logits()
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, 2\]"):
        DIST.log_prob(logits, np.zeros((3, 2), np.int32))
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, 2\]"):
        DIST.log_prob(logits, np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match="integers"):
        DIST.log_prob(logits, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"op indices must be in \[0, 14\)"):
        DIST.log_prob(logits, np.array([[14, 0], [0, 0]]))
    with pytest.raises(ValueError, match=r"levels must be in \[0, 11\)"):
        DIST.log_prob(logits, np.array([[0, 0], [0, 11]]))
    with pytest.raises(ValueError, match=r"op indices"):
        DIST.describe(np.array([[-1, 0], [0, 0]]))
    # Static shape checks still fire under jit; values cannot be checked there.
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, 2\]"):
        jax.jit(DIST.log_prob)(logits, jnp.zeros((4, 3, 2), jnp.int32))
    with pytest.raises(TypeError, match="outside jit"):
        jax.jit(lambda a: DIST.describe(a) and 0)(jnp.zeros((2, 2), jnp.int32))

    with pytest.raises(ValueError, match="unknown augmentation op"):
        PolicyDistribution(op_names=("rotate", "warp"))
    with pytest.raises(ValueError, match="repeat"):
        PolicyDistribution(op_names=("rotate", "rotate"))
    with pytest.raises(ValueError, match="at least one"):
        PolicyDistribution(op_names=())
    with pytest.raises(TypeError, match="string"):
        PolicyDistribution(op_names="rotate")
    with pytest.raises(ValueError, match="num_levels"):
        PolicyDistribution(num_levels=0)
    with pytest.raises(ValueError, match="num_steps"):
        PolicyDistribution(num_steps=1.5)
    with pytest.raises(ValueError, match="not one of"):
        DIST.op_index("invert")
