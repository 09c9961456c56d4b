"""The OnlineAugment papers' runs: WRN-28-10 (or Shake-Shake-26-2x96d), 200 epochs, SGD lr 0.1
cosine, batch 128, weight decay 5e-4, Cutout 16, with a generator trained online.

The config argument is "<dataset>,<generator>" plus optional ",aa" (AutoAugment in front of the
generator, the papers' "AA + ours" rows) and ",shake" (the Shake-Shake target):

  python train.py --config=configs/online_augment.py:rcifar10,astn
  python train.py --config=configs/online_augment.py:rcifar100,comb,aa
  python train.py --config=configs/online_augment.py:cifar10,pvae,shake

datasets: rcifar10, rcifar100, rsvhn (4,000 class-balanced training images, data_seed 0),
cifar10, cifar100 (tfds; set --config.data_dir for a local copy);
generators: astn, dvae, pvae, comb (all three), none (the Cutout or AA baseline).

Generator weights are the papers' (A-STN: beta 0.1, cycle 0.1; D-VAE: beta 1e-2, KL 1, smoothness
10, z 32; P-VAE: beta 10, weight 1e-3, z 8). inner_num follows the official scripts: 4 on the
reduced sets, 2 on CIFAR-10 and 1 on CIFAR-100; Comb. uses 1. As in the official training loops,
a step makes inner_num updates on generated images, then one on the clean batch (only it gets
crop, flip, AA and Cutout; the generators read the un-augmented image), the target's gradient
clipped at norm 5 (config.online_augment.grad_clip). Those scripts combine only A-STN
and P-VAE for "comb"; ours combines all three (select two with --config.online_augment.generator=
astn,perturb_vae and --config.num_bn_sets=3).
"""

from jaxaug.methods.online_augment import generator_names
from jaxaug.train.config import base_config

DATASETS = {  # name -> (dataset, reduced, AutoAugment policy, inner_num)
    "rcifar10": ("tfds:cifar10", 4000, "autoaugment_cifar10", 4),
    "rcifar100": ("tfds:cifar100", 4000, "autoaugment_cifar10", 4),
    "rsvhn": ("tfds:svhn_cropped", 4000, "autoaugment_svhn", 4),
    "cifar10": ("tfds:cifar10", 0, "autoaugment_cifar10", 2),
    "cifar100": ("tfds:cifar100", 0, "autoaugment_cifar10", 1),
}
GENERATORS = {"astn": "astn", "dvae": "deform_vae", "pvae": "perturb_vae", "comb": "comb",
              "none": None}
OPTIONS = ("aa", "shake")


def get_config(arg="rcifar10,astn"):
    dataset, generator, *options = arg.split(",")
    if dataset not in DATASETS:
        raise ValueError(f"configs/online_augment.py: unknown dataset {dataset!r}; "
                         f"valid: {', '.join(DATASETS)}")
    if generator not in GENERATORS:
        raise ValueError(f"configs/online_augment.py: unknown generator {generator!r}; "
                         f"valid: {', '.join(GENERATORS)}")
    for option in options:
        if option not in OPTIONS:
            raise ValueError(f"configs/online_augment.py: unknown option {option!r}; "
                             f"valid: {', '.join(OPTIONS)}")
    name, reduced, policy, inner_num = DATASETS[dataset]
    config = base_config()
    config.dataset = name
    config.reduced = reduced
    config.model = "shake-shake-26-2x96d" if "shake" in options else "wrn-28-10"
    config.epochs = 200
    config.batch_size = 128
    config.augment.cutout = 16
    config.augment.policy = policy if "aa" in options else ""
    if GENERATORS[generator] is not None:
        config.method = "online_augment"
        config.online_augment.generator = GENERATORS[generator]
        config.online_augment.inner_num = 1 if generator == "comb" else inner_num
        config.num_bn_sets = 1 + len(generator_names(GENERATORS[generator]))  # clean + one each
    return config
