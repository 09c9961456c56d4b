"""Evidence on real data for the REINFORCE policy learners: the setup of
configs/evidence_rcifar10.py (WRN-16-1, 4,000 class-balanced images of the JPEG CIFAR-10 in
../shared/data, batch 32, lr 0.05, 8 epochs, Cutout 16, tested on all 10,000 test images), with
the method picked by the argument:

  python train.py --config=configs/evidence_reinforce.py:adv_aa --workdir=workdirs/ev-adv-aa

Sized for a 2-core CPU, not the papers' schedules: Adversarial AutoAugment uses M = 4 policies
(the target sees 4 x 32 images per step) and updates its controller every 25 steps (5 times per
epoch) instead of once per epoch, so that 8 epochs give it 40 updates. TANDA (LSTM generator)
trains its generator and discriminator alone for two epochs, then augments the target.
AdaTransform and AdaCutout run without the standard Cutout (AdaCutout's box replaces it), with
the thesis's settings (sec. 3.6.1) except two: the transformer is a ResNet-18 of width 8, not
64, and AdaTransform's transforms stop for the last epoch (of 8) instead of the last ten;
adatransform_entropy adds an entropy bonus of 0.05 to AdaTransform's policies (the runs before
the thesis's settings collapsed onto one action each). The Cutout baseline of the
same setup is configs/evidence_rcifar10.py:cutout. Results: docs/results.md.
"""

import importlib.util
import os

VARIANTS = ("adv_aa", "tanda", "adatransform", "adacutout", "adatransform_entropy")


def _evidence_base():
    """The shared setup of configs/evidence_rcifar10.py (loaded by path: configs/ is not a
    package)."""
    path = os.path.join(os.path.dirname(__file__), "evidence_rcifar10.py")
    spec = importlib.util.spec_from_file_location("evidence_rcifar10", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config("cutout")


def get_config(variant="adv_aa"):
    if variant not in VARIANTS:
        raise ValueError(f"configs/evidence_reinforce.py: unknown variant {variant!r}; "
                         f"valid: {', '.join(VARIANTS)}")
    config = _evidence_base()
    if variant == "adv_aa":
        config.method = "adv_autoaugment"
        config.adv_autoaugment.num_policies = 4
        config.adv_autoaugment.update_every = 25
    elif variant == "tanda":
        config.method = "tanda"
        config.tanda.warmup_steps = 250  # two epochs of G and D alone, then six augmenting
    elif variant.startswith("ada"):
        config.method = "adatransform"
        config.adatransform.mode = "cutout" if variant == "adacutout" else "transform"
        config.adatransform.transformer_width = 8  # ResNet-18's 64 is too slow for 2 CPU cores
        if variant != "adacutout":
            config.adatransform.stop_epochs = 1  # the thesis stops 10 epochs before the end
        if variant == "adatransform_entropy":
            config.adatransform.entropy_weight = 0.05
        config.augment.cutout = 0  # AdaCutout places its own box; AdaTransform is compared plain
    return config
