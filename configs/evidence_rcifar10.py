"""Evidence on real data: OnlineAugment against the Cutout baseline on reduced CIFAR-10, on a CPU.

WRN-16-1 on 4,000 class-balanced training images (the papers' R-CIFAR-10 size) of the JPEG
CIFAR-10 in ../shared/data, tested on all 10,000 test images. Every variant uses the same seed,
subset, schedule and Cutout 16; the argument picks the method:

  python train.py --config=configs/evidence_rcifar10.py:cutout     --workdir=workdirs/ev-cutout
  python train.py --config=configs/evidence_rcifar10.py:astn       --workdir=workdirs/ev-astn
  python train.py --config=configs/evidence_rcifar10.py:pvae       --workdir=workdirs/ev-pvae
  python train.py --config=configs/evidence_rcifar10.py:astn_meta  --workdir=workdirs/ev-astn-meta

The model, batch and epoch count are set by the CPU budget (well under an hour per run on 2
cores). On that CPU WRN-16-2 trains at 16 images/s at batch 128 and 28 at batch 32, WRN-16-1 at
107 at batch 32, and an A-STN iteration costs about 4.6 baseline steps; so WRN-16-1, batch 32
(lr 0.05), 8 epochs: far from the papers' 200 epochs of WRN-28-10. The comparison is between
methods at an equal, short schedule.
Results: docs/results.md.
"""

from jaxaug.train.config import base_config

# name -> (generator, meta); None: the supervised Cutout baseline. Generator weights are the
# papers' (the config defaults): A-STN beta 0.1, cycle 0.1; P-VAE beta 10, weight 1e-3.
VARIANTS = {
    "cutout": None,
    "astn": ("astn", False),
    "pvae": ("perturb_vae", False),
    "astn_meta": ("astn", True),
}


def get_config(variant="cutout"):
    if variant not in VARIANTS:
        raise ValueError(f"configs/evidence_rcifar10.py: unknown variant {variant!r}; "
                         f"valid: {', '.join(VARIANTS)}")
    config = base_config()
    config.dataset = "imagefolder:../shared/data/cifar10-jpeg.zip"
    config.reduced = 4000
    config.model = "wrn-16-1"
    config.epochs = 8
    config.batch_size = 32
    config.optimizer.lr = 0.05
    config.augment.cutout = 16
    config.log_every_steps = 125
    config.save_image_grid = False
    if VARIANTS[variant] is not None:
        config.method = "online_augment"
        config.num_bn_sets = 2
        config.online_augment.generator, config.online_augment.meta = VARIANTS[variant]
    return config
