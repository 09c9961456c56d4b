"""Writing a grid of images to a PNG file, to look at a dataset or at augmented batches."""

import os

import numpy as np
from PIL import Image

from jaxaug.data.atomic import write_atomic


def save_image_grid(
    images: np.ndarray, path: str | os.PathLike, nrow: int = 8, padding: int = 2
) -> None:
    """Tile uint8 images [N, H, W, C] (C = 1 or 3) into rows of `nrow` images separated by
    `padding` black pixels, and write a PNG to `path` atomically (`jaxaug.data.atomic`)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 [N, H, W, 1|3], got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    cols, rows = min(nrow, n), -(-n // nrow)
    grid = np.zeros((padding + rows * (h + padding), padding + cols * (w + padding), c), np.uint8)
    for i, image in enumerate(images):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[top : top + h, left : left + w] = image
    image = Image.fromarray(grid[..., 0] if c == 1 else grid)
    write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))
