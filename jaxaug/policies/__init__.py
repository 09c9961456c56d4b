"""Augmentation policies: the published tables as data, their level-to-parameter mappings, pure
`(key, img) -> img` policies (AutoAugment, RandAugment, TrivialAugment-Wide, AugMix, the random
composition of uncertainty-based sampling) run as fused stages, timm's policy strings (`timm`:
``rand-m9-n2-mstd0.5``, ``augmix-m3-w3``), one draw per batch (`same_on_batch`), a searched table
written to and read back from JSON (`write_table`, `load_table`, what ``get("table:<path>")``
runs), the learnable `PolicyDistribution` of the REINFORCE methods, and the autoregressive LSTM
`PolicyController` of Adversarial AutoAugment; `export`, the command that writes a searched
policy's table (``python -m jaxaug.policies.export``); `episodes`, AdaTransform's K-step episodes
of discrete image actions; `sequences`, TANDA's TF sequences."""

from jaxaug.policies import episodes, sequences, timm
from jaxaug.policies.apply import apply_steps
from jaxaug.policies.augmix_policy import AugMix, augmix
from jaxaug.policies.controller import PolicyController
from jaxaug.policies.distribution import PolicyDistribution
from jaxaug.policies.levels import level_to_arg
from jaxaug.policies.policy import (
    POLICY_NAMES,
    Policy,
    apply_actions,
    autoaugment,
    get,
    load_table,
    randaugment,
    random_composition,
    same_on_batch,
    trivial_augment_wide,
    write_table,
)
from jaxaug.policies.tables import POLICIES, validate_policy

__all__ = [
    "POLICIES", "POLICY_NAMES", "AugMix", "Policy", "PolicyController", "PolicyDistribution",
    "apply_actions", "apply_steps", "augmix", "autoaugment", "episodes", "get", "level_to_arg",
    "load_table",
    "randaugment", "random_composition", "same_on_batch", "sequences", "timm", "trivial_augment_wide", "validate_policy",
    "write_table",
]
