"""SelfNorm / CrossNorm on CIFAR-10 with WRN-40-2: the CNSN paper's CIFAR settings (Tang et al.,
ICCV 2021), which are the AugMix repository's training hyperparameters: 100 epochs, batch 128,
SGD with Nesterov momentum 0.9, lr 0.1 with per-step cosine decay, weight decay 5e-4, pad-4 crop
and flip, no dropout, no Cutout.

  python train.py --config=configs/cnsn_cifar10.py:baseline
  python train.py --config=configs/cnsn_cifar10.py:sn                  # SelfNorm, "pre"
  python train.py --config=configs/cnsn_cifar10.py:cn                  # CrossNorm, "post"
  python train.py --config=configs/cnsn_cifar10.py:cnsn                # both, "post"
  python train.py --config=configs/cnsn_cifar10.py:cnsn_consistency    # both + JS consistency
  python -m jaxaug.eval.robustness --workdirs=...                      # clean + 75 corruptions

The per-variant values are those of the reference's WRN scripts: CrossNorm in 2-instance mode, in
2 blocks drawn per CrossNorm pass (`cnsn.cn_active`); cn: coin 0.5, no crop; cnsn: coin 0.25,
crop both; cnsn_consistency: coin 0.75, crop both, consistency weight 10. Differences from the
reference: the inputs are normalised with the dataset's channel statistics (the reference uses
mean = std = 0.5), the cosine ends at 0 (the reference's at 1e-6), and SelfNorm learns both
attention units, f for the mean and g for the standard deviation, as the paper defines it (the
reference's CIFAR code learns g alone: `--config.cnsn.sn_recalibrate_mean=False`).

Appending ",reduced" gives the CPU-sized evidence run of docs/results.md: WRN-16-1 on 4,000
class-balanced images of ../shared/data/cifar10-jpeg.zip, 8 epochs, batch 32, lr 0.05.
"""

from jaxaug.train.config import base_config

# variant -> (selfnorm, crossnorm, position, cn_prob, cn_crop, method)
VARIANTS = {
    "baseline": (False, False, "post", 0.5, "neither", "supervised"),
    "sn": (True, False, "pre", 0.5, "neither", "supervised"),
    "cn": (False, True, "post", 0.5, "neither", "supervised"),
    "cnsn": (True, True, "post", 0.25, "both", "supervised"),
    "cnsn_consistency": (True, True, "post", 0.75, "both", "cnsn_consistency"),
}


def get_config(arg="cnsn"):
    variant, *options = arg.split(",")
    if variant not in VARIANTS or set(options) - {"reduced"}:
        raise ValueError(f"configs/cnsn_cifar10.py: unknown argument {arg!r}; valid: one of "
                         f"{', '.join(VARIANTS)}, optionally followed by ',reduced'")
    selfnorm, crossnorm, position, cn_prob, cn_crop, method = VARIANTS[variant]
    config = base_config()
    config.method = method
    config.dataset = "tfds:cifar10"
    config.model = "wrn-40-2"
    config.epochs = 100
    config.batch_size = 128
    config.optimizer.lr = 0.1
    config.optimizer.momentum = 0.9
    config.optimizer.nesterov = True
    config.optimizer.weight_decay = 5e-4
    config.augment.cutout = 0
    c = config.cnsn
    c.selfnorm, c.crossnorm, c.position = selfnorm, crossnorm, position
    c.cn_prob, c.cn_crop, c.cn_mode, c.cn_active = cn_prob, cn_crop, "2-instance", 2
    config.cnsn_consistency.weight = 10.0
    if "reduced" in options:
        config.dataset = "imagefolder:../shared/data/cifar10-jpeg.zip"
        config.reduced = 4000
        config.model = "wrn-16-1"
        config.epochs = 8
        config.batch_size = 32
        config.optimizer.lr = 0.05
        config.log_every_steps = 125
        config.save_image_grid = False
    return config
