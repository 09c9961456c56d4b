"""Images/s of the JAX policies and ops against a per-image Pillow loop and against augmax.

  python bench/ops_throughput.py [--repeats=5] [--quick]

On 1024 images at 32x32 and 128 at 224x224 (CIFAR-10 test images from
../shared/data/cifar10-jpeg.zip when present, else synthetic):

- RandAugment(2, 9) and AutoAugment CIFAR-10: ours is `jax.jit(jax.vmap(policy))` with the fused
  (default) and the sequential (`fuse=False`) schedule; Pillow is `pil_reference.apply_steps` on
  the very same sampled steps, one image at a time on uint8 images.
- The recipe ops: `random_resized_crop` (back to the input size), `color_jitter(0.4, 0.4, 0.4,
  0.1)` and `gaussian_blur(sigma=1)`, against a Pillow loop doing the same work (`resize` with
  the crop box; ImageEnhance brightness, contrast and colour plus an HSV hue shift; `GaussianBlur
  (radius=1)`) and against augmax's `RandomSizedCrop`, `ColorJitter(p=1)`, `GaussianBlur(p=1)`
  (their own sampling: augmax's crop draws a zoom in (0.5, 2) rather than an area fraction).
- At 224 only, an ImageNet-style recipe per image: random resized crop, flip, RandAugment(2, 9);
  Pillow runs the same crop boxes, flips and steps; augmax has no RandAugment, so its figure is
  `RandomSizedCrop` + `HorizontalFlip` alone (a lower bound on its cost for the recipe).

Every figure is the median of --repeats timed runs after a warm-up; ratios are within this run.
"""

import io
import os
import statistics
import time
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from PIL import Image

from jaxaug import ops, policies
from jaxaug.data import synthetic
from jaxaug.ops.crop import crop_box
from jaxaug.policies import pil_reference

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (the median is kept).")
_QUICK = flags.DEFINE_bool("quick", False, "Small batches and 2 repeats, for smoke testing.")

_ZIP = flags.DEFINE_string(
    "images_zip", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                               "cifar10-jpeg.zip"),
    "An image-folder zip whose test/ images are timed (synthetic images when it is absent).")


def load_images(n: int, size: int) -> tuple[np.ndarray, str]:
    """n uint8 [size, size, 3] images: CIFAR-10 test images (bilinear-resized), else synthetic."""
    if os.path.exists(_ZIP.value):
        with zipfile.ZipFile(_ZIP.value) as z:
            names = sorted(m for m in z.namelist() if m.startswith("test/") and m.endswith(".jpg"))
            # Spread over the classes rather than taking n images of the first class.
            names = names[:: max(1, len(names) // n)][:n]
            imgs = [Image.open(io.BytesIO(z.read(m))).convert("RGB") for m in names]
        source = "cifar10-test"
    else:
        imgs = [Image.fromarray(x) for x in synthetic.generate(n, seed=0)[0]]
        source = "synthetic"
    if size != 32:
        imgs = [im.resize((size, size), Image.Resampling.BILINEAR) for im in imgs]
    return np.stack([np.asarray(im) for im in imgs]), source


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_jax(fn, keys, images, repeats: int) -> tuple[float, float]:
    """(compile seconds, median seconds per batch) of jax.jit(jax.vmap(fn))."""
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(fn)).lower(keys, images).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(keys, images))  # warm-up: first-run allocations
    return compile_s, median_seconds(lambda: jax.block_until_ready(compiled(keys, images)), repeats)


def time_pillow(policy, keys, uint8_images, repeats: int) -> float:
    """Median seconds for the Pillow loop over the batch, on the steps `policy(key, img)` draws."""
    size = max(uint8_images.shape[1:3])
    # Same keys, same split as Policy.__call__, so both sides run identical steps; the sampling
    # and the list building are kept out of the timed loop.
    op_index, value, applied = jax.device_get(
        jax.vmap(lambda k: policy.sample(jax.random.split(k)[0], size))(keys))
    steps = [[(policy.op_names[o], float(v)) for o, v, a in zip(*row) if a]
             for row in zip(op_index.tolist(), value.tolist(), applied.tolist())]
    pil_images = list(uint8_images)

    def loop():
        for img, img_steps in zip(pil_images, steps):
            np.asarray(pil_reference.apply_steps(Image.fromarray(img), img_steps))
    return median_seconds(loop, repeats)


def _rotate_solarize(key, img):
    """Our ops called directly, drawing the angle as augmax.Rotate(15) does."""
    angle = jax.random.uniform(key, (), minval=-15.0, maxval=15.0)
    return ops.solarize(ops.rotate(img, angle, interpolation="bilinear", fill=0.0), 0.5)


def augmax_comparison(keys, images, repeats: int):
    """(ours as ops, ours as a policy, augmax) images/s on rotate then solarize, or None if
    augmax is unavailable. "ops" calls jaxaug.ops directly (the like-for-like comparison);
    "policy" runs the same two steps through the policy machinery (sampling and stages).

    Compared ops, both applied to every image (probability 1), in this order:
    * rotate: augmax.Rotate(15) draws an angle uniform in [-15, 15] degrees; ours (level 5)
      rotates by exactly +-15 degrees. Both rotate about the image centre. augmax resamples
      bilinearly (map_coordinates order=1) and fills with 0 (black); we run ours with
      interpolation="bilinear", fill=0.0 to match (our default is nearest with grey fill).
    * solarize: augmax.Solarization(0.5) inverts pixels > 0.5 on the float values; ours (level
      5) inverts pixels whose 8-bit level is >= 128, through a 256-entry LUT (so ours also
      quantises the output to 8-bit levels).
    """
    try:
        import augmax
    except Exception as e:  # noqa: BLE001 - any failure just skips this part.
        print(f"augmax: skipped ({type(e).__name__}: {e})")
        return None
    theirs = augmax.Chain(augmax.Rotate(15.0, p=1.0), augmax.Solarization(0.5, p=1.0))
    ours = policies.autoaugment(((("rotate", 1.0, 5), ("solarize", 1.0, 5)),),
                                interpolation="bilinear", fill=0.0)
    n = images.shape[0]
    return tuple(n / time_jax(fn, keys, images, repeats)[1]
                 for fn in (_rotate_solarize, ours, theirs))


JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}


def _pil_hue(img: Image.Image, shift: float) -> Image.Image:
    """torchvision's PIL `adjust_hue`: rotate the 8-bit H channel by shift turns."""
    h, s_, v = img.convert("HSV").split()
    h = Image.fromarray((np.asarray(h, np.int16) + int(round(shift * 255))).astype(np.uint8), "L")
    return Image.merge("HSV", (h, s_, v)).convert("RGB")


def pillow_ops(uint8_images, boxes, rng):
    """Per-image Pillow loops of the recipe ops: name -> a function timing the batch."""
    from PIL import ImageEnhance, ImageFilter
    pil_images = [Image.fromarray(x) for x in uint8_images]
    size = uint8_images.shape[1:3][::-1]
    factors = rng.uniform(0.6, 1.4, (len(pil_images), 3))
    shifts = rng.uniform(-0.1, 0.1, len(pil_images))

    def crop():
        for img, (top, left, h, w) in zip(pil_images, boxes):
            np.asarray(img.resize(size, Image.Resampling.BILINEAR,
                                  box=(left, top, left + w, top + h)))

    def jitter():
        for img, (b, c, sat), hue in zip(pil_images, factors, shifts):
            img = ImageEnhance.Brightness(img).enhance(b)
            img = ImageEnhance.Contrast(img).enhance(c)
            img = ImageEnhance.Color(img).enhance(sat)
            np.asarray(_pil_hue(img, hue))

    def blur():
        for img in pil_images:
            np.asarray(img.filter(ImageFilter.GaussianBlur(radius=1.0)))
    return {"crop": crop, "jitter": jitter, "blur": blur}


OURS = {
    "crop": lambda k, x: ops.random_resized_crop(k, x, x.shape[:2]),
    "jitter": lambda k, x: ops.color_jitter(k, x, **JITTER),
    "blur": lambda k, x: ops.gaussian_blur(x, 1.0),
}


def augmax_ops(size):
    """augmax's counterparts (None when augmax is not installed)."""
    try:
        import augmax
    except Exception as e:  # noqa: BLE001 - any failure just skips this part.
        print(f"augmax: skipped ({type(e).__name__}: {e})")
        return None
    return {"crop": augmax.Chain(augmax.RandomSizedCrop(size, size)),
            "jitter": augmax.Chain(augmax.ColorJitter(**JITTER, p=1.0)),
            "blur": augmax.Chain(augmax.GaussianBlur(sigma=1, p=1.0)),
            "recipe": augmax.Chain(augmax.RandomSizedCrop(size, size), augmax.HorizontalFlip())}


def recipe(policy):
    """The ImageNet-style recipe on one image: random resized crop, flip, then ``policy``."""
    def fn(key, img):
        crop_key, flip_key, policy_key = jax.random.split(key, 3)
        img = ops.random_resized_crop(crop_key, img, img.shape[:2])
        img = jnp.where(jax.random.bernoulli(flip_key), img[:, ::-1], img)
        return policy(policy_key, img)
    return fn


def pillow_recipe(policy, keys, uint8_images, repeats):
    """The recipe's Pillow loop on the same boxes, flips and policy steps as `recipe`."""
    size = uint8_images.shape[1]
    split = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
    boxes = np.asarray(jax.vmap(lambda k: crop_box(k, size, size))(split[:, 0]))
    flips = np.asarray(jax.vmap(jax.random.bernoulli)(split[:, 1]))
    op_index, value, applied = jax.device_get(
        jax.vmap(lambda k: policy.sample(jax.random.split(k)[0], size))(split[:, 2]))
    steps = [[(policy.op_names[o], float(v)) for o, v, a in zip(*row) if a]
             for row in zip(op_index.tolist(), value.tolist(), applied.tolist())]
    pil_images = [Image.fromarray(x) for x in uint8_images]

    def loop():
        for img, (top, left, h, w), flip, img_steps in zip(pil_images, boxes, flips, steps):
            img = img.resize((size, size), Image.Resampling.BILINEAR,
                             box=(left, top, left + w, top + h))
            if flip:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            np.asarray(pil_reference.apply_steps(img, img_steps))
    return median_seconds(loop, repeats)


def ops_rows(keys, images, uint8_images, size, repeats):
    """(name, {ours, pillow[, augmax]} images/s) of the recipe ops (and the recipe at 224)."""
    n = images.shape[0]
    boxes = np.asarray(jax.vmap(lambda k: crop_box(k, size, size))(keys))
    pillow = pillow_ops(uint8_images, boxes, np.random.default_rng(0))
    theirs = augmax_ops(size) or {}
    rows = []
    for name, fn in OURS.items():
        ips = {"ours": n / time_jax(fn, keys, images, repeats)[1],
               "pillow": n / median_seconds(pillow[name], repeats)}
        if name in theirs:
            ips["augmax"] = n / time_jax(theirs[name], keys, images, repeats)[1]
        rows.append((f"{name}_{size}", ips))
    if size >= 224:
        ra = policies.randaugment(2, 9)
        ips = {"ours": n / time_jax(recipe(ra), keys, images, repeats)[1],
               "pillow": n / pillow_recipe(ra, keys, uint8_images, repeats)}
        if "recipe" in theirs:
            ips["augmax"] = n / time_jax(theirs["recipe"], keys, images, repeats)[1]
        rows.append((f"recipe_{size}", ips))
    return rows


def main(argv):
    del argv
    device = jax.devices()[0]
    repeats = 2 if _QUICK.value else _REPEATS.value
    shapes = [(64, 32), (8, 224)] if _QUICK.value else [(1024, 32), (128, 224)]
    named = {"ra": policies.randaugment(2, 9), "aa": policies.autoaugment("cifar10")}
    print(f"device: {device.platform} ({device.device_kind}); repeats {repeats} (median)")
    fields = [f"device={device.platform}", f"device_kind={device.device_kind.replace(' ', '_')}"]
    rows = []
    for n, size in shapes:
        uint8_images, source = load_images(n, size)
        images = jax.block_until_ready(ops.to_float(uint8_images))
        keys = jax.random.split(jax.random.key(0), n)
        print(f"batch {n} x {size}x{size} ({source})")
        for tag, policy in named.items():
            compile_fused, fused_s = time_jax(policy, keys, images, repeats)
            compile_seq, seq_s = time_jax(policy.replace(fuse=False), keys, images, repeats)
            pillow_s = time_pillow(policy, keys, uint8_images, repeats)
            ips = {"fused": n / fused_s, "sequential": n / seq_s, "pillow": n / pillow_s}
            rows.append((f"{tag}_{size}", ips, compile_fused, compile_seq))
            fields += [f"{tag}_{size}_fused_ips={ips['fused']:.1f}",
                       f"{tag}_{size}_sequential_ips={ips['sequential']:.1f}",
                       f"{tag}_{size}_pillow_ips={ips['pillow']:.1f}",
                       f"{tag}_{size}_vs_pillow={ips['fused'] / ips['pillow']:.3g}",
                       f"fused_vs_sequential_{tag}_{size}={ips['fused'] / ips['sequential']:.2f}",
                       f"{tag}_{size}_compile_s={compile_fused:.1f}"]
        result = augmax_comparison(keys, images, repeats)
        if result is not None:
            ips = dict(zip(("ops", "policy", "augmax"), result))
            rows.append((f"rot+sol_{size}", ips, None, None))
            fields += [f"rot_sol_{size}_{k}_ips={v:.1f}" for k, v in ips.items()]
            fields += [f"vs_augmax_{size}={ips['ops'] / ips['augmax']:.3g}",
                       f"policy_vs_augmax_{size}={ips['policy'] / ips['augmax']:.3g}"]
        for name, ips in ops_rows(keys, images, uint8_images, size, repeats):
            rows.append((name, ips, None, None))
            fields += [f"{name}_{k}_ips={v:.1f}" for k, v in ips.items()]
            fields += [f"{name}_vs_{k}={ips['ours'] / v:.3g}" for k, v in ips.items()
                       if k != "ours"]

    print(f"\n{'case':<12}{'fused':>10}{'sequential':>12}{'pillow':>10}{'vs pillow':>11}"
          f"{'fused/seq':>11}{'compile s (f/s)':>17}")
    for name, ips, compile_fused, compile_seq in rows:
        if "fused" in ips:
            print(f"{name:<12}{ips['fused']:>10.0f}{ips['sequential']:>12.0f}{ips['pillow']:>10.0f}"
                  f"{ips['fused'] / ips['pillow']:>11.3g}{ips['fused'] / ips['sequential']:>11.2f}"
                  f"{compile_fused:>9.1f} /{compile_seq:>5.1f}")
    for name, ips, _, _ in rows:
        if "ops" in ips:
            print(f"{name:<12} ours: ops {ips['ops']:.0f} img/s, policy {ips['policy']:.0f} "
                  f"img/s; augmax {ips['augmax']:.0f} img/s; ops/augmax "
                  f"{ips['ops'] / ips['augmax']:.2f}, policy/augmax "
                  f"{ips['policy'] / ips['augmax']:.2f}")
    for name, ips, _, _ in rows:
        if "ours" in ips:
            others = ", ".join(f"{k} {v:.0f} img/s (ours/{k} {ips['ours'] / v:.2f})"
                               for k, v in ips.items() if k != "ours")
            print(f"{name:<12} ours {ips['ours']:.0f} img/s; {others}")
    print("(images/s; ratios > 1 mean ours is faster)")
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    app.run(main)
