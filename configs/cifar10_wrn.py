"""CIFAR-10 with a Wide-ResNet, the papers' baseline: WRN-28-10, 200 epochs, SGD lr 0.1 cosine,
batch 128, weight decay 5e-4, pad-4 crop + flip + Cutout 16. The config argument adds an
augmentation policy between the flip and Cutout:

  python train.py --config=configs/cifar10_wrn.py                      # baseline + Cutout
  python train.py --config=configs/cifar10_wrn.py:autoaugment          # AutoAugment CIFAR-10
  python train.py --config=configs/cifar10_wrn.py:randaugment          # RandAugment(2, 9)
  python train.py --config=configs/cifar10_wrn.py:trivialaugment       # TrivialAugment-Wide
  python train.py --config=configs/cifar10_wrn.py:random_composition   # 2 random ops, random p
  python train.py --config=configs/cifar10_wrn.py:augmix               # AugMix + JS, its recipe
  python train.py --config=configs/cifar10_wrn.py:baseline,mixup       # + MixUp, alpha 1
  python train.py --config=configs/cifar10_wrn.py:baseline,cutmix      # + CutMix, alpha 1, p 0.5
  python train.py --config=configs/cifar10_wrn.py \
      --config.dataset=imagefolder:../shared/data/cifar10-jpeg.zip --config.reduced=4000

A second argument mixes the batch (`config.augment.mixup`), as the papers' CIFAR recipes do,
which train on crop + flip without Cutout: "mixup" is MixUp with alpha 1 on every batch (Zhang et
al., ICLR 2018, sec. 3.2, CIFAR-10); "cutmix" is CutMix with alpha 1 on half of the batches (Yun
et al., ICCV 2019, sec. 4.1.1, CIFAR: cutmix probability 0.5).
"""

from jaxaug.train.config import base_config

POLICIES = {
    "baseline": "",
    "autoaugment": "autoaugment_cifar10",
    "randaugment": "randaugment",
    "trivialaugment": "trivial_augment_wide",
    "random_composition": "random_composition",
    "augmix": "",
}


MIXING = {"mixup": {"mixup_alpha": 1.0}, "cutmix": {"cutmix_alpha": 1.0, "prob": 0.5}}


def get_config(arg="baseline"):
    policy, *mixing = arg.split(",")
    if policy not in POLICIES:
        raise ValueError(f"configs/cifar10_wrn.py: unknown policy argument {policy!r}; "
                         f"valid: {', '.join(POLICIES)}")
    if len(mixing) > 1 or (mixing and mixing[0] not in MIXING):
        raise ValueError(f"configs/cifar10_wrn.py: {arg!r}: the optional second argument must "
                         f"be one of {', '.join(MIXING)}")
    config = base_config()
    config.dataset = "tfds:cifar10"
    config.model = "wrn-28-10"
    config.epochs = 200
    config.batch_size = 128
    config.augment.cutout = 16
    config.augment.policy = POLICIES[policy]
    # RandAugment(2, 9); num_ops is also random_composition's (2, the copies of Wu et al. 2020).
    config.augment.num_ops, config.augment.magnitude = 2, 9
    if mixing:
        config.augment.cutout = 0
        config.augment.mixup.update(MIXING[mixing[0]])
    if policy == "augmix":
        # The AugMix reference's CIFAR recipe (google-research/augmix cifar.py defaults; the
        # papers folder has no AugMix paper): WRN-40-2, 100 epochs, SGD 0.1 Nesterov, momentum
        # 0.9, weight decay 5e-4, batch 128, cosine decay (to 1e-6 there, to 0 here), crop + flip
        # and no Cutout; the method draws its AugMix views itself (config.augmix).
        config.method = "augmix"
        config.model = "wrn-40-2"
        config.epochs = 100
        config.augment.cutout = 0
    return config
