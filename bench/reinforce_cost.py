"""Cost of the REINFORCE policy learners' steps against the plain supervised step, same run.

  python bench/reinforce_cost.py [--model=wrn-28-2] [--batch=128] [--steps=3] [--quick]

Adversarial AutoAugment trains the target on M = 8 augmented copies of the batch, so its floor is
8 supervised steps on the same 8 x batch images: the script prints its time over the baseline
step, over that floor (8 x baseline) and over the *measured* floor (one supervised step timed on
the 8 x batch images, since CPU convolutions are not linear in the batch size). Its controller
update (a `lax.cond` at the end of each window, here every 100 steps) is outside the timed steps
(and a median would hide it): the figure is the target's step on the M copies. AdaTransform and
TANDA train the target on one batch; their extra cost is the policy rollouts, the reward
evaluations and the discriminator, printed over the baseline.
"""

import jax
import optax
from absl import app, flags
from timing import batch_of, seconds_per_step

from jaxaug import methods, models
from jaxaug.methods import adatransform, adv_autoaugment, tanda

_MODEL = flags.DEFINE_string("model", "wrn-28-2", "Target network.")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size (per policy for Adversarial AutoAugment).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per variant (median kept).")
_QUICK = flags.DEFINE_bool("quick", False, "WRN-10-1, batch 16, 1 step: a smoke test.")
_POLICIES = flags.DEFINE_integer("policies", 8, "M of Adversarial AutoAugment.")

def variants(model, optimizer, num_policies):
    """name -> (method, floor in baseline steps)."""
    return {
        "adv_aa": (adv_autoaugment.adv_autoaugment(
            model, optimizer, update_every=100, num_policies=num_policies), num_policies),
        "adatransform": (adatransform.adatransform(model, optimizer), 1),
        "adacutout": (adatransform.adatransform(model, optimizer, mode="cutout"), 1),
        "tanda": (tanda.tanda(model, optimizer), 1),
        "tanda_mean_field": (tanda.tanda(model, optimizer, generator="mean_field"), 1),
    }


def main(argv):
    del argv
    model_name, batch_size, steps = (("wrn-10-1", 16, 1) if _QUICK.value
                                     else (_MODEL.value, _BATCH.value, _STEPS.value))
    num_policies = _POLICIES.value
    batch = batch_of(batch_size)
    model = models.create(model_name, num_classes=10)
    optimizer = optax.sgd(0.1, momentum=0.9, nesterov=True)
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}); {model_name}, batch {batch_size}, "
          f"median of {steps} steps")
    supervised = methods.supervised(model, optimizer)
    baseline = seconds_per_step(supervised, batch, steps)
    print(f"{'baseline':<18} {baseline * 1e3:10.1f} ms")
    fields = [f"device={device.platform}"]
    for name, (method, floor) in variants(model, optimizer, num_policies).items():
        seconds = seconds_per_step(method, batch, steps)
        ratio = seconds / baseline
        line = f"{name:<18} {seconds * 1e3:10.1f} ms  {ratio:6.2f}x baseline"
        if floor > 1:
            measured = seconds_per_step(supervised, batch_of(floor * batch_size), steps)
            line += (f"  {ratio / floor:5.2f}x floor ({floor}x baseline)"
                     f"  {seconds / measured:5.2f}x measured floor")
            fields.append(f"{name}_over_floor={ratio / floor:.3g}")
            fields.append(f"{name}_over_measured_floor={seconds / measured:.3g}")
        print(line)
        fields.append(f"{name}={ratio:.3g}")
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
