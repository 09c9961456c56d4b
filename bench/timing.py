"""Shared by the bench scripts: the median or mean time of a method's jitted step, and random
batches."""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def compiled_step(method, batch):
    """(the jitted step, its state after one compiling call on ``batch``)."""
    step = jax.jit(method.step, donate_argnums=0)
    state = jax.jit(method.init)(jax.random.key(0), batch)  # distinct buffers, safe to donate
    state, _ = step(state, batch, jax.random.key(1))
    jax.block_until_ready(state)
    return step, state


def seconds_per_step(method, batch, steps):
    """Median seconds of the jitted step, after one compiling call."""
    step, state = compiled_step(method, batch)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        state, metrics = step(state, batch, jax.random.key(2 + i))
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mean_seconds_per_step(method, batch, steps):
    """Mean seconds of ``steps`` consecutive jitted steps, after one compiling call: for methods
    whose steps differ in cost (an update every few steps), where a median would hide some."""
    step, state = compiled_step(method, batch)
    start = time.perf_counter()
    for i in range(steps):
        state, metrics = step(state, batch, jax.random.key(2 + i))
    jax.block_until_ready((state, metrics))
    return (time.perf_counter() - start) / steps


def batch_of(size, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.normal(size=(size, 32, 32, 3)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 10, size), jnp.int32)}
