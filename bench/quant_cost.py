"""Quantized versus full-precision CU-Net: step time, compiled training memory and packed model
size, each as a ratio to the full-precision model measured in the same run.

  python bench/quant_cost.py [--unets=2] [--depth=3] [--image=64] [--batch=8] [--steps=5] [--quick]

For every setting in `jaxaug.quant.SETTINGS`, and for the memory-efficient (rematerialising)
full-precision CU-Net, as ratios to the full-precision CU-Net: the median step time; the compiled
step's working memory (XLA temp bytes) and total memory; the bytes the forward pass keeps for the
backward pass (JAX-level vjp residuals); the packed model bytes, and the packed bytes of the
quantized kernels alone over their float32 bytes. Quantization is simulated on float hardware
(quantize, then compute in float32), so it is not expected to save time or memory; the packed
size is real storage.
"""

import jax
from absl import app, flags

from jaxaug import quant
from jaxaug.eval.quant_costs import measure

_UNETS = flags.DEFINE_integer("unets", 2, "Number of coupled U-Nets.")
_DEPTH = flags.DEFINE_integer("depth", 3, "Down/up levels per U-Net.")
_IMAGE = flags.DEFINE_integer("image", 64, "Square input size.")
_BATCH = flags.DEFINE_integer("batch", 8, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per variant (median kept).")
_QUICK = flags.DEFINE_bool("quick", False, "Two U-Nets of depth 2, 32x32, batch 2, 1 step.")


def main(argv):
    del argv
    unets, depth, image, batch, steps = (_UNETS.value, _DEPTH.value, _IMAGE.value, _BATCH.value,
                                         _STEPS.value)
    if _QUICK.value:
        unets, depth, image, batch, steps = 2, 2, 32, 2, 1
    common = {"image_size": image, "batch_size": batch, "time_steps": steps, "num_unets": unets,
              "depth": depth, "stem_stride": 2}
    variants = {name: measure("cunet", name, **common) for name in quant.SETTINGS}
    variants["fp_memory_efficient"] = measure("cunet", "fp", memory_efficient=True, **common)
    base = variants["fp"]
    print(f"CU-Net: {unets} U-Nets, depth {depth}, {image}x{image}, batch {batch}; full precision: "
          f"{base.step_s * 1e3:.1f} ms/step, temp {base.temp_bytes / 2**20:.1f} MiB, total "
          f"{base.total_bytes / 2**20:.1f} MiB, {base.float_bytes / 2**20:.2f} MiB of parameters")
    print(f"{'variant':>20} {'time':>6} {'temp mem':>9} {'total mem':>10} {'residuals':>10} "
          f"{'size':>8} {'kernels':>8}")
    result = []
    for name, c in variants.items():
        kernels = c.packed_kernel_bytes / c.float_kernel_bytes if c.float_kernel_bytes else 1.0
        ratios = (c.step_s / base.step_s, c.temp_bytes / base.temp_bytes,
                  c.total_bytes / base.total_bytes, c.residual_bytes / base.residual_bytes,
                  c.packed_bytes / base.packed_bytes, kernels)
        print(f"{name:>20} {ratios[0]:6.2f} {ratios[1]:9.3f} {ratios[2]:10.3f} {ratios[3]:10.3f} "
              f"{ratios[4]:8.4f} {ratios[5]:8.4f}")
        result += [f"{name}_time={ratios[0]:.3g}", f"{name}_total_mem={ratios[2]:.3g}",
                   f"{name}_residuals={ratios[3]:.3g}", f"{name}_size={ratios[4]:.4g}"]
    print("RESULT device=" + jax.devices()[0].platform + " " + " ".join(result))


if __name__ == "__main__":
    app.run(main)
