"""The REINFORCE policy learners on CIFAR with a Wide-ResNet-28-10: SGD lr 0.1 cosine, batch 128,
weight decay 5e-4, 200 epochs, the standard crop and flip.

The config argument is "<method>,<dataset>":

  python train.py --config=configs/policy_learners.py:adv_aa,cifar10
  python train.py --config=configs/policy_learners.py:adatransform,cifar100
  python train.py --config=configs/policy_learners.py:adacutout,cifar10_10pct

methods:
  adv_aa        Adversarial AutoAugment: M = 8 policies, the target sees 8 x 128 images per
                step; controller Adam 3.5e-4, entropy weight 1e-5, updated once per epoch;
                Cutout 16 on top, as AutoAugment's CIFAR pipeline.
  adatransform  AdaTransform as in Tang's thesis, sec. 3.6.1: K = 8 meta-transformations, a
                ResNet-18 transformer with dropout, Adam 1e-4 with weight decay 1e-4; the
                target learns from clean and transformed images, and from clean ones only for
                the last 10 epochs; cooperative policy at test time. s = 2 rollouts, gamma 0.5,
                discriminator weight 0.1, T and D every 5 target steps.
  adacutout     AdaCutout: a random 16-pixel Cutout box moved 3 times by 2 px (replaces Cutout),
                on 30% of the target's images; transformer Adam 3e-5, weight decay 1e-5.
  adaerasing    AdaErasing: the same with a Random Erasing box of noise.
  tanda         TANDA, LSTM generator of 5 transformations, 500 warm-up steps of G and D alone.
  tanda_mf      TANDA with the mean-field generator.
  uncertainty   Uncertainty-based sampling (Wu et al., ICML 2020): C = 4 RandAugment(2, 9)
                copies per image, the S = 1 of highest loss trained on; Cutout 16 on every copy
                (the authors' CIFAR script: C 4, S 1, 2 ops per copy, Cutout).
  uncertainty_reference  the same with the authors' copies: 2 ops of their list, each applied
                with a probability drawn from U(0, 1) at a level drawn uniformly
                (jaxaug.policies.random_composition), then Cutout 16.
  dada          Differentiable policy search (DADA / Faster AutoAugment): the first
                config.dada.search_epochs (20, DADA's) search 25 sub-policies of 2 stages by
                DARTS meta-gradients on (train, validation) halves of each batch, the rest
                train on the searched policy, hard; Cutout 16 after the policy. DADA's search
                alone, on its small split: --config.reduced=4000 --config.epochs=20, then
                `python -m jaxaug.policies.export --workdir=...` exports the table for
                --config.augment.policy=table:<json> (jaxaug/methods/dada.py).
datasets: cifar10, cifar100 (tfds; set --config.data_dir for a local copy) and cifar10_10pct
(5,000 class-balanced CIFAR-10 training images, data_seed 0: AdaTransform's 10%-of-CIFAR-10
setting, used with adacutout).

The 200-epoch schedule is this library's CIFAR default (configs/cifar10_wrn.py); the papers'
own epoch counts were not checked here. The AdaTransform settings the thesis gives are the
defaults of config.adatransform; those it leaves open are marked as choices in
jaxaug/methods/adatransform.py, as are TANDA's in its module.
"""

from jaxaug.train.config import base_config

DATASETS = {"cifar10": ("tfds:cifar10", 0), "cifar100": ("tfds:cifar100", 0),
            "cifar10_10pct": ("tfds:cifar10", 5000)}
METHODS = ("adv_aa", "adatransform", "adacutout", "adaerasing", "tanda", "tanda_mf",
           "uncertainty", "uncertainty_reference", "dada")


def get_config(arg="adv_aa,cifar10"):
    method, _, dataset = arg.partition(",")
    if method not in METHODS:
        raise ValueError(f"configs/policy_learners.py: unknown method {method!r}; "
                         f"valid: {', '.join(METHODS)}")
    if dataset not in DATASETS:
        raise ValueError(f"configs/policy_learners.py: unknown dataset {dataset!r}; "
                         f"valid: {', '.join(DATASETS)}")
    config = base_config()
    config.dataset, config.reduced = DATASETS[dataset]
    config.model = "wrn-28-10"
    config.epochs = 200
    config.batch_size = 128
    if method == "adv_aa":
        config.method = "adv_autoaugment"
        config.augment.cutout = 16
    elif method in ("uncertainty", "uncertainty_reference", "dada"):
        config.method = method.removesuffix("_reference")
        config.augment.cutout = 16
        if method == "uncertainty_reference":
            config.uncertainty.policy = "random_composition"
    elif method.startswith("ada"):
        config.method = "adatransform"
        config.adatransform.mode = {"adatransform": "transform", "adacutout": "cutout",
                                    "adaerasing": "erasing"}[method]
    else:
        config.method = "tanda"
        config.tanda.generator = "mean_field" if method == "tanda_mf" else "lstm"
    return config
