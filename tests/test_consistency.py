"""The Jensen-Shannon consistency equals its definition, is 0 for identical views, is symmetric,
and its gradient matches finite differences; the objective adds it to the clean cross-entropy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxaug.objectives.consistency import (
    consistency_objective,
    jensen_shannon_consistency,
)

pytestmark = pytest.mark.usefixtures("unoptimized_xla")


def _js_numpy(*logits):
    p = [np.exp(x - x.max(-1, keepdims=True)) for x in map(np.asarray, logits)]
    p = [q / q.sum(-1, keepdims=True) for q in p]
    m = np.clip(sum(p) / len(p), 1e-7, 1)
    return np.mean([np.sum(q * (np.log(q) - np.log(m)), -1).mean() for q in p])


def test_js_equals_its_definition_and_vanishes_for_identical_views():
    rng = np.random.default_rng(0)
    a, b, c = (jnp.asarray(rng.normal(0, 2, (5, 4)), jnp.float32) for _ in range(3))
    np.testing.assert_allclose(jensen_shannon_consistency(a, b, c), _js_numpy(a, b, c), rtol=1e-5)
    np.testing.assert_allclose(jensen_shannon_consistency(a, b), jensen_shannon_consistency(b, a),
                               rtol=1e-6)
    assert float(jensen_shannon_consistency(a, a, a)) == pytest.approx(0.0, abs=1e-7)
    # Two one-hot-like views on different classes: JS -> log 2.
    sharp = jnp.asarray([[40.0, 0.0]]), jnp.asarray([[0.0, 40.0]])
    assert float(jensen_shannon_consistency(*sharp)) == pytest.approx(np.log(2), rel=1e-4)


def test_js_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    a, b = (jnp.asarray(rng.normal(size=(2, 3)), jnp.float32) for _ in range(2))
    grad = jax.grad(lambda x: jensen_shannon_consistency(x, b))(a)
    eps = 1e-3
    for idx in np.ndindex(a.shape):
        delta = jnp.zeros_like(a).at[idx].set(eps)
        fd = (jensen_shannon_consistency(a + delta, b) - jensen_shannon_consistency(a - delta, b))
        np.testing.assert_allclose(grad[idx], fd / (2 * eps), rtol=2e-2, atol=1e-5)


def test_objective_is_clean_cross_entropy_plus_weighted_js():
    class Tiny(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            x = nn.BatchNorm(use_running_average=not train)(x.reshape(x.shape[0], -1))
            return nn.Dense(3)(x)

    rng = np.random.default_rng(2)
    images = jnp.asarray(rng.normal(size=(4, 2, 2, 1)), jnp.float32)
    views = [images + 0.5, images * 2.0]
    batch = {"image": images, "views": views, "label": jnp.asarray([0, 1, 2, 1])}
    model = Tiny()
    variables = model.init(jax.random.key(0), images, train=False)
    loss, aux = consistency_objective(variables["params"], batch, model=model,
                                      batch_stats=variables["batch_stats"], weight=12.0)
    logits, _ = model.apply(variables, jnp.concatenate([images, *views]), train=True,
                            mutable=["batch_stats"])
    clean, v1, v2 = logits[:4], logits[4:8], logits[8:]
    ce = -np.mean(np.take_along_axis(np.asarray(jax.nn.log_softmax(clean)),
                                     np.asarray(batch["label"])[:, None], -1))
    np.testing.assert_allclose(aux["cross_entropy"], ce, rtol=1e-5)
    np.testing.assert_allclose(loss, ce + 12.0 * _js_numpy(clean, v1, v2), rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2 views"):
        jensen_shannon_consistency(clean)


def _cnsn_wrn(cn_prob):
    from jaxaug.models import WideResNet
    from jaxaug.models.norm import CNSNPlacement
    return WideResNet(depth=10, widen_factor=1, num_classes=4,
                      cnsn=CNSNPlacement(crossnorm=True, cn_prob=cn_prob, cn_active=1,
                                         cn_crop="neither"))


def _state_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_cnsn_consistency_method_branches():
    """Tails is the clean supervised step; heads adds weight x the JS of the three passes
    recomputed here to the clean cross-entropy, and runs two more (CrossNorm) passes through
    BatchNorm. One compiled step (coin probability 0.5) serves both: the keys below are tried
    until each side of the coin has come up."""
    import optax

    from jaxaug.methods import cnsn_consistency, supervised
    from jaxaug.objectives.classification import model_rngs
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.normal(size=(6, 16, 16, 3)), jnp.float32),
             "label": jnp.asarray([0, 1, 2, 3, 0, 1])}
    optimizer = optax.sgd(0.1)
    # The network's own cn_prob only matters when it samples its gates (crossnorm="sample", as
    # in the supervised step): 0 keeps CrossNorm off there. The consistency objective switches
    # it "off" / "on" per pass, so the model's value is irrelevant to the method's step.
    clean_model, model = _cnsn_wrn(0.0), _cnsn_wrn(1.0)
    state = jax.jit(supervised(clean_model, optimizer).init)(jax.random.key(0), batch)
    step = jax.jit(cnsn_consistency(model, optimizer, cn_prob=0.5, weight=10.0).step)
    supervised_step = jax.jit(supervised(clean_model, optimizer).step)
    sides = {}
    for i in range(32):
        key = jax.random.fold_in(jax.random.key(5), i)
        new, metrics = step(state, batch, key)
        sides.setdefault(float(metrics["crossnorm_step"]), (key, new, metrics))
        if len(sides) == 2:
            break
    assert set(sides) == {0.0, 1.0}

    key, tails, m_tails = sides[0.0]
    clean, m_clean = supervised_step(state, batch, key)
    assert float(m_tails["consistency"]) == 0
    assert _state_diff(tails, clean) < 1e-6

    key, heads, m_heads = sides[1.0]
    clean, m_clean = supervised_step(state, batch, key)
    np.testing.assert_allclose(float(m_heads["cross_entropy"]), float(m_clean["loss"]),
                               rtol=1e-5)
    assert _state_diff(heads.batch_stats, clean.batch_stats) > 1e-4
    assert _state_diff(heads.params, clean.params) > 1e-6

    # The consistency, recomputed from the three passes the objective makes (one jitted program).
    @jax.jit
    def passes(key):
        stats, logits = state.batch_stats, []
        for i, switch in enumerate(("off", "on", "on")):
            out, updates = model.apply({"params": state.params, "batch_stats": stats},
                                       batch["image"], train=True, crossnorm=switch,
                                       rngs=model_rngs(jax.random.fold_in(key, i)),
                                       mutable=["batch_stats"])
            stats, logits = updates["batch_stats"], logits + [out]
        return stats, logits

    stats, logits = passes(jax.random.split(key)[1])
    js = _js_numpy(*logits)
    assert js > 1e-5
    np.testing.assert_allclose(float(m_heads["consistency"]), js, rtol=1e-3)
    np.testing.assert_allclose(float(m_heads["loss"]), float(m_clean["loss"]) + 10 * js,
                               rtol=1e-4)
    assert _state_diff(heads.batch_stats, stats) < 1e-6  # the statistics after all three passes
