"""`make demo`: OnlineAugment's A-STN beside the plain baseline, a few CPU minutes in all.

  python demo.py                                   # both runs, then the comparison and the grid
  python train.py --config=configs/demo.py:baseline --workdir=workdirs/demo/baseline
  python train.py --config=configs/demo.py:astn --workdir=workdirs/demo/astn

The two variants share everything (data, model, seed, epochs, schedule, the standard crop and
flip) and differ only in the method: "baseline" is plain supervised training, "astn" is
OnlineAugment with an A-STN generator and the papers' A-STN settings (beta 0.1, cycle weight 0.1,
generator Adam lr 1e-3; Tang thesis, sec. 4.5.1) with inner_num 1 (the official reduced-data
scripts use 4): each step updates the target twice, on the generated images, then on the clean
batch (sec. 4.3), where the baseline updates it once; "baseline_2x" is the baseline with twice
the epochs, so with as many target updates as "astn".

The sizes are the demo's, chosen so that both runs, their compilation included, take about
1.5 CPU minutes on 2 cores: 2,000 training images rendered at 24 x 24, WRN-10-1, batch 32,
4 epochs (248 steps), evaluated on the 2,000 test images after every epoch. At 32 x 32 the A-STN
run took about 1.5x the CPU time, and its generator had barely left the identity initialisation
after the 248 steps (mean |T(x) - x| 0.005 against 0.07 at 24 x 24, measured once each): at the
identity its adversarial gradient is zero (T and T^-1 cancel), so when it leaves depends on the
run.

Why A-STN: CPU seconds of the first (compiling) step and of one step after it, WRN-10-1, batch 32,
32 x 32, measured once on the shared 2-core CPU: supervised 6.3 s / 75 ms, A-STN 23.9 s / 258 ms,
P-VAE 36.8 s / 810 ms, D-VAE 38.3 s / 840 ms, AdaCutout 67.8 s / 1289 ms. TANDA (mean field,
22.6 s / 229 ms) and Adversarial AutoAugment with 2 policies (28.2 s / 210 ms) cost about as much
as A-STN, but in 248 steps neither would train the target on a learned augmentation: TANDA's
target sees clean images for its first 500 steps, and Adversarial AutoAugment's controller updates
once per epoch.
"""

from jaxaug.train.config import base_config

VARIANTS = ("baseline", "baseline_2x", "astn")


def get_config(variant="astn"):
    if variant not in VARIANTS:
        raise ValueError(f"configs/demo.py: unknown variant {variant!r}; valid: "
                         f"{', '.join(VARIANTS)}")
    config = base_config()
    config.dataset = "synthetic"
    config.image_size = 24
    config.reduced = 2000
    config.model = "wrn-10-1"
    config.epochs = 4
    config.batch_size = 32
    config.optimizer.lr = 0.05
    config.log_every_steps = 50
    config.save_image_grid = False
    config.num_bn_sets = 2  # A-STN's images get their own set; the baseline leaves it unused
    if variant == "baseline_2x":  # as many target updates as A-STN's: 2 per step
        config.epochs *= 2
    if variant == "astn":
        config.method = "online_augment"
        config.online_augment.generator = "astn"
    return config
