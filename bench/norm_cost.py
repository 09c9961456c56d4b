"""Training-step overhead of SelfNorm / CrossNorm against the same network without them, same run.

  python bench/norm_cost.py [--model=wrn-40-2] [--batch=128] [--steps=5] [--quick]

Every variant is the supervised step of the model with SN, CN (forced on in every block, the
worst case: `CNSNPlacement(cn_prob=1)` with no block sampling) or both, at the positions of the
CNSN configs, timed against the plain model; the consistency method is timed on a step whose coin
comes up (three passes) and on one where it does not (one pass). Ratios are of median step times.
"""

import jax
import optax
from absl import app, flags
from timing import batch_of, seconds_per_step

from jaxaug import methods, models
from jaxaug.models.norm import CNSNPlacement

_MODEL = flags.DEFINE_string("model", "wrn-40-2", "Target network (a WRN or ResNet).")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per variant (median kept).")
_QUICK = flags.DEFINE_bool("quick", False, "WRN-10-1, batch 16, 1 step: a smoke test.")

VARIANTS = {
    "sn_pre": CNSNPlacement(selfnorm=True, position="pre"),
    "sn_post": CNSNPlacement(selfnorm=True, position="post"),
    "cn_all_blocks": CNSNPlacement(crossnorm=True, cn_prob=1.0, cn_crop="both"),
    "cn_2_blocks": CNSNPlacement(crossnorm=True, cn_prob=1.0, cn_active=2, cn_crop="both"),
    "cnsn_2_blocks": CNSNPlacement(selfnorm=True, crossnorm=True, cn_prob=1.0, cn_active=2,
                                   cn_crop="both"),
}


def main(argv):
    del argv
    model_name, batch_size, steps = (("wrn-10-1", 16, 1) if _QUICK.value
                                     else (_MODEL.value, _BATCH.value, _STEPS.value))
    batch = batch_of(batch_size)
    optimizer = optax.sgd(0.1, momentum=0.9, nesterov=True)
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}); {model_name}, batch {batch_size}, "
          f"median of {steps} steps")
    baseline = seconds_per_step(
        methods.supervised(models.create(model_name, num_classes=10), optimizer), batch, steps)
    print(f"{'baseline':<26} {baseline * 1e3:9.1f} ms")
    fields = [f"device={device.platform}", f"model={model_name}", f"batch={batch_size}"]

    def report(name, seconds):
        print(f"{name:<26} {seconds * 1e3:9.1f} ms  {seconds / baseline:5.2f}x baseline")
        fields.append(f"{name}={seconds / baseline:.2f}")

    for name, placement in VARIANTS.items():
        model = models.create(model_name, num_classes=10, cnsn=placement)
        report(name, seconds_per_step(methods.supervised(model, optimizer), batch, steps))
    consistency_model = models.create(model_name, num_classes=10, cnsn=VARIANTS["cnsn_2_blocks"])
    for name, coin in (("consistency_heads", 1.0), ("consistency_tails", 0.0)):
        method = methods.cnsn_consistency(consistency_model, optimizer, cn_prob=coin)
        report(name, seconds_per_step(method, batch, steps))
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
