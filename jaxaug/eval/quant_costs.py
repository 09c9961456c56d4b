"""Measured costs of a keypoint model under a quantization setting: the compiled training step's
memory, the packed model size, and the step time.

Memory comes from XLA's analysis of the compiled step (`Compiled.memory_analysis()`):
``temp`` is the step's working memory (activations kept for the backward pass, gradients,
intermediate buffers) and ``total = argument + output + temp - alias`` what the step holds at
once. ``residual_bytes`` is what the forward pass keeps for the backward pass at the JAX level
(the residuals of `jax.vjp` of the training loss): it shows what rematerialization saves even where
XLA's scheduler does not turn that into a lower peak (XLA:CPU, see docs/benchmarks.md).
Sizes come from `jaxaug.quant.pack_model`, i.e. the bytes of the stored arrays; the quantized
kernels' own ratio (packed bits and scales over their float32 bytes) is reported apart from the
whole model's, which also holds the full-precision first and last layers, BatchNorm and biases.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxaug import models, quant
from jaxaug.methods.pose import heatmap_regression, heatmap_size, pose_inputs, torch_rmsprop
from jaxaug.objectives import heatmap_objective


@dataclasses.dataclass
class Costs:
    temp_bytes: int
    total_bytes: int
    residual_bytes: int
    packed_bytes: int
    float_bytes: int
    packed_kernel_bytes: int
    float_kernel_bytes: int
    step_s: float | None = None


def _toy_batch(batch_size, image_size, num_joints, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8),
        "joints": rng.uniform(4, image_size - 4, (batch_size, num_joints, 2)).astype(np.float32),
        "visible": np.ones((batch_size, num_joints), bool),
    }


def measure(model_name: str, setting: str, *, num_joints: int = 16, image_size: int = 64,
            batch_size: int = 8, time_steps: int = 0, **model_kwargs) -> Costs:
    """Costs of one training step of ``model_name`` quantized by ``setting`` (RMSProp, the
    heatmap objective with random augmentation). ``time_steps`` > 0 also times that many steps
    after one warm-up step (median of per-step times)."""
    model = models.create_pose_model(model_name, num_joints, quant=setting, **model_kwargs)
    optimizer = torch_rmsprop(2.5e-4, 0.99, 1e-8)
    # No left/right pairs: the random joints of the toy batch have no sides to swap.
    method = heatmap_regression(model, optimizer, image_shape=(image_size, image_size, 3),
                                flip_pairs=())
    batch = jax.tree.map(jnp.asarray, _toy_batch(batch_size, image_size, num_joints))
    state = jax.jit(method.init)(jax.random.key(0), batch)
    step = jax.jit(method.step, donate_argnums=0)
    key = jax.random.key(1)
    compiled = step.lower(state, batch, key).compile()
    stats = compiled.memory_analysis()
    total = (stats.argument_size_in_bytes + stats.output_size_in_bytes
             + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
    images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    packed = quant.pack_model(model, variables, images, train=False)
    inputs = pose_inputs(None, batch, sigma=1.0, flip_pairs=(), augment=False,
                         out_size=heatmap_size(model, (image_size, image_size, 3)))

    def loss(params):
        return heatmap_objective(params, inputs, model=model, batch_stats=state.batch_stats,
                                 key=key)[0]

    residuals = jax.tree.leaves(jax.eval_shape(lambda p: jax.vjp(loss, p)[1], state.params))
    costs = Costs(
        temp_bytes=int(stats.temp_size_in_bytes), total_bytes=int(total),
        residual_bytes=sum(r.size * r.dtype.itemsize for r in residuals),
        packed_bytes=packed.nbytes, float_bytes=quant.float_nbytes(state.params),
        packed_kernel_bytes=sum(k.nbytes for k in packed.kernels.values()),
        float_kernel_bytes=sum(4 * int(np.prod(k.shape)) for k in packed.kernels.values()))
    if time_steps:
        state, _ = compiled(state, batch, key)
        jax.block_until_ready(state)
        times = []
        for i in range(time_steps):
            start = time.perf_counter()
            state, metrics = compiled(state, batch, jax.random.fold_in(key, i))
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
        costs.step_s = float(np.median(times))
    return costs


@dataclasses.dataclass
class CompiledMemory:
    """XLA's memory analysis of a compiled training step, and the forward pass's residuals."""

    argument_bytes: int
    output_bytes: int
    alias_bytes: int
    temp_bytes: int
    residual_bytes: dict[str, int]  # by dtype name

    @property
    def total_bytes(self) -> int:
        return self.argument_bytes + self.output_bytes + self.temp_bytes - self.alias_bytes


def compiled_memory(model_name: str, setting: str, *, num_joints: int = 16,
                    image_size: int = 64, batch_size: int = 8, **model_kwargs) -> CompiledMemory:
    """`measure`'s training step, compiled only: nothing is initialised or run (the state is
    abstract), so a model of any size costs one compilation. Residuals are counted per dtype."""
    model = models.create_pose_model(model_name, num_joints, quant=setting, **model_kwargs)
    method = heatmap_regression(model, torch_rmsprop(2.5e-4, 0.99, 1e-8),
                                image_shape=(image_size, image_size, 3), flip_pairs=())
    batch = jax.tree.map(jnp.asarray, _toy_batch(batch_size, image_size, num_joints))
    key = jax.random.key(1)
    state = jax.eval_shape(method.init, jax.random.key(0), batch)
    stats = jax.jit(method.step, donate_argnums=0).lower(state, batch, key).compile(
        ).memory_analysis()
    images = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), jnp.float32)
    out_size = heatmap_size(model, (image_size, image_size, 3))
    heatmaps = jax.ShapeDtypeStruct((batch_size, *out_size, num_joints), jnp.float32)

    def loss(params, batch_stats, images, targets):
        maps, _ = model.apply({"params": params, "batch_stats": batch_stats}, images,
                              train=True, mutable=["batch_stats"])
        return jnp.mean((maps - targets[None]) ** 2)

    residuals = jax.tree.leaves(jax.eval_shape(
        lambda p, *rest: jax.vjp(lambda q: loss(q, *rest), p)[1], state.params,
        state.batch_stats, images, heatmaps))
    by_dtype: dict[str, int] = {}
    for r in residuals:
        by_dtype[r.dtype.name] = by_dtype.get(r.dtype.name, 0) + r.size * r.dtype.itemsize
    return CompiledMemory(int(stats.argument_size_in_bytes), int(stats.output_size_in_bytes),
                          int(stats.alias_size_in_bytes), int(stats.temp_size_in_bytes), by_dtype)
