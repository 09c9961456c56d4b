"""Test images: real CIFAR-10 test images from ../shared/data when the zip is there, generated
ones otherwise (so the suite runs anywhere)."""

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ZIP = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-jpeg.zip"


def load_images(n=16):
    """n uint8 [32, 32, 3] images, evenly spread over the CIFAR-10 test split."""
    if ZIP.exists():
        with zipfile.ZipFile(ZIP) as z:
            names = sorted(m for m in z.namelist() if m.startswith("test/") and m.endswith(".jpg"))
            names = names[:: len(names) // n][:n]
            return np.stack([np.asarray(Image.open(io.BytesIO(z.read(m))).convert("RGB")) for m in names])
    from jaxaug.data.synthetic import generate

    return generate(n, seed=3)[0]
