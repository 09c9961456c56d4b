"""CIFAR-10 with a Wide-ResNet, the papers' baseline: WRN-28-10, 200 epochs, SGD lr 0.1 cosine,
batch 128, weight decay 5e-4, pad-4 crop + flip + Cutout 16.

  python train.py --config=configs/cifar10_wrn.py
  python train.py --config=configs/cifar10_wrn.py \
      --config.dataset=imagefolder:../shared/data/cifar10-jpeg.zip --config.reduced=4000
"""

from jaxaug.train.config import base_config


def get_config():
    config = base_config()
    config.dataset = "tfds:cifar10"
    config.model = "wrn-28-10"
    config.epochs = 200
    config.batch_size = 128
    config.augment.cutout = 16
    return config
