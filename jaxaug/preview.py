"""Writes a PNG grid of dataset images beside augmented copies, to see what a policy does.

  python -m jaxaug.preview --policy=autoaugment_cifar10 --dataset=synthetic --out=grid.png

One row per original: the original first, then --copies augmented copies, each with its own key.
"""

import os

import jax
import numpy as np
from absl import app, flags

from jaxaug import policies
from jaxaug.data import DataError, load_dataset, save_image_grid
from jaxaug.ops.point import to_float, to_uint8

_POLICY = flags.DEFINE_enum("policy", None, policies.POLICY_NAMES, "Augmentation policy.")
_DATASET = flags.DEFINE_string(
    "dataset", "synthetic",
    "'synthetic', 'imagefolder:<dir|zip>', 'arrayrecord:<dir>' or 'tfds:<name>'.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "tfds data_dir; base of relative imagefolders.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Decoded-array cache (default ~/.cache/jaxaug)."
)
_SPLIT = flags.DEFINE_enum("split", "train", ["train", "test"], "Split to take images from.")
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 8, "Originals (rows): the split's first N.", lower_bound=1
)
_COPIES = flags.DEFINE_integer("copies", 4, "Augmented copies per original.", lower_bound=1)
_NUM_OPS = flags.DEFINE_integer("num_ops", 2, "RandAugment's number of ops.", lower_bound=1)
_MAGNITUDE = flags.DEFINE_integer(
    "magnitude", 9, "RandAugment's magnitude.", lower_bound=0, upper_bound=10
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the augmentation keys.")
_OUT = flags.DEFINE_string("out", None, "PNG file to write.")
flags.mark_flags_as_required(["policy", "out"])


def augment_rows(policy, images, copies, seed):
    """uint8 [N, H, W, C] -> uint8 [N, 1 + copies, H, W, C]: each original, then its copies."""
    keys = jax.random.split(jax.random.key(seed), (len(images), copies))
    # Inner vmap over one image's copies, outer over images: a single compiled call for all.
    per_image = jax.vmap(policy, in_axes=(0, None))
    augmented = jax.jit(jax.vmap(per_image))(keys, to_float(images))
    return np.concatenate([images[:, None], np.asarray(to_uint8(augmented))], axis=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Checked before loading and augmenting, so a typo in --out costs nothing.
    out_dir = os.path.dirname(os.path.abspath(_OUT.value))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        raise app.UsageError(f"--out={_OUT.value}: {out_dir} is not a writable directory")
    policy = policies.get(_POLICY.value, num_ops=_NUM_OPS.value, magnitude=_MAGNITUDE.value)
    try:
        dataset = load_dataset(
            _DATASET.value, data_dir=_DATA_DIR.value, cache_dir=_CACHE_DIR.value
        )
    except DataError as e:  # The data errors name the problem; say which flag to fix.
        raise app.UsageError(f"--dataset={_DATASET.value}: {e}") from e
    source = getattr(dataset, _SPLIT.value)
    if _NUM_IMAGES.value > len(source):
        raise app.UsageError(
            f"--num_images={_NUM_IMAGES.value} exceeds the {len(source)} images of --split="
            f"{_SPLIT.value}"
        )
    images, _ = source.get(np.arange(_NUM_IMAGES.value))
    rows = augment_rows(policy, images, _COPIES.value, _SEED.value)
    save_image_grid(rows.reshape(-1, *rows.shape[2:]), _OUT.value, nrow=1 + _COPIES.value)
    print(f"Wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
