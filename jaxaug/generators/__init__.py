"""OnlineAugment's learned augmentation generators (Tang et al., ECCV 2020) as flax.linen modules.

- ``ASTN``: noise-conditioned MLP -> one global affine transform per image, theta [B, 2, 3] in
  normalised coordinates; ``apply_astn`` builds the doubled batch concat([T(x), T^-1(x)]) and
  ``normalized_to_pixel`` / ``invert`` convert and invert theta; ``cycle_images`` warps the doubled
  batch back for the cycle-consistency regulariser.
- ``DeformVAE``: conv VAE -> dense displacement field (pixels) applied with ``jaxaug.ops.deform``.
- ``PerturbVAE``: conv VAE -> additive image perturbation.
- ``PoseAdversary``: the adversarial pose augmentation network (ASR scale / rotation bins and the
  AHO occlusion grid, Peng et al. 2018) with ``sample_binned`` and ``occlusion_mask``.
- ``TeachAugmenter``: TeachAugment's colour + geometric augmentation network (Suzuki, CVPR 2022),
  applied with ``apply_color`` and ``apply_geometric``.
- ``MeanFieldGenerator`` / ``LSTMGenerator``: TANDA's generators of TF sequences (plain
  dataclasses with init / sample / score, not image modules).

The image generators take float NHWC batches and draw their randomness from the ``"noise"`` rng
stream.
"""

from jaxaug.generators.astn import ASTN, apply_astn, cycle_images, invert, normalized_to_pixel
from jaxaug.generators.pose_adversary import (
    PoseAdversary,
    bin_centres,
    occlusion_mask,
    sample_binned,
)
from jaxaug.generators.sequence import LSTMGenerator, MeanFieldGenerator
from jaxaug.generators.teach import TeachAugmenter, apply_color, apply_geometric
from jaxaug.generators.vae import DeformVAE, PerturbVAE

__all__ = ["ASTN", "DeformVAE", "LSTMGenerator", "MeanFieldGenerator", "PerturbVAE", "PoseAdversary", "TeachAugmenter",
           "apply_astn", "apply_color", "apply_geometric", "bin_centres",
           "cycle_images", "invert", "normalized_to_pixel", "occlusion_mask", "sample_binned"]
