"""ImageNet with a ResNet-50 at 224 x 224 and timm's recipe parts: RandomResizedCrop (scale
0.08-1, aspect 3/4-4/3), flip, RandAugment `rand-m9-mstd0.5` (magnitude 9 with Gaussian noise of
std 0.5 per op, timm's string), MixUp 0.2 / CutMix 1.0 switched per batch with probability 0.5,
and label smoothing 0.1 (timm's `train.py` arguments `--aa rand-m9-mstd0.5 --mixup 0.2
--cutmix 1.0 --smoothing 0.1`).

  python train.py --config=configs/imagenet_resnet.py --config.data_dir=<tfds data dir>

The schedule is the usual large-batch ResNet-50 one (Goyal et al., 2017): batch 1024, SGD
Nesterov 0.9, lr 0.1 x 1024 / 256 = 0.4 with 5 warm-up epochs, weight decay 1e-4, here with a
cosine decay over 90 epochs (our choice; Goyal et al. step it down at epochs 30, 60 and 80).

The loader resizes and centre-crops every image to 224 (`jaxaug.data.tfds_source`), so the
random resized crop is drawn from that 224 x 224 image, not from the full-resolution one as in
torchvision and timm: the same scale and aspect distributions over a smaller field of view.
"""

from jaxaug.train.config import base_config


def get_config():
    config = base_config()
    config.dataset = "tfds:imagenet2012"
    config.image_size = 224
    config.model = "resnet-50"
    config.epochs = 90
    config.batch_size = 1024
    config.eval_batch_size = 1000
    config.optimizer.update(lr=0.4, momentum=0.9, nesterov=True, weight_decay=1e-4,
                            warmup_epochs=5.0)
    config.augment.update(crop="random_resized", crop_scale=(0.08, 1.0),
                          crop_ratio=(3 / 4, 4 / 3), flip=True, cutout=0,
                          policy="rand-m9-mstd0.5")
    config.augment.mixup.update(mixup_alpha=0.2, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5,
                                mode="batch")
    config.label_smoothing = 0.1
    config.log_every_steps = 100
    config.save_image_grid = False
    return config
