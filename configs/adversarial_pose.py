"""Adversarial pose augmentation (ASR + AHO, Peng et al., CVPR 2018) in its three stages: the pose
network alone, pre-training the augmentation network G, then joint training.

  python train.py --config=configs/adversarial_pose.py                    # synthetic, CU-Net
  python train.py --config=configs/adversarial_pose.py:synthetic,hourglass
  python train.py --config=configs/adversarial_pose.py:mpii \
      --config.dataset=mpii:/data/mpii/mpii_human_pose_v1_u12_1.mat       # + holdout.txt beside it
  python train.py --config=configs/adversarial_pose.py:lsp --config.dataset=lsp:/data/lsp

The argument is the dataset (synthetic, mpii or lsp), optionally followed by ",hourglass" or
",cunet" (the default model of each dataset otherwise). The random-augmentation baseline of a run
is the same config with --config.method=heatmap_regression and --config.epochs reduced by
adversarial.pretrain_epochs, which gives both the same number of pose-network updates.

* synthetic: 64x64 figures, the CPU-sized CU-Net of configs/cunet_keypoints.py, batch 24 (thirds
  of 8, and it shards over 8 devices), 4 epochs of the pose network, 1 of pre-training G and 6
  joint; 500 of the 4,000 training figures held out to pick the best epoch, as in
  configs/cunet_keypoints.py.
* mpii / lsp: 256x256 crops, an 8-stack hourglass of width 256 (the paper's target network),
  batch 24; pose 100 epochs, pre-training 2, joint 48. These epoch counts are ours (the paper
  does not list them) and these two configs were not run here: no MPII or LSP data is at hand.
"""

from jaxaug.train import keypoints_config

DATASETS = {
    "synthetic": "synthetic",
    "mpii": "mpii:/data/mpii/mpii_human_pose_v1_u12_1.mat",
    "lsp": "lsp:/data/lsp",
}


def get_config(arg: str = "synthetic"):
    dataset, *options = arg.split(",")
    if dataset not in DATASETS:
        raise ValueError(f"adversarial_pose: unknown dataset {dataset!r}; use one of "
                         f"{', '.join(DATASETS)}")
    if len(options) > 1 or (options and options[0] not in ("hourglass", "cunet")):
        raise ValueError(f"adversarial_pose: unknown option(s) {options}; the model is "
                         "'hourglass' or 'cunet'")
    c = keypoints_config()
    c.method = "adversarial_pose"
    c.dataset = DATASETS[dataset]
    # The pose-adv-aug code (models/asn_stacked_hg.py) initializes as the CU-Net code does:
    # convs U(+-1/sqrt(fan_in)), BatchNorm gammas U(0, 1). Only our CU-Net has that option.
    c.cunet.initialization = "reference"
    if dataset == "synthetic":
        c.batch_size = 24
        c.epochs = 11
        c.adversarial.pose_epochs = 4
        c.adversarial.pretrain_epochs = 1
        c.model = "cunet"
        c.val_size = 500
    else:
        c.image_size = 256
        c.batch_size = 24
        c.epochs = 150
        c.adversarial.pose_epochs = 100
        c.adversarial.pretrain_epochs = 2
        c.model = "hourglass"
        c.hourglass = {"num_stacks": 8, "depth": 4, "features": 256, "stem_stride": 4,
                       "block": "residual", "growth": 32}
        c.cunet.update({"num_unets": 8, "depth": 4, "order": 1, "features": 128, "growth": 32,
                        "stem_stride": 4, "memory_efficient": True, "refine_iterations": 0,
                        "refine_growth": 16})
        c.heatmap_sigma = 1.0
        c.adversarial.width = 256
        if dataset == "lsp":
            c.pck_threshold = 0.2  # LSP reports PCK@0.2 of the torso
    if options:
        c.model = options[0]
    return c
