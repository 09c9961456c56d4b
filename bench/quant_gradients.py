"""What WAGE-style gradient quantization keeps of a small CU-Net's kernel gradients, and how many
BN-ReLU features the feature quantizer saturates.

  python bench/quant_gradients.py [--setting=818] [--unets=2] [--depth=2] [--image=32] [--batch=8]
                                  [--draws=4]

At one set of parameters (the CU-Net's init with random heads, since zero heads pass no gradient
back) and one batch of synthetic figures, for every quantized conv (the binary / ternary layers):

* the reference is the exact gradient of the same network: the setting's forward pass (quantized
  features and weights, their straight-through estimators) with ``gradient_bits=None``;
* each variant rounds the weight gradient (WAGE's G) to nearest or stochastically, with or without
  quantizing the error flowing back through each layer's output (WAGE's E);
* per layer: ``zeroed``, the fraction of the reference's nonzero kernel-gradient entries that the
  variant makes exactly zero, and ``cos``, the cosine between the variant's and the reference's
  kernel gradient (stochastic variants: the mean over ``--draws`` draws of single-draw cosines).

It also records the inputs of every quantized conv (BN-ReLU outputs, training mode, at init) and
reports, for 8-bit features on [-1, 1] and [-4, 4], with BatchNorm's gamma = 1 and gamma ~ U(0, 1):
the fraction of features that saturate (beyond R·(1 - sigma)) and the relative error
||Q(x) - x|| / ||x||.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import linen as nn
from flax import traverse_util

from jaxaug import objectives, quant
from jaxaug.data import keypoint_synthetic
from jaxaug.methods.pose import heatmap_size, pose_inputs
from jaxaug.models import CUNet

_SETTING = flags.DEFINE_string("setting", "818", "Base setting of jaxaug.quant.SETTINGS.")
_UNETS = flags.DEFINE_integer("unets", 2, "Number of coupled U-Nets.")
_DEPTH = flags.DEFINE_integer("depth", 2, "Down/up levels per U-Net.")
_IMAGE = flags.DEFINE_integer("image", 32, "Square input size.")
_BATCH = flags.DEFINE_integer("batch", 8, "Batch size.")
_DRAWS = flags.DEFINE_integer("draws", 4, "Draws per stochastic variant.")

VARIANTS = {  # name: (stochastic_rounding, quantize_error)
    "nearest": (False, False),
    "stochastic": (True, False),
    "nearest+E": (False, True),
    "stochastic+E": (True, True),
}


def model_for(spec, args):
    return CUNet(num_joints=16, num_unets=args["unets"], depth=args["depth"], features=32,
                 growth=8, stem_stride=2, quant=spec)


def gradient_fn(model):
    @jax.jit
    def grads(variables, batch, key):
        def loss(params):
            return objectives.heatmap_objective(params, batch, model=model,
                                                batch_stats=variables["batch_stats"], key=key)[0]
        return jax.grad(loss)(variables["params"])
    return grads


def kernel_stats(reference, quantized):
    """(zeroed, cos) per quantized kernel path."""
    out = {}
    for path, ref in reference.items():
        ref, q = np.asarray(ref, np.float64).ravel(), np.asarray(quantized[path], np.float64).ravel()
        nonzero = ref != 0
        zeroed = float(np.mean(q[nonzero] == 0)) if nonzero.any() else float("nan")
        cos = float(ref @ q / max(np.linalg.norm(ref) * np.linalg.norm(q), 1e-30))
        out[path] = (zeroed, cos)
    return out


def conv_inputs(model, variables, images):
    """The inputs of every quantized QuantConv in a training-mode forward pass."""
    inputs = []

    def record(next_fun, args, kwargs, context):
        module = context.module
        if isinstance(module, quant.QuantConv) and module.spec is not None:
            inputs.append(args[0])
        return next_fun(*args, **kwargs)

    @jax.jit
    def run(variables, images):
        with nn.intercept_methods(record):
            model.apply(variables, images, train=True, mutable=["batch_stats"])
        return jnp.concatenate([x.ravel() for x in inputs])

    return np.asarray(run(variables, images))


def saturation(x, feature_range, bits=8):
    s = quant.sigma(bits)
    q = feature_range * np.asarray(quant.quantize(jnp.asarray(x / feature_range), bits))
    return float(np.mean(np.abs(x) > feature_range * (1 - s))), float(
        np.linalg.norm(q - x) / np.linalg.norm(x))


def main(argv):
    del argv
    args = {"unets": _UNETS.value, "depth": _DEPTH.value}
    base = quant.get_spec(_SETTING.value)
    data = keypoint_synthetic.load("train", num=_BATCH.value, size=_IMAGE.value)
    probe = model_for(base, args)
    image_shape = (_IMAGE.value, _IMAGE.value, 3)
    batch = pose_inputs(None, {"image": data.images, "joints": data.joints,
                               "visible": data.visible}, sigma=1.0, augment=False,
                        out_size=heatmap_size(probe, image_shape), flip_pairs=data.flip_pairs)
    variables = jax.jit(lambda k, x: probe.init(k, x, train=False))(jax.random.key(0),
                                                                     batch["image"])
    params = traverse_util.flatten_dict(variables["params"])
    key = jax.random.key(1)
    for path in params:  # random heads (zero ones pass no gradient back)
        if path[0].startswith("head") and path[-1] == "kernel":
            key, sub = jax.random.split(key)
            params[path] = 0.1 * jax.random.normal(sub, params[path].shape)
    variables = {**variables, "params": traverse_util.unflatten_dict(params)}
    mask = traverse_util.flatten_dict(quant.quantized_kernel_mask(
        probe, jax.ShapeDtypeStruct(batch["image"].shape, jnp.float32), train=False))
    paths = [p for p, m in mask.items() if m]

    def kernels(grads):
        flat = traverse_util.flatten_dict(grads)
        return {p: flat[p] for p in paths}

    exact = dataclasses.replace(base, gradient_bits=None, quantize_error=False)
    reference = kernels(gradient_fn(model_for(exact, args))(variables, batch, jax.random.key(2)))
    print(f"CU-Net {args['unets']} U-Nets, depth {args['depth']}, m 32, n 8, {_IMAGE.value} px, "
          f"batch {_BATCH.value}; setting {_SETTING.value} ({base}); {len(paths)} quantized "
          f"kernels; reference: the same forward with exact gradients")
    summary = {}
    for name, (stochastic, error) in VARIANTS.items():
        spec = dataclasses.replace(base, gradient_bits=base.gradient_bits or 8,
                                   stochastic_rounding=stochastic, quantize_error=error)
        grads = gradient_fn(model_for(spec, args))
        draws = [kernel_stats(reference, kernels(grads(variables, batch, jax.random.key(10 + d))))
                 for d in range(_DRAWS.value if stochastic else 1)]
        per_layer = {p: tuple(np.mean([d[p][i] for d in draws]) for i in range(2)) for p in paths}
        zeroed = np.asarray([v[0] for v in per_layer.values()])
        cos = np.asarray([v[1] for v in per_layer.values()])
        summary[name] = (zeroed, cos)
        print(f"\n{name}: zeroed median {np.median(zeroed):.3f} (min {zeroed.min():.3f}, max "
              f"{zeroed.max():.3f}); cos median {np.median(cos):.4f} (min {cos.min():.4f}, max "
              f"{cos.max():.4f})")
        for p in paths:
            print(f"  {'/'.join(p[:-1]):40s} zeroed {per_layer[p][0]:.3f}  cos {per_layer[p][1]:.4f}")

    sat = {}
    for gamma in ("ones", "uniform"):
        spec = dataclasses.replace(base, bn_scale_init=gamma)
        model = model_for(spec, args)
        v = jax.jit(lambda k, x, m=model: m.init(k, x, train=False))(jax.random.key(0),
                                                                    batch["image"])
        x = conv_inputs(model, v, batch["image"])
        for r in (1.0, 4.0):
            sat[gamma, r] = saturation(x, r)
            print(f"features (BN-ReLU, gamma {gamma}) on [-{r:g}, {r:g}] at 8 bits: "
                  f"{100 * sat[gamma, r][0]:.1f}% saturate, relative error "
                  f"{100 * sat[gamma, r][1]:.2f}%")

    fields = [f"setting={_SETTING.value}"]
    for name, (zeroed, cos) in summary.items():
        fields += [f"{name}_zeroed_median={np.median(zeroed):.3f}",
                   f"{name}_cos_median={np.median(cos):.4f}", f"{name}_cos_min={cos.min():.4f}"]
    for (gamma, r), (frac, err) in sat.items():
        fields += [f"saturated_gamma_{gamma}_r{r:g}={frac:.4f}", f"relerr_gamma_{gamma}_r{r:g}={err:.4f}"]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
