"""`make demo`: a learned augmentation beside the plain baseline, on the built-in shapes dataset.

  python demo.py [--workdir=workdirs/demo]

Trains `configs/demo.py:baseline` (supervised), `configs/demo.py:astn` (OnlineAugment with an
A-STN generator), identical but for the method, and `configs/demo.py:baseline_2x` (the baseline
with twice the epochs, as many target updates as A-STN), prints the three test accuracies and
A-STN's differences from both baselines, and writes `<workdir>/generated.png`: test images (top
row) and what the trained A-STN made of them, T(x) (middle row) and T^-1(x) (bottom row).
Rerunning resumes each run from its workdir: a finished run is not trained again (delete the
workdir to retrain).
"""

import os
import sys
import time

import jax
import numpy as np

from jaxaug.data import save_image_grid
from jaxaug.ops.point import to_float, to_uint8
from jaxaug.train import load_trained, train_and_evaluate
from jaxaug.train.config import load_config_file

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.py")
SCALE = 4  # nearest-neighbour upscaling of the small images in the PNG
LABELS = {"baseline": "baseline (supervised)",
          "baseline_2x": "baseline, as many updates as A-STN",
          "astn": "OnlineAugment A-STN"}


def get_config(variant):
    return load_config_file(CONFIG, variant)


def write_generated(workdir, path, seed):
    """The first test image of each class and the trained generator's [T(x), T^-1(x)] of them,
    one row each; returns the mean absolute change T(x) - x of the pixels, in [0, 1] units."""
    run = load_trained(workdir)
    dataset = run["dataset"]
    _, labels = dataset.test.get(np.arange(min(len(dataset.test), 500)))
    first = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    images, _ = dataset.test.get(np.asarray(first))
    generated = jax.jit(run["method"].generate)(run["state"], to_float(images),
                                                jax.random.key(seed))
    pixels = np.asarray(to_uint8(generated))
    grid = np.concatenate([images, pixels]).repeat(SCALE, axis=1).repeat(SCALE, axis=2)
    save_image_grid(grid, path, nrow=len(images))
    return float(np.mean(np.abs(pixels[:len(images)].astype(np.float32) - images)) / 255)


def main(argv):
    workdir = "workdirs/demo"
    for arg in argv[1:]:
        if not arg.startswith("--workdir="):
            sys.exit(f"usage: python demo.py [--workdir=DIR]; unexpected argument {arg!r}")
        workdir = arg.partition("=")[2]
    start = time.perf_counter()
    accuracy = {}
    for variant in LABELS:
        print(f"{LABELS[variant]}: training in {os.path.join(workdir, variant)} (a finished run "
              "there is reused)", flush=True)
        summary = train_and_evaluate(get_config(variant), os.path.join(workdir, variant))
        accuracy[variant] = summary["last_test_accuracy"]
    path = os.path.join(workdir, "generated.png")
    change = write_generated(os.path.join(workdir, "astn"), path, get_config("astn").seed)

    print()
    for variant in LABELS:
        print(f"{LABELS[variant] + ' test accuracy:':<50} {accuracy[variant]:.4f}")
    astn = accuracy["astn"]
    for variant, what in (("baseline", "baseline"), ("baseline_2x", "baseline_2x")):
        gain = astn - accuracy[variant]
        verdict = "higher" if gain > 0 else "lower" if gain < 0 else "the same"
        print(f"{f'difference (A-STN - {what}):':<50} {gain:+.4f} (A-STN {verdict}; one seed)")
    print("note: an A-STN step updates the target twice (on the generated images, then on the "
          "clean batch), a baseline step once; baseline_2x trains twice the epochs, so the "
          "difference from it is the one that the extra updates do not explain")
    print(f"wrote {path}: test images (top), the trained A-STN's T(x) (middle) and T^-1(x) "
          f"(bottom); mean |T(x) - x| per pixel {change:.3f} (0 for the identity)")
    print(f"demo time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv)
