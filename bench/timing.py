"""Shared by the bench scripts: the median time of a method's jitted step, and random batches."""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def seconds_per_step(method, batch, steps):
    """Median seconds of the jitted step, after one compiling call."""
    step = jax.jit(method.step, donate_argnums=0)
    state = jax.jit(method.init)(jax.random.key(0), batch)  # distinct buffers, safe to donate
    state, _ = step(state, batch, jax.random.key(1))
    jax.block_until_ready(state)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        state, metrics = step(state, batch, jax.random.key(2 + i))
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def batch_of(size, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.normal(size=(size, 32, 32, 3)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 10, size), jnp.int32)}
