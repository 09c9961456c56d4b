"""Images/s per input worker for an ImageNet-style recipe: decode a JPEG, RandomResizedCrop(224),
horizontal flip, RandAugment(2, 9), three ways, in one run.

  python bench/input_pipeline.py [--images=256] [--batch=32] [--repeats=5]

A folder of generated JPEGs (``<tmp>/train/<class>/<n>.jpg``, sides uniform in 256-500 px,
quality 90, smooth random content) is timed in ONE process (one worker's share):

- pillow: a plain per-image Pillow loop, as a torchvision-style loader runs it: decode at full
  size, a torchvision RandomResizedCrop box drawn in Python, ``crop(box).resize((224, 224),
  BILINEAR)``, flip, two RandAugment steps at magnitude 9 drawn in Python and applied by
  `jaxaug.policies.pil_reference`.
- host: the library's decoder (`imagefolder.decode_image`, resized to 224 x 224 as the loader
  does) per image, then `host_augment.HostAugment` on each batch: the draws of
  `augment.sample_standard` (JAX on the CPU), applied with numpy and Pillow.
- device: the same decoding, then the jitted `augment.standard` on the JAX device (its float
  output waited for).
- decode: the decoding alone (the floor of host and device).
- grain_wN: the trainer's pipeline with ``augment.where = "host"``: the folder streamed
  (`load_dataset(..., stream=True)`), `train_dataset` with `steps.HostAugmentation`, read by
  `iterate(..., worker_count=N)` for N in --workers; timed after a first pass that starts the
  workers and compiles their samplers, and reported per worker (images/s / N).

The crop of host and device is drawn in the 224 x 224 decoded image (the loader's resize comes
first), pillow's in the full image, as torchvision does. Every figure is the median of --repeats
passes over all images after a warm-up pass (which compiles), the cases taking turns within
each repeat; ratios are within this run.
"""

import math
import os
import random
import statistics
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from PIL import Image

from jaxaug import data, policies
from jaxaug.data import augment, host_augment, imagefolder
from jaxaug.policies import apply, levels, pil_reference, tables
from jaxaug.train import steps
from jaxaug.train.config import base_config

_IMAGES = flags.DEFINE_integer("images", 256, "JPEGs to generate and time.")
_BATCH = flags.DEFINE_integer("batch", 32, "Batch size of host and device.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed passes per case (the median is kept).")
_WORKERS = flags.DEFINE_list("workers", ["1", "2"], "grain worker counts to time.")
SIZE = 224
MAGNITUDE, NUM_OPS = 9, 2


def write_jpegs(root: str, n: int, seed: int = 0) -> list[str]:
    """n JPEGs under root/train/<class>/, sides uniform in [256, 500]: a random 8 x 8 colour grid
    upsampled bicubically plus noise, so that they compress like photographs, not flat colour."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        h, w = rng.integers(256, 501, 2)
        grid = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        base = np.asarray(grid.resize((int(w), int(h)), Image.Resampling.BICUBIC), np.int16)
        pixels = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
        folder = os.path.join(root, "train", f"class{i % 4}")
        os.makedirs(folder, exist_ok=True)
        paths.append(os.path.join(folder, f"{i:04d}.jpg"))
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def torchvision_box(rng: random.Random, height: int, width: int,
                    scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """torchvision `RandomResizedCrop.get_params` in Python: (top, left, h, w)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def pillow_recipe(path: str, rng: random.Random) -> np.ndarray:
    """The plain per-image loop's work on one file."""
    with Image.open(path) as image:
        img = image.convert("RGB")
    top, left, h, w = torchvision_box(rng, img.height, img.width)
    img = img.crop((left, top, left + w, top + h)).resize((SIZE, SIZE),
                                                          Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for _ in range(NUM_OPS):
        op = rng.choice(tables.RANDAUGMENT_OPS)
        value = levels.level_to_arg(op, MAGNITUDE, image_size=SIZE, variant="randaugment")
        if levels.is_signed(op, variant="randaugment") and rng.random() < 0.5:
            value = 2.0 - value if op in apply.BLEND_OPS else -value
        img = pil_reference.apply_op(img, op, value)
    return np.asarray(img)


def decode(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        return imagefolder.decode_image(f.read(), path, SIZE)


def batches(paths: list[str], batch: int):
    for start in range(0, len(paths) - batch + 1, batch):
        yield start // batch, np.stack([decode(p) for p in paths[start:start + batch]])


def grain_seconds(root: str, batch: int, workers: int, repeats: int) -> float:
    """Median seconds per pass over the folder's training images through the trainer's grain
    pipeline with host augmentation in `workers` worker processes."""
    dataset = data.load_dataset(f"imagefolder:{root}", image_size=SIZE, stream=True)
    config = base_config().augment
    config.update(crop="random_resized", policy="randaugment", num_ops=NUM_OPS,
                  magnitude=MAGNITUDE, where="host")
    transform = steps.HostAugmentation(config, dataset.mean, True, seed=0,
                                       global_batch_size=batch, offset=0)
    stream = data.train_dataset(dataset.train, batch, seed=0, epochs=repeats + 1,
                                transform=transform)
    per_pass = len(stream) // (repeats + 1)
    iterator = data.iterate(stream, worker_count=workers)
    try:
        for _ in range(per_pass):  # starts the workers, compiles their samplers
            next(iterator)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(per_pass):
                next(iterator)
            times.append(time.perf_counter() - start)
    finally:
        iterator.close()
    return statistics.median(times)


def median_seconds(cases: dict, repeats: int) -> dict:
    """{name: median seconds} of each case, the cases interleaved within every repeat so that a
    change of load on a shared machine reaches them all alike."""
    for fn in cases.values():
        fn()  # warm-up: compiles, fills the page cache
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv):
    del argv
    device = jax.devices()[0]
    settings = dict(crop="random_resized", flip=True,
                    policy=policies.randaugment(NUM_OPS, MAGNITUDE))
    host = host_augment.HostAugment(**settings)
    on_device = jax.jit(lambda key, images: augment.standard(key, {"image": images},
                                                             **settings)["image"])
    with tempfile.TemporaryDirectory() as root:
        paths = write_jpegs(root, _IMAGES.value)
        write_jpegs(os.path.join(root, "held_out"), 4, seed=1)  # the test split a folder needs
        os.rename(os.path.join(root, "held_out", "train"), os.path.join(root, "test"))
        sizes = [Image.open(p).size for p in paths]
        timed = len(paths) - len(paths) % _BATCH.value  # whole batches only, for every case
        paths = paths[:timed]
        print(f"device: {device.platform} ({device.device_kind}); {timed} JPEGs, mean "
              f"{np.mean(sizes, axis=0).round().astype(int).tolist()} px (w, h); batch "
              f"{_BATCH.value}; repeats {_REPEATS.value} (median)")

        def pillow():
            rng = random.Random(0)
            for p in paths:
                pillow_recipe(p, rng)

        def decode_only():
            for _ in batches(paths, _BATCH.value):
                pass

        def host_pass():
            for i, images in batches(paths, _BATCH.value):
                host(i, images)

        def device_pass():
            for i, images in batches(paths, _BATCH.value):
                jax.block_until_ready(on_device(jax.random.key(i), images))

        seconds = median_seconds({"pillow": pillow, "decode": decode_only, "host": host_pass,
                                  "device": device_pass}, _REPEATS.value)
        ips = {name: timed / s for name, s in seconds.items()}
        for workers in map(int, _WORKERS.value):
            # Per worker: the figure the one-process cases compare with.
            ips[f"grain_w{workers}"] = timed / grain_seconds(root, _BATCH.value, workers,
                                                             _REPEATS.value) / workers
    for name, value in ips.items():
        print(f"{name:<8}{value:>10.0f} img/s")
    ratios = {"host_vs_pillow": ips["host"] / ips["pillow"],
              "device_vs_pillow": ips["device"] / ips["pillow"],
              "host_vs_device": ips["host"] / ips["device"]}
    print("  ".join(f"{k} {v:.3g}" for k, v in ratios.items()))
    fields = [f"device={device.platform}", f"device_kind={device.device_kind.replace(' ', '_')}",
              f"images={timed}", f"batch={_BATCH.value}"]
    fields += [f"{k}_ips={v:.1f}" for k, v in ips.items()]
    fields += [f"{k}={v:.3g}" for k, v in ratios.items()]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
