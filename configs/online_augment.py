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
10, z 32; P-VAE: beta 10, weight 1e-3, z 8). inner_num is the official scripts' where one exists
(`SCRIPTED_INNER_NUM`: e.g. 4 for a generator alone on the reduced sets, 2 there with AA in front,
2 on CIFAR-10, 1 on CIFAR-100; Comb. 1 on reduced CIFAR-10, 4 on reduced CIFAR-100); elsewhere
(reduced SVHN; D-VAE, P-VAE and Comb. on the full sets) the dataset's plain value of `DATASETS`,
and 1 for Comb. As in the official training loops,
a step makes inner_num updates on generated images, then one on the clean batch (only it gets
crop, flip, AA and Cutout; the generators read the un-augmented image), the target's gradient
clipped at norm 5 (config.online_augment.grad_clip). Those scripts combine only A-STN
and P-VAE for "comb"; ours combines all three (select two with --config.online_augment.generator=
astn,perturb_vae and --config.num_bn_sets=3).
"""

from jaxaug.methods.online_augment import generator_names
from jaxaug.train.config import base_config

DATASETS = {  # name -> (dataset, reduced, AutoAugment policy, inner_num where no script gives it)
    "rcifar10": ("tfds:cifar10", 4000, "autoaugment_cifar10", 4),
    "rcifar100": ("tfds:cifar100", 4000, "autoaugment_cifar10", 4),
    "rsvhn": ("tfds:svhn_cropped", 4000, "autoaugment_svhn", 4),
    "cifar10": ("tfds:cifar10", 0, "autoaugment_cifar10", 2),
    "cifar100": ("tfds:cifar100", 0, "autoaugment_cifar10", 1),
}
# (dataset, generator, AA in front) -> inner_num of the official scripts (zhiqiangdon/online-augment,
# [r-]cifar10[0]-wrn-scripts/run-[autoaugment-]{aug-stn,deform-vae,perturb-vae,comb}.sh; their
# "comb" is A-STN + P-VAE).
SCRIPTED_INNER_NUM = {
    ("cifar10", "astn", False): 2, ("cifar10", "astn", True): 1,
    ("cifar100", "astn", False): 1, ("cifar100", "astn", True): 1,
    **{("rcifar10", g, False): 4 for g in ("astn", "dvae", "pvae")}, ("rcifar10", "comb", False): 1,
    **{("rcifar10", g, True): 2 for g in ("astn", "dvae", "pvae")}, ("rcifar10", "comb", True): 1,
    **{("rcifar100", g, False): 4 for g in ("astn", "dvae", "pvae", "comb")},
    ("rcifar100", "astn", True): 2, ("rcifar100", "dvae", True): 2,
    ("rcifar100", "pvae", True): 4, ("rcifar100", "comb", True): 4,
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
        config.online_augment.inner_num = SCRIPTED_INNER_NUM.get(
            (dataset, generator, "aa" in options), 1 if generator == "comb" else inner_num)
        config.num_bn_sets = 1 + len(generator_names(GENERATORS[generator]))  # clean + one each
    return config
