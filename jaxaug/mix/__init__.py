"""Batch mixing: MixUp, CutMix and timm's per-batch / pair / element switch between them.

A batch x [B, H, W, C] with labels y is mixed with its flip: sample i with j = B - 1 - i.

- MixUp (Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization",
  ICLR 2018, arXiv:1710.09412): lam ~ Beta(alpha, alpha), x_i <- lam x_i + (1 - lam) x_j.
- CutMix (Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
  Classifiers with Localizable Features", ICCV 2019, arXiv:1905.04899): lam ~ Beta(alpha, alpha),
  x_i <- M x_i + (1 - M) x_j with M zero on a box of side ratio sqrt(1 - lam), so that it covers
  about 1 - lam of the image; lam is then corrected to 1 - box area / image area, the exact share
  of x_i's own pixels once the box is clipped to the image.
- Both give the soft targets t_i = lam q_i + (1 - lam) q_j, q = (1 - eps) onehot(y) + eps / K
  (label smoothing eps), which a soft-target cross-entropy
  (`jaxaug.objectives.softmax_cross_entropy` with labels [B, K]) then trains on.

The sampling follows timm (`timm/data/mixup.py` of huggingface/pytorch-image-models: `Mixup`,
`rand_bbox`, `rand_bbox_minmax`, `mixup_target`); `Mixup`'s docstring lists where this differs.
Everything is a pure function of a PRNG key and arrays, with no Python branching on traced
values, so it runs inside a jitted training step.
"""

from jaxaug.mix.beta import symmetric_beta
from jaxaug.mix.mixing import MODES, Mixup, cutmix, mixup
from jaxaug.mix.targets import mix_targets, smooth_targets

__all__ = [
    "MODES", "Mixup", "cutmix", "mix_targets", "mixup", "smooth_targets", "symmetric_beta",
]
