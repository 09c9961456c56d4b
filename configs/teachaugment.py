"""TeachAugment (Suzuki, CVPR 2022) as the reference code's CIFAR configs run it
(DensoITLab/TeachAugment, config/CIFAR*/wrn-28-10.yaml and main.py's defaults): WRN-28-10, 200
epochs, batch 128, SGD lr 0.1 Nesterov, weight decay 5e-4, cosine with 5 warm-up epochs,
pad-4 crop + flip, then the augmenter, then Cutout 16; the target's gradient clipped at norm 5.
The augmenter: AdamW lr 1e-3, weight decay 1e-2, one update per 5 target updates, EMA teacher
0.999, colour regularizer 10, colour / geometric scale 0.8 / 0.5, class context; the
adversarial non-saturating loss smoothed with 0.2 on CIFAR-10 and 0.1 on CIFAR-100 (the yamls'
``label_smooth.epsilon``).

  python train.py --config=configs/teachaugment.py:cifar10
  python train.py --config=configs/teachaugment.py:cifar100
  python train.py --config=configs/teachaugment.py:cifar10 \\
      --config.dataset=imagefolder:../shared/data/cifar10-jpeg.zip --config.reduced=4000

The reference's replay buffer of past augmenters is not implemented (see
jaxaug/methods/teachaugment.py). The target's weight decay departs from the reference's too:
there it is an L2 term 5e-4 / 2 ||w||^2 in the loss (``TeachAugment.manual_weight_decay``, SGD
itself without decay), so it is clipped at norm 5 with the cross-entropy's gradient and skips the
BatchNorm parameters inside the blocks; here the SGD adds 5e-4 w to every parameter's gradient
after the clipping.
"""

from jaxaug.train.config import base_config

DATASETS = {"cifar10": ("tfds:cifar10", 0.2), "cifar100": ("tfds:cifar100", 0.1)}


def get_config(arg="cifar10"):
    if arg not in DATASETS:
        raise ValueError(f"configs/teachaugment.py: unknown dataset {arg!r}; "
                         f"valid: {', '.join(DATASETS)}")
    config = base_config()
    config.dataset, config.teachaugment.adv_label_smoothing = DATASETS[arg]
    config.method = "teachaugment"
    config.model = "wrn-28-10"
    config.epochs = 200
    config.batch_size = 128
    config.optimizer.warmup_epochs = 5.0
    config.augment.cutout = 16
    return config
