"""CIFAR-10 with a Wide-ResNet, the papers' baseline: WRN-28-10, 200 epochs, SGD lr 0.1 cosine,
batch 128, weight decay 5e-4, pad-4 crop + flip + Cutout 16. The config argument adds an
augmentation policy between the flip and Cutout:

  python train.py --config=configs/cifar10_wrn.py                      # baseline + Cutout
  python train.py --config=configs/cifar10_wrn.py:autoaugment          # AutoAugment CIFAR-10
  python train.py --config=configs/cifar10_wrn.py:randaugment          # RandAugment(2, 9)
  python train.py --config=configs/cifar10_wrn.py:trivialaugment       # TrivialAugment-Wide
  python train.py --config=configs/cifar10_wrn.py:augmix               # AugMix + JS, its recipe
  python train.py --config=configs/cifar10_wrn.py \
      --config.dataset=imagefolder:../shared/data/cifar10-jpeg.zip --config.reduced=4000
"""

from jaxaug.train.config import base_config

POLICIES = {
    "baseline": "",
    "autoaugment": "autoaugment_cifar10",
    "randaugment": "randaugment",
    "trivialaugment": "trivial_augment_wide",
    "augmix": "",
}


def get_config(policy="baseline"):
    if policy not in POLICIES:
        raise ValueError(f"configs/cifar10_wrn.py: unknown policy argument {policy!r}; "
                         f"valid: {', '.join(POLICIES)}")
    config = base_config()
    config.dataset = "tfds:cifar10"
    config.model = "wrn-28-10"
    config.epochs = 200
    config.batch_size = 128
    config.augment.cutout = 16
    config.augment.policy = POLICIES[policy]
    config.augment.num_ops, config.augment.magnitude = 2, 9  # RandAugment(2, 9)
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
