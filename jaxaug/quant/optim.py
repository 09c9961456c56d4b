"""Clamping binary and ternary master weights to [-1, 1] after every optimizer step.

A binary layer computes with sign(clip(w, -1, 1)) (Tang thesis, sec. 5.3.5, eq. 5.5) and its
clipped straight-through gradient is zero for |w| > 1 (`jaxaug.quant.binarize`; the ternary one
likewise): a master weight that an update pushes past 1 gets no gradient from then on and its
value is frozen. The official quantized CU-Net code therefore clamps the master weights of every
binarized or ternarized conv before every forward pass, i.e. after every update.
`clamp_quantized_kernels` is that clamp as the last optax transformation of a chain:

    u' = clip(w + u, -1, 1) - w   on the kernels of binary and ternary layers,   u' = u elsewhere,

so that `optax.apply_updates` lands on clip(w + u, -1, 1) (to the last ulp, which the next step's
clamp removes). Full-precision layers (a network's first and last) and every other parameter are
left alone. The official code clamps to WAGE's [-1 + sigma, 1 - sigma] of the gradient bits (so
[-1, 1] without gradient quantization) and also subtracts each filter's mean over its input
channels before every forward pass; neither is in the thesis, and neither is done here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util


def quantized_kernel_mask(model, *args, **kwargs):
    """A boolean pytree shaped like ``model``'s params: True at the kernels of its binary and
    ternary layers.

    Found without compiling: `jax.eval_shape` of ``model.init`` and of ``model.apply`` with the
    ``'quantized'`` collection mutable, where every binary or ternary `QuantConv` / `QuantDense`
    sows its ``binary_codes`` / ``ternary_codes``. ``args`` / ``kwargs`` are the model's call arguments (arrays or
    `jax.ShapeDtypeStruct`s), e.g. ``(images, train=False)``.
    """
    variables = jax.eval_shape(lambda *a: model.init(jax.random.key(0), *a, **kwargs), *args)
    _, state = jax.eval_shape(
        lambda v, *a: model.apply(v, *a, mutable=["quantized"], **kwargs), variables, *args)
    quantized = {path[:-1] for path in traverse_util.flatten_dict(state.get("quantized", {}))
                 if path[-1] in ("binary_codes", "ternary_codes")}
    flat = traverse_util.flatten_dict(variables["params"])
    return traverse_util.unflatten_dict(
        {path: path[:-1] in quantized and path[-1] == "kernel" for path in flat})


def clamp_weights(mask, low: float = -1.0, high: float = 1.0) -> optax.GradientTransformation:
    """Updates that land the ``mask``-ed parameters on clip(w + u, low, high) (module docstring);
    the last transformation of a chain. ``mask`` is a boolean pytree shaped like the params."""
    if not low < high:
        raise ValueError(f"clamp_weights: low must be < high, got low={low}, high={high}")

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("clamp_weights: the update needs params (optax passes them when the "
                             "optimizer's update is called with params=...)")
        clamped = jax.tree.map(
            lambda m, u, w: jnp.clip(w + u, low, high) - w if m else u, mask, updates, params)
        return clamped, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def clamp_quantized_kernels(model, *args, **kwargs) -> optax.GradientTransformation:
    """`clamp_weights` to [-1, 1] on the kernels of ``model``'s binary and ternary layers
    (`quantized_kernel_mask`; ``args`` / ``kwargs`` as there)."""
    return clamp_weights(quantized_kernel_mask(model, *args, **kwargs))
