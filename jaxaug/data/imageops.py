"""Host-side image helpers shared by the readers: resizing with Pillow and stacking."""

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from jaxaug.data.errors import ImageSizeMismatchError


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a uint8 [H, W, C] array with Pillow (which antialiases when shrinking)."""
    gray = image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0] if gray else image)
    out = np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR))
    return out[..., None] if gray else out


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to (size, size), ignoring the aspect ratio."""
    if image.shape[:2] == (size, size):
        return image
    return _resize(image, size, size)


def resize_and_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so that the shorter side is `size` (keeping the aspect ratio), then crop the central
    size x size window."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    image = _resize(image, new_w, new_h)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return image[top : top + size, left : left + size]


def stack_images(images: Sequence[np.ndarray], describe: Callable[[int], str]) -> np.ndarray:
    """Stack equally-sized images; otherwise raise naming the first image (`describe(i)`) whose
    shape differs from the first one's."""
    expected = images[0].shape
    for i, image in enumerate(images):
        if image.shape != expected:
            raise ImageSizeMismatchError(
                f"{describe(i)} has shape {image.shape}, but {describe(0)} has {expected}; "
                "pass image_size to resize all images"
            )
    return np.stack(images)
