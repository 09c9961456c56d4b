"""Images/s of the baseline (supervised) train step for WRN-28-2 and WRN-28-10 at 32x32.

  python bench/train_throughput.py [--models=wrn-28-2,wrn-28-10] [--batch_size=128] [--steps=N]

The step timed is the trainer's own jitted step (device-side crop/flip/normalize + forward, backward
and SGD update), data-parallel over every local device, on a fixed uint8 batch already on the mesh,
so host input is not part of the figure.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxaug import data, methods, models
from jaxaug.train import base_config, batch_sharding, make_mesh, make_optimizer
from jaxaug.train.steps import compile_steps

_MODELS = flags.DEFINE_list("models", ["wrn-28-2", "wrn-28-10"], "Models to time.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Global batch size.")
_STEPS = flags.DEFINE_integer("steps", None, "Timed steps per model (default: 2 on CPU, 50 otherwise).")
_DTYPE = flags.DEFINE_string("dtype", "float32", "Compute dtype: float32 or bfloat16.")


def time_model(name: str, batch_size: int, steps: int, dtype: str, dataset, mesh) -> float:
    """Seconds per train step, after one step that compiles and warms up."""
    config = base_config()
    config.model, config.batch_size, config.dtype = name, batch_size, dtype
    model = models.create(name, num_classes=10, dtype=dtype)
    method = methods.supervised(model, make_optimizer(config, 1000))
    compiled = compile_steps(method, dataset, config, mesh)
    state = compiled.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    host = {
        "image": rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8),
        "label": rng.integers(0, 10, (batch_size,), dtype=np.int32),
    }
    batch = jax.device_put({k: jnp.asarray(v) for k, v in host.items()}, batch_sharding(mesh))
    state, metrics = compiled.train_step(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled.train_step(state, batch)
    jax.block_until_ready(metrics)
    return (time.perf_counter() - start) / steps


def main(argv):
    del argv
    mesh = make_mesh()
    device = jax.devices()[0]
    steps = _STEPS.value or (2 if device.platform == "cpu" else 50)
    dataset = data.load_dataset("synthetic", reduced=100)
    print(f"devices: {jax.device_count()} x {device.device_kind} ({device.platform}); "
          f"batch {_BATCH.value}; {steps} timed steps; dtype {_DTYPE.value}")
    seconds = {}
    for name in _MODELS.value:
        seconds[name] = time_model(name, _BATCH.value, steps, _DTYPE.value, dataset, mesh)
        print(f"{name:>12}: {seconds[name] * 1e3:9.1f} ms/step  {_BATCH.value / seconds[name]:9.1f} images/s")
    baseline = _MODELS.value[0]
    fields = [f"device={device.device_kind.replace(' ', '_')}", f"devices={jax.device_count()}"]
    for name in _MODELS.value:
        key = name.replace("-", "_")
        fields.append(f"{key}_img_s={_BATCH.value / seconds[name]:.1f}")
        if name != baseline:
            ratio = seconds[name] / seconds[baseline]
            print(f"{name} step / {baseline} step: {ratio:.2f}")
            fields.append(f"{key}_over_{baseline.replace('-', '_')}={ratio:.2f}")
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
