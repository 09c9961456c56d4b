"""Augmentation policies: the published tables as data, their level-to-parameter mappings, pure
`(key, img) -> img` policies (AutoAugment, RandAugment, TrivialAugment-Wide) run as fused stages,
the learnable `PolicyDistribution` of the REINFORCE methods, and the autoregressive LSTM
`PolicyController` of Adversarial AutoAugment; `episodes`, AdaTransform's K-step episodes of
discrete image actions; `sequences`, TANDA's TF sequences."""

from jaxaug.policies import episodes, sequences
from jaxaug.policies.apply import apply_steps
from jaxaug.policies.controller import PolicyController
from jaxaug.policies.distribution import PolicyDistribution
from jaxaug.policies.levels import level_to_arg
from jaxaug.policies.policy import (
    POLICY_NAMES,
    Policy,
    apply_actions,
    autoaugment,
    get,
    randaugment,
    trivial_augment_wide,
)
from jaxaug.policies.tables import POLICIES, validate_policy

__all__ = [
    "POLICIES", "POLICY_NAMES", "Policy", "PolicyController", "PolicyDistribution", "apply_actions", "apply_steps",
    "autoaugment", "episodes", "get", "level_to_arg", "randaugment", "sequences", "trivial_augment_wide",
    "validate_policy",
]
