"""Cost of one Deep Co-Training step against the plain supervised step, same device, same run.

  python bench/dct_cost.py [--model=wrn-10-1] [--batch=32] [--unlabelled=32] [--steps=5]

The DCT step (`jaxaug.methods.deep_co_training`) trains two networks. Per view it runs training
passes on its labelled batch b and the unlabelled batch u, one FGSM pass (forward and input
gradient, evaluation mode) on b + u, and training passes of the other view's adversarial
examples (b + u), all backward except the FGSM: its *floor* is 2 views x 3 x (b + u) images
forward and backward, over the supervised step's b, i.e. 6 (b + u) / b baselines (12 for
u = b). The *measured floor* times the supervised step on the batch sizes the passes really
have (b and u), 6 x (t(b) + t(u)), since CPU convolutions are not linear in the batch size. The
steps are timed interleaved (supervised, DCT, supervised, ...) and the medians kept. Prints a
RESULT line with the ratios.
"""

import statistics
import time

import jax
import optax
from absl import app, flags
from timing import batch_of, compiled_step

from jaxaug import methods, models
from jaxaug.methods import deep_co_training as dct

_MODEL = flags.DEFINE_string("model", "wrn-10-1", "Target network (both views).")
_BATCH = flags.DEFINE_integer("batch", 32, "Labelled batch per view (the supervised batch).")
_UNLABELLED = flags.DEFINE_integer("unlabelled", 32, "Unlabelled batch per step.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps (median kept).")


def _compiled(method, batch):
    """[the jitted step, its state after one compiling call, the batch]."""
    return [*compiled_step(method, batch), batch]


def _time_one(entry, i):
    step, state, batch = entry
    start = time.perf_counter()
    entry[1], metrics = step(state, batch, jax.random.key(2 + i))
    jax.block_until_ready((entry[1], metrics))
    return time.perf_counter() - start


def main(argv):
    del argv
    b, u, steps = _BATCH.value, _UNLABELLED.value, _STEPS.value
    model = models.create(_MODEL.value, num_classes=10)
    optimizer = optax.sgd(0.05, momentum=0.9, nesterov=True)
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}); {_MODEL.value}, labelled batch "
          f"{b} per view, unlabelled {u}, median of {steps} interleaved steps")
    supervised = methods.supervised(model, optimizer)
    labelled, second, unlabelled = batch_of(b), batch_of(b, seed=1), batch_of(u, seed=2)
    batch = {**labelled, "image_labelled": second["image"], "label_labelled": second["label"],
             "image_unlabelled": unlabelled["image"]}
    method = dct.deep_co_training(model, optimizer, steps_per_epoch=100, batch_size=b,
                                  unlabelled_batch_size=u)
    # Interleaved, so that a load that changes during the run (a shared host) hits both alike.
    entries = {"b": _compiled(supervised, labelled), "dct": _compiled(method, batch)}
    if u != b:
        entries["u"] = _compiled(supervised, unlabelled)
    times = {name: [] for name in entries}
    for i in range(steps):
        for name, entry in entries.items():
            times[name].append(_time_one(entry, i))
    t = {name: statistics.median(v) for name, v in times.items()}
    t.setdefault("u", t["b"])
    floor = 6 * (b + u) / b
    measured_floor = 6 * (t["b"] + t["u"])
    step = t["dct"]
    print(f"supervised b={b}: {t['b'] * 1e3:.1f} ms" + (
        f", u={u}: {t['u'] * 1e3:.1f} ms" if u != b else ""))
    print(f"DCT step: {step * 1e3:.1f} ms = {step / t['b']:.2f}x the supervised step, "
          f"{step / t['b'] / floor:.2f}x its floor ({floor:g}x), "
          f"{step / measured_floor:.2f}x its measured floor")
    print(f"RESULT device={device.platform} model={_MODEL.value} b={b} u={u} "
          f"supervised_ms={t['b'] * 1e3:.1f} dct_ms={step * 1e3:.1f} "
          f"dct_over_supervised={step / t['b']:.3g} dct_over_floor={step / t['b'] / floor:.3g} "
          f"dct_over_measured_floor={step / measured_floor:.3g}")


if __name__ == "__main__":
    app.run(main)
