"""Issue 20, part 2: a second point of the search for a CPU regime where augmentation matters.

Reduced CIFAR-10 (1,000 training images, class-balanced), WRN-10-1, batch 32, 60 epochs, the full
10,000-image test set; crop + flip against Cutout 16 against AutoAugment + Cutout.

  python -m jaxaug.experiments --plan=plans/regime_search.py --out=experiments/regime_1000_wrn10_1_60ep
"""

CIFAR = "imagefolder:../shared/data/cifar10-jpeg.zip"


def get_plan():
    base = {"dataset": CIFAR, "reduced": 1000, "model": "wrn-10-1", "batch_size": 32,
            "epochs": 60, "optimizer.lr": 0.05, "eval_batch_size": 1000,
            "log_every_steps": 31, "save_image_grid": False}
    return {
        "baseline": "cropflip",
        "seeds": [0],
        "arms": {
            "cropflip": {"config": "configs/cifar10_wrn.py",
                         "overrides": {**base, "augment.cutout": 0}},
            "cutout": {"config": "configs/cifar10_wrn.py", "overrides": base},
            "autoaugment": {"config": "configs/cifar10_wrn.py:autoaugment", "overrides": base},
        },
    }
