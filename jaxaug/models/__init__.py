"""Target networks: Wide-ResNet, Shake-Shake and ResNet with multi-set BatchNorm.

``create(name, num_classes, num_bn_sets, dtype)`` returns a flax.linen Module applied as
``model.apply(variables, images, train=..., bn_set=0, rngs=..., mutable=...)`` on normalized NHWC
images; it returns float32 logits. ``Normalized(model, Normalization(mean, std))`` makes the
normalization the network's first operation, so that it reads images in [0, 1] (the trainer builds
every network so). ``create(..., cnsn=norm.CNSNPlacement(...))`` puts SelfNorm / CrossNorm
(`SelfNorm`, `CrossNorm`) in every block of a WRN or ResNet.

Beside them: the keypoint models, ``create_pose_model("cunet" | "hourglass", num_joints, ...)``
(`CUNet`, full precision or quantized, and `StackedHourglass`), which return heatmaps; the
DCGAN-style `Discriminator` of AdaTransform and TANDA; AdaTransform's policy network
`TransformerNet`. See docs/architecture.md.
"""

from jaxaug.models.batchnorm import MultiBatchNorm
from jaxaug.models.cunet import CUNet
from jaxaug.models.discriminator import Discriminator
from jaxaug.models.hourglass import StackedHourglass
from jaxaug.models.norm import CrossNorm, SelfNorm
from jaxaug.models.normalized import Normalization, Normalized
from jaxaug.models.pose import create_pose_model
from jaxaug.models.registry import ACCEPTED_PATTERNS, count_params, create
from jaxaug.models.resnet import ResNet
from jaxaug.models.shake_shake import ShakeShake, shake_shake_combine
from jaxaug.models.transformer_net import TransformerNet
from jaxaug.models.wide_resnet import WideResNet

__all__ = [
    "TransformerNet",
    "ACCEPTED_PATTERNS",
    "CUNet",
    "CrossNorm",
    "Discriminator",
    "MultiBatchNorm",
    "Normalization",
    "Normalized",
    "ResNet",
    "SelfNorm",
    "ShakeShake",
    "StackedHourglass",
    "WideResNet",
    "count_params",
    "create",
    "create_pose_model",
    "shake_shake_combine",
]
