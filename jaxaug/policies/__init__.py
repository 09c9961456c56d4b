"""Augmentation policies: published policy tables and level-to-parameter mappings."""
