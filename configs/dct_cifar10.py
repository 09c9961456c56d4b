"""Deep Co-Training on CIFAR-10 with 4,000 labels (Qiao thesis, sec. 3.2.5; Table 3-I: 9.03%
error with two views), semi-supervised: the 4,000 class-balanced labelled images of
``config.reduced`` and the other 46,000 training images as the unlabelled set.

  python train.py --config=configs/dct_cifar10.py            # the thesis's CIFAR-10 recipe
  python train.py --config=configs/dct_cifar10.py:regime \
      --config.dataset=imagefolder:../shared/data/cifar10-jpeg.zip --config.reduced=1000

"paper": 600 epochs, SGD momentum 0.9 (not Nesterov), weight decay 1e-4, cosine learning rate
0.05 (1 + cos(pi t / T)) (peak 0.1), flip + translation by at most 2 pixels (pad-2 crop), no
Cutout; per step 8 labelled images per view and 92 unlabelled ones (the thesis's batch of 100,
split as |S| : |U|), so an epoch of the 4,000 labelled images is 500 steps, the thesis's epoch
of 50,000 / 100; lambda_cot 10, lambda_dif 0.5 ramped up over 80 epochs, FGSM eps 0.02
(`jaxaug.methods.deep_co_training`). The thesis's network is Laine and Aila's 13-layer
ConvLarge with BatchNorm, which this library does not have: WRN-28-2 (the usual network of
later semi-supervised CIFAR benchmarks) stands in for it.

"regime": the same method in the pipeline of configs/cifar10_wrn.py's baseline without Cutout
(crop + flip, SGD Nesterov, weight decay 5e-4), so that a supervised run of that config on the
same labelled set is its matched baseline: plans/cifar10_cpu.py's ``dct`` arm.
"""

from jaxaug.train.config import base_config

ARGS = ("paper", "regime")


def get_config(arg="paper"):
    if arg not in ARGS:
        raise ValueError(f"configs/dct_cifar10.py: unknown argument {arg!r}; valid: "
                         f"{', '.join(ARGS)}")
    config = base_config()
    config.method = "deep_co_training"
    config.dataset = "tfds:cifar10"
    config.reduced = 4000
    config.model = "wrn-28-2"
    config.augment.cutout = 0
    if arg == "paper":
        config.epochs = 600
        config.batch_size = 8
        config.dct.unlabelled_batch_size = 92
        config.optimizer.update(lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4)
        config.augment.pad = 2
    else:
        config.epochs = 200
        config.batch_size = 128
        config.dct.unlabelled_batch_size = 128
    return config
