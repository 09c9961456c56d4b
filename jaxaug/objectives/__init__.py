"""Pure training objectives: each takes params and a batch and returns ``(loss, aux)``.

Elementary terms (adversarial weighting, generator regularisers) are plain functions of arrays
returning a scalar. `meta_loss` is OnlineAugment's unrolled meta-gradient objective; `reinforce`
holds the score-function (REINFORCE) surrogate, returns, baselines and entropy bonus;
`discriminator_loss` and `log_realness` are the GAN terms of AdaTransform and TANDA.
`heatmap_mse` / `heatmap_loss` and the metrics `pck`, `pckh`, `nme` serve keypoint models.
"""

from jaxaug.objectives import adatransform, reinforce, tanda
from jaxaug.objectives.adversarial import adversarial_loss, gradient_reversal
from jaxaug.objectives.classification import (
    TargetLoss,
    cross_entropy,
    hard_labels,
    softmax_cross_entropy,
)
from jaxaug.objectives.consistency import (
    consistency_objective,
    jensen_shannon_consistency,
)
from jaxaug.objectives.discriminator import (
    discriminator_loss,
    discriminator_objective,
    log_realness,
)
from jaxaug.objectives.keypoints import (
    MPII_HEAD_SIZE_FACTOR,
    MPII_PCKH_JOINTS,
    OUTER_EYE_CORNERS_68,
    heatmap_loss,
    heatmap_loss_per_example,
    heatmap_mse,
    heatmap_objective,
    mpii_head_size,
    nme,
    pck,
    pckh,
)
from jaxaug.objectives.meta import meta_loss, unroll
from jaxaug.objectives.pose_adversary import (
    adversary_objective,
    aho_pretraining_target,
    asr_pretraining_targets,
    kl_to_target,
    reward_penalty_target,
)
from jaxaug.objectives.regularizers import (
    deformation_magnitude,
    deformation_smoothness,
    gaussian_kl,
    perturbation_l2,
    reconstruction_loss,
    stn_cycle_consistency,
    total_generator_loss,
)

__all__ = [
    "TargetLoss",
    "MPII_HEAD_SIZE_FACTOR",
    "MPII_PCKH_JOINTS",
    "OUTER_EYE_CORNERS_68",
    "adatransform",
    "adversarial_loss",
    "adversary_objective",
    "aho_pretraining_target",
    "asr_pretraining_targets",
    "consistency_objective",
    "cross_entropy",
    "deformation_magnitude",
    "deformation_smoothness",
    "discriminator_loss",
    "discriminator_objective",
    "gaussian_kl",
    "gradient_reversal",
    "hard_labels",
    "heatmap_loss",
    "heatmap_loss_per_example",
    "heatmap_mse",
    "heatmap_objective",
    "jensen_shannon_consistency",
    "kl_to_target",
    "log_realness",
    "meta_loss",
    "mpii_head_size",
    "nme",
    "pck",
    "pckh",
    "perturbation_l2",
    "reconstruction_loss",
    "reinforce",
    "reward_penalty_target",
    "softmax_cross_entropy",
    "stn_cycle_consistency",
    "tanda",
    "total_generator_loss",
    "unroll",
]
