"""Cost of a TeachAugment step against the plain supervised step, same device, same run.

  python bench/teachaugment_cost.py [--model=wrn-28-2] [--batch=128] [--steps=10] [--quick]

A step updates the target once on the augmenter's images and, on every 5th step (the
reference's n_inner), the augmenter: the target and the EMA teacher read a(x) forward and
backward to the images. By default (``conditional=True``) a `lax.cond` skips that update on 4
steps of 5: floor 1 + 2 / 5 = 1.4 supervised steps (the target update, and two forward-backward
passes of the target network every 5th step), before the augmenter network itself.
``conditional=False`` computes the update on every step and keeps it on schedule (a select, as
the REINFORCE learners do because XLA:CPU runs convolutions inside a conditional slowly): floor
3. Each variant is timed as the mean over ``steps`` consecutive steps (a
multiple of 5 covers whole schedules), after one compiling call.
"""


import jax
import optax
from absl import app, flags
from timing import batch_of, mean_seconds_per_step

from jaxaug import methods, models
from jaxaug.methods.teachaugment import teachaugment

_MODEL = flags.DEFINE_string("model", "wrn-28-2", "Target network.")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed consecutive steps per variant (mean kept).")
_QUICK = flags.DEFINE_bool("quick", False, "WRN-10-1, batch 16, 5 steps: a smoke test.")


def main(argv):
    del argv
    model_name, batch_size, steps = (("wrn-10-1", 16, 5) if _QUICK.value
                                     else (_MODEL.value, _BATCH.value, _STEPS.value))
    batch = batch_of(batch_size)
    model = models.create(model_name, num_classes=10)
    optimizer = optax.sgd(0.1, momentum=0.9, nesterov=True)
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}); {model_name}, batch {batch_size}, "
          f"mean of {steps} steps")
    baseline = mean_seconds_per_step(methods.supervised(model, optimizer), batch, steps)
    print(f"{'baseline':<26} {baseline * 1e3:10.1f} ms")
    fields = [f"device={device.platform}"]
    for name, conditional, floor in (("teachaugment", True, 1.4),
                                     ("teachaugment_select", False, 3.0)):
        method = teachaugment(model, optimizer, cutout=16, conditional=conditional)
        ratio = mean_seconds_per_step(method, batch, steps) / baseline
        print(f"{name:<26} {ratio * baseline * 1e3:10.1f} ms  {ratio:6.2f}x baseline  "
              f"{ratio / floor:5.2f}x floor ({floor}x baseline)")
        fields += [f"{name}={ratio:.3g}", f"{name}_over_floor={ratio / floor:.3g}"]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
