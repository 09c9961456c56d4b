"""Packs the reduced training subset and the test split of an image-folder dataset into a small zip.

  python bench/pack_reduced.py --source=../shared/data/cifar10-jpeg.zip \
      --dest=bench/.carry/cifar10-4000.zip [--reduced=4000] [--data_seed=0]

The training images kept are exactly those `load_dataset(..., reduced=N, seed=data_seed)` keeps
(`jaxaug.data.splits.reduce_indices` on the folder's labels), so training on the packed zip with
`--config.reduced=0` sees the subset a run on the full zip with `--config.reduced=N` sees. Members
are the original bytes (no re-encoding), stored uncompressed, in the imagefolder layout
`train/<class>/<file>` and `test/<class>/<file>`; the zip is written atomically.
bench/gpu_wheels.sh calls this for bench/gpu.sh, whose machine cannot carry the full 65 MB zip.
"""

import zipfile

from absl import app, flags

from jaxaug.data.atomic import write_atomic
from jaxaug.data.imagefolder import ImageFolder
from jaxaug.data.splits import reduce_indices

_SOURCE = flags.DEFINE_string("source", None, "Image folder (directory or .zip) to read.")
_DEST = flags.DEFINE_string("dest", None, "The zip to write.")
_REDUCED = flags.DEFINE_integer("reduced", 4000, "Class-balanced training images to keep.")
_DATA_SEED = flags.DEFINE_integer("data_seed", 0, "The config's data_seed: fixes the subset.")


def pack(source: str, dest: str, reduced: int, data_seed: int) -> dict[str, int]:
    """Writes `dest`; returns the number of images per split."""
    folder = ImageFolder(source)
    train_names, train_labels = folder.splits["train"]
    keep = reduce_indices(train_labels, reduced, len(folder.class_names), data_seed)
    members = {"train": [train_names[i] for i in keep], "test": folder.splits["test"][0]}

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for split, names in members.items():
                for name in names:
                    # `name` is `<folder>/<class>/<file>`; the test split may live in "test".
                    z.writestr(f"{split}/{name.split('/', 1)[1]}", folder._archive.read(name))

    write_atomic(dest, write)
    return {split: len(names) for split, names in members.items()}


def main(argv):
    del argv
    counts = pack(_SOURCE.value, _DEST.value, _REDUCED.value, _DATA_SEED.value)
    print(f"wrote {_DEST.value}: {counts['train']} train, {counts['test']} test images")


if __name__ == "__main__":
    flags.mark_flags_as_required(["source", "dest"])
    app.run(main)
