"""CU-Net (or the stacked hourglass) on the synthetic articulated-figure keypoints, full precision
or quantized.

  python train.py --config=configs/cunet_keypoints.py                  # full precision CU-Net
  python train.py --config=configs/cunet_keypoints.py:818              # 8-bit features, binary
                                                                       # weights, 8-bit gradients
  python train.py --config=configs/cunet_keypoints.py:tw,hourglass     # ternary-weight hourglass

The argument is a quantization setting of jaxaug.quant.SETTINGS (fp; the thesis's 818, 616, 828,
626, 818_alpha, bw, bw_alpha, tw; our range-4 variants 818_r4, 616_r4, 828_r4, 626_r4; see the
README's table; with the suffix "+int8", e.g. 818+int8, the layers keep int8 feature codes
for the backward pass: jaxaug.quant.residuals), optionally followed by ",hourglass". 64x64
figures, 2 coupled U-Nets of depth 2 (m = 64, n = 16) on 16x16 heatmaps, RMSProp 2.5e-4, batch 32, 10 epochs of 3,500 images: a
CPU-sized run (~0.4 s per step on 2 cores). The papers' sizes are in jaxaug/train/config.py.
Every setting starts from the official code's initialization
(``cunet.initialization = "reference"``: convs U(+-1/sqrt(fan_in)), BatchNorm gammas U(0, 1)), as
the thesis's runs did.
500 of the 4,000 training figures are held out as the validation split that picks the best epoch
(as the thesis holds 3K of MPII's training set out as its validation set); the score to report is
summary.json's test_pckh_at_best_val.
Real data: --config.dataset=mpii:/path/mpii_human_pose_v1_u12_1.mat (see load_keypoints).
"""

from jaxaug.train import keypoints_config


def get_config(arg: str = "fp"):
    parts = arg.split(",")
    c = keypoints_config()
    c.quant = parts[0]
    c.val_size = 500
    c.cunet.initialization = "reference"
    if parts[1:] == ["hourglass"]:
        c.model = "hourglass"
    elif parts[1:]:
        raise ValueError(f"cunet_keypoints: unknown option(s) {parts[1:]}; the only one is "
                         "'hourglass'")
    return c
