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

  python bench/quant_cost.py --memory [--unets=8 --depth=4 --image=256 --batch=16 --stem_stride=4]

compiles the training step only (nothing is initialised or run, so CU-Net-8 at 256 px fits a
small machine) for fp, 818 and 818 with int8 residuals ("818+int8"), each with memory_efficient
off and on, and 818+int8 with memory_efficient="int8_codes" (each U-Net saves only its int8
codes). It prints XLA's memory analysis of the compiled step in MiB (argument, output, alias,
temp, total = argument + output + temp - alias) and the JAX-level residuals of the loss's vjp
(float32 / int8 / bool MiB): the residuals are what the forward pass keeps for the backward pass
whatever the scheduler does; temp is what this backend's compiled schedule needs.
"""

import jax
from absl import app, flags

from jaxaug import quant
from jaxaug.eval.quant_costs import compiled_memory, measure

_UNETS = flags.DEFINE_integer("unets", 2, "Number of coupled U-Nets.")
_DEPTH = flags.DEFINE_integer("depth", 3, "Down/up levels per U-Net.")
_IMAGE = flags.DEFINE_integer("image", 64, "Square input size.")
_BATCH = flags.DEFINE_integer("batch", 8, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per variant (median kept).")
_QUICK = flags.DEFINE_bool("quick", False, "Two U-Nets of depth 2, 32x32, batch 2, 1 step.")
_STEM = flags.DEFINE_integer("stem_stride", 2, "CU-Net stem stride (4 in the thesis at 256 px).")
_MEMORY = flags.DEFINE_bool("memory", False, "Compile-only memory table (see the docstring).")

# The remat-free ones first, each variant's line as soon as it has compiled.
MEMORY_VARIANTS = (("fp", False), ("818", False), ("818+int8", False), ("818+int8", "int8_codes"),
                   ("fp", True), ("818", True), ("818+int8", True))


def memory_table(common):
    mib = 2.0**-20
    print(f"{'setting':>9} {'mem_eff':>10} {'argument':>9} {'output':>8} {'alias':>8} "
          f"{'temp':>9} {'total':>9} {'res f32':>8} {'res int8':>8} {'res bool':>8} "
          f"{'res all':>8}")
    result, base = [], None
    for setting, memory_efficient in MEMORY_VARIANTS:
        m = compiled_memory("cunet", setting, memory_efficient=memory_efficient, **common)
        r = m.residual_bytes
        residuals = sum(r.values())
        base = base or (m.temp_bytes, residuals)
        print(f"{setting:>9} {str(memory_efficient):>10} {m.argument_bytes * mib:9.1f} "
              f"{m.output_bytes * mib:8.1f} {m.alias_bytes * mib:8.1f} {m.temp_bytes * mib:9.1f} "
              f"{m.total_bytes * mib:9.1f} {r.get('float32', 0) * mib:8.1f} "
              f"{r.get('int8', 0) * mib:8.1f} {r.get('bool', 0) * mib:8.1f} {residuals * mib:8.1f}",
              flush=True)
        name = f"{setting}_{'codes' if memory_efficient == 'int8_codes' else int(memory_efficient)}"
        result += [f"{name}_temp={m.temp_bytes / base[0]:.3g}",
                   f"{name}_residuals={residuals / base[1]:.3g}"]
    print("RESULT device=" + jax.devices()[0].platform + " " + " ".join(result))


def main(argv):
    del argv
    unets, depth, image, batch, steps = (_UNETS.value, _DEPTH.value, _IMAGE.value, _BATCH.value,
                                         _STEPS.value)
    if _QUICK.value:
        unets, depth, image, batch, steps = 2, 2, 32, 2, 1
    if _MEMORY.value:
        print(f"CU-Net: {unets} U-Nets, depth {depth}, {image}x{image}, batch {batch}, stem stride "
              f"{_STEM.value}; compile only; MiB")
        memory_table({"image_size": image, "batch_size": batch, "num_unets": unets,
                      "depth": depth, "stem_stride": _STEM.value})
        return
    common = {"image_size": image, "batch_size": batch, "time_steps": steps, "num_unets": unets,
              "depth": depth, "stem_stride": _STEM.value}
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
