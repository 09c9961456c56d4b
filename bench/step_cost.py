"""Cost of one OnlineAugment iteration against the plain supervised step, same device, same run.

  python bench/step_cost.py [--model=wrn-28-2] [--batch=128] [--steps=3] [--quick]
                           [--variants=astn,pvae,...]

Each variant's *floor* is the number of images the target network processes forward and backward
in one iteration, over the batch size, times the baseline step: A-STN doubles the batch (T(x) and
T^-1(x)) and adds the clean batch, so inner_num 1 has a floor of 3 and inner_num 4 of 4*2 + 1 = 9;
the VAEs have 1 + 1 = 2, and Comb. (all three) 1 + 2 + 1 + 1 = 5 (the clean update comes after
the generated ones, in a call of its own). The meta variant trains the target on the same whole
batch and adds the meta loss on its halves. The script prints each
variant's time over the baseline and over its floor;
the meta variant is also compared with the same variant without meta (target: at most 2x).
With --measured_floor (default) it also prints each time over a *measured* floor: the supervised
step timed on the batch sizes the target actually sees, since CPU convolutions are not linear in
the batch size.
"""

import jax
import optax
from absl import app, flags
from timing import batch_of, seconds_per_step

from jaxaug import methods, models
from jaxaug.methods import online_augment as oa

_MODEL = flags.DEFINE_string("model", "wrn-28-2", "Target network.")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per variant (median kept).")
_QUICK = flags.DEFINE_bool("quick", False, "WRN-10-1, batch 16, 1 step: a smoke test.")
_MEASURED_FLOOR = flags.DEFINE_bool(
    "measured_floor", True, "Also time the supervised step on the floor's batch sizes.")

# name -> (generator factories, inner_num, meta, floor); a generated batch is
# (floor - 1) / inner_num images per batch image and update.
VARIANTS = {
    "astn": ((oa.astn,), 1, False, 3),
    "astn_inner4": ((oa.astn,), 4, False, 9),
    "astn_meta": ((oa.astn,), 1, True, 3),
    "dvae": ((oa.deform_vae,), 1, False, 2),
    "pvae": ((oa.perturb_vae,), 1, False, 2),
    "comb": ((oa.astn, oa.deform_vae, oa.perturb_vae), 1, False, 5),
}
_VARIANTS = flags.DEFINE_list("variants", list(VARIANTS), "Variants to time.")
# Checked when the flags are parsed: an unknown name fails before minutes of timing, naming itself.
flags.register_validator("variants", lambda names: set(names) <= set(VARIANTS),
                         f"--variants takes names from {', '.join(VARIANTS)}")


def main(argv):
    del argv
    model_name, batch_size, steps = (("wrn-10-1", 16, 1) if _QUICK.value
                                     else (_MODEL.value, _BATCH.value, _STEPS.value))
    batch = batch_of(batch_size)
    model = models.create(model_name, num_classes=10, num_bn_sets=4)  # Comb. uses 1 + 3
    optimizer = optax.sgd(0.1, momentum=0.9, nesterov=True)
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}); {model_name}, batch {batch_size}, "
          f"median of {steps} steps")

    supervised = methods.supervised(model, optimizer)
    baseline = seconds_per_step(supervised, batch, steps)
    print(f"{'baseline':<12} {baseline * 1e3:10.1f} ms")
    supervised_times = {1: baseline}

    def measured_floor(floor, inner_num):
        """The supervised steps on the batches the target really sees: inner_num calls on the
        generated images, then one on the clean batch. On a CPU, convolutions are not linear in
        the batch size, so this can differ from floor x baseline."""
        generated = (floor - 1) // inner_num
        total = 0.0
        for multiple, calls in ((generated, inner_num), (1, 1)):
            if calls and multiple not in supervised_times:
                supervised_times[multiple] = seconds_per_step(
                    supervised, batch_of(multiple * batch_size), steps)
            total += calls * supervised_times.get(multiple, 0.0)
        return total

    times, fields = {}, [f"device={device.platform}"]
    for name in _VARIANTS.value:
        factories, inner_num, meta, floor = VARIANTS[name]
        method = oa.online_augment(model, optimizer, [f() for f in factories],
                                   inner_num=inner_num, meta=meta, lr_schedule=lambda _: 0.1)
        times[name] = seconds_per_step(method, batch, steps)
        ratio = times[name] / baseline
        measured = (f"  {times[name] / measured_floor(floor, inner_num):5.2f}x measured floor"
                    if _MEASURED_FLOOR.value else "")
        print(f"{name:<12} {times[name] * 1e3:10.1f} ms  {ratio:6.2f}x baseline  floor {floor}x"
              f"  {ratio / floor:5.2f}x floor{measured}")
        if name != "astn_meta":
            fields.append(f"{name}={ratio / floor:.3g}")
    if "astn_meta" in times and "astn" in times:
        fields.append(f"meta_over_astn={times['astn_meta'] / times['astn']:.3g}")
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
