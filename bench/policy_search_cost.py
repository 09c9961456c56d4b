"""Step cost of uncertainty-based sampling and of DADA's search and training stages against the
plain supervised step, same model, batch and run; and the cost of a DADA search on this machine.
The baseline is timed first and again after each variant; ratios are over the fastest of those.

  python bench/policy_search_cost.py [--model=wrn-28-2] [--batch=128] [--steps=3] [--quick]
                                     [--variants=uncertainty,dada_search,dada_train]

uncertainty (C = 4, S = 1) scores C x batch copies in one evaluation-mode forward pass and trains
on batch x S: its *measured floor* is that forward pass plus the supervised step (timed here on
the same sizes). dada_search is one DARTS step: the relaxed policy (15 ops per stage, 2 stages)
on the batch's training half three times (the inner step and the two finite-difference points),
four passes of the target on halves, the policy's backward pass through the ops, and the target
step on the whole batch augmented by the policy. dada_train applies the searched policy, hard,
then the supervised step.

``--search_hours`` turns the dada_search time into the cost of DADA's CIFAR-10 search: 20 epochs
over the 2,000 training images of reduced CIFAR-10 (4,000 images, half of them validation),
each step ``batch / 2`` training and ``batch / 2`` validation images, i.e.
ceil(2000 / (batch / 2)) x 20 steps (DADA: batch 128 of each, WRN-40-2, 0.1 GPU hours).
"""

import math
import types

import jax
import optax
from absl import app, flags
from timing import batch_of, seconds_per_step

from jaxaug import methods, models
from jaxaug.methods import dada, uncertainty
from jaxaug.methods.base import predict_target

_MODEL = flags.DEFINE_string("model", "wrn-28-2", "Target network.")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size (dada: training + validation halves).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per variant (median kept).")
_QUICK = flags.DEFINE_bool("quick", False, "WRN-10-1, batch 16, 1 step: a smoke test.")
_SEARCH_HOURS = flags.DEFINE_bool("search_hours", False,
                                  "Print the hours of DADA's 20-epoch reduced CIFAR-10 search.")
VARIANTS = ("uncertainty", "dada_search", "dada_train")
_VARIANTS = flags.DEFINE_list("variants", list(VARIANTS), "Variants to time.")
# Checked when the flags are parsed: an unknown name fails before minutes of timing, naming itself.
flags.register_validator("variants", lambda names: set(names) <= set(VARIANTS),
                         f"--variants takes names from {', '.join(VARIANTS)}")
COPIES, SELECTED = 4, 1


def main(argv):
    del argv
    model_name, batch_size, steps = (("wrn-10-1", 16, 1) if _QUICK.value
                                     else (_MODEL.value, _BATCH.value, _STEPS.value))
    batch = batch_of(batch_size)
    model = models.create(model_name, num_classes=10)
    optimizer = optax.sgd(0.1, momentum=0.9, nesterov=True)
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}); {model_name}, batch {batch_size}, "
          f"median of {steps} steps")
    supervised = methods.supervised(model, optimizer)
    baseline = seconds_per_step(supervised, batch, steps)
    fields = [f"device={device.platform}", f"model={model_name}", f"batch={batch_size}"]

    def scoring_floor():
        """The evaluation-mode forward pass over C x batch copies, plus the supervised step on
        batch x S images."""
        score = types.SimpleNamespace(
            init=supervised.init,
            step=lambda state, b, key: (state, predict_target(model, state, b["image"])))
        return (seconds_per_step(score, batch_of(COPIES * batch_size), steps)
                + seconds_per_step(supervised, batch_of(SELECTED * batch_size), steps))

    staged = dada.dada(model, optimizer, lr_schedule=lambda _: 0.1, cutout=16)
    builders = {
        "uncertainty": lambda: uncertainty.uncertainty(
            model, optimizer, num_copies=COPIES, num_selected=SELECTED, cutout=16),
        "dada_search": lambda: types.SimpleNamespace(init=staged.init,
                                                     step=staged.steps[dada.SEARCH]),
        "dada_train": lambda: types.SimpleNamespace(init=staged.init,
                                                    step=staged.steps[dada.TRAIN]),
    }
    times, floor = {}, None
    for name in _VARIANTS.value:
        times[name] = seconds_per_step(builders[name](), batch, steps)
        # The baseline again, right after: on a shared machine the load drifts between variants.
        baseline = min(baseline, seconds_per_step(supervised, batch, steps))
        if name == "uncertainty":
            floor = scoring_floor()
    print(f"{'baseline':<12} {baseline * 1e3:10.1f} ms  (the fastest of {len(times) + 1} timings)")
    for name, seconds in times.items():  # every ratio over the same, fastest baseline
        ratio = seconds / baseline
        extra = ""
        if name == "uncertainty":
            extra = f"  {seconds / floor:5.2f}x measured floor ({floor / baseline:.2f}x baseline)"
            fields.append(f"uncertainty_over_measured_floor={seconds / floor:.3g}")
        print(f"{name:<12} {seconds * 1e3:10.1f} ms  {ratio:6.2f}x baseline{extra}")
        fields.append(f"{name}={ratio:.3g}")
        if name == "dada_search" and _SEARCH_HOURS.value:
            search_steps = math.ceil(2000 / (batch_size // 2)) * 20
            hours = seconds * search_steps / 3600
            print(f"DADA's reduced CIFAR-10 search: {search_steps} steps x {seconds:.2f} s = "
                  f"{hours:.2f} hours on this device (DADA: 0.1 GPU hours)")
            fields.append(f"dada_search_hours={hours:.3g}")
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
