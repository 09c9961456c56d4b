"""`imagefolder:<path>`: images stored as `<split>/<class>/<image>` in a directory or a .zip.

Splits `train` and `test` are required, `val` or `validation` optional; other top-level entries
are ignored. Class names are the sorted folder names of `train` and map to labels 0..K-1. Images
(.jpg, .jpeg, .png) are decoded with Pillow to RGB uint8 (16-bit greyscale scaled, transparency
composited onto grey 128; see `decode_image`) in sorted (split, class, file) order, so
the arrays never depend on decoding order; large folders are decoded by a thread pool
(Pillow releases the GIL while decoding).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from jaxaug.data.errors import (
    CorruptImageError,
    DataError,
    DatasetPathError,
    EmptyClassError,
    SplitNotFoundError,
)
from jaxaug.data.imageops import resize_square, stack_images

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Below this many images, starting worker processes (each imports jaxaug) costs more than it saves.
_MIN_IMAGES_FOR_POOL = 4096
_CHUNK = 500


class _Archive:
    """Uniform read access to the files of a directory or a .zip archive, by relative posix name.
    `names()` lists files and (with a trailing "/") folders, down to `<split>/<class>/<file>`."""

    def __init__(self, path: Path):
        self.path = path
        self.is_zip = path.is_file()

    @functools.cached_property
    def _zip(self) -> zipfile.ZipFile:
        # Opened on first use: reading the index of a large zip takes ~1 s, which a cache hit
        # does not need.
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetPathError(
                f"{self.path} is neither a directory nor a readable .zip: {e}"
            ) from e

    def names(self) -> list[str]:
        if self.is_zip:
            return self._zip.namelist()
        names = []
        for split in os.scandir(self.path):
            if not split.is_dir():
                continue
            names.append(split.name + "/")
            for cls in os.scandir(split.path):
                if cls.is_dir():
                    prefix = f"{split.name}/{cls.name}/"
                    names.append(prefix)
                    names.extend(prefix + f.name for f in os.scandir(cls.path) if f.is_file())
        return names

    def read(self, name: str) -> bytes:
        if not self.is_zip:
            return (self.path / name).read_bytes()
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:  # a bad CRC, a damaged member
            raise CorruptImageError(f"cannot read {name} from the zip {self.path}: {e}") from e

    def location(self, name: str) -> str:
        """Where `name` is, for error messages: a file path, or `<zip path>/<member>`."""
        return f"{self.path}/{name.rstrip('/')}"


# Transparent pixels are composited onto this colour: grey 128, the fill of the geometric ops.
TRANSPARENT_FILL = 128


def decode_image(data: bytes, location: str, image_size: int | None) -> np.ndarray:
    """Decode one encoded image to RGB uint8 [H, W, 3], resized to (image_size, image_size)
    (bilinear) if given; `location` names it in the error if it cannot be decoded.

    16-bit greyscale becomes 8-bit by v / 257 rounded (Pillow's own conversion would clip it to
    white); an alpha channel (RGBA, LA, or a palette with a transparent entry) is composited
    onto `TRANSPARENT_FILL`, so an opaque alpha changes nothing."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            array = _to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise CorruptImageError(f"cannot decode image {location}: {e}") from e
    return array if image_size is None else resize_square(array, image_size)


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale PNG
        grey = np.asarray(image, np.float64)
        grey = np.clip(np.round(grey / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), np.float64)
        alpha = rgba[..., 3:] / 255.0
        return np.round(rgba[..., :3] * alpha + TRANSPARENT_FILL * (1 - alpha)).astype(np.uint8)
    return np.asarray(image.convert("RGB"))


def _decode_chunk(items: list[tuple[bytes, str]], image_size: int | None) -> list[np.ndarray]:
    return [decode_image(data, location, image_size) for data, location in items]


class ImageFolder:
    """An image folder: its layout (`class_names`, and per split the sorted image names and their
    labels), a cache identity, and `decode` to read the pixels. The layout is listed and
    validated on first use."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().resolve()
        if not self.path.exists():
            raise DatasetPathError(f"image folder {self.path} does not exist")
        self._archive = _Archive(self.path)

    @functools.cached_property
    def _layout(self) -> tuple[tuple[str, ...], dict[str, tuple[list[str], np.ndarray]]]:
        tree = _tree(self._archive.names())
        folders = {"train": "train", "test": "test"}
        val_folders = [s for s in ("val", "validation") if s in tree]
        if len(val_folders) > 1:
            raise DataError(f"{self.path} has both 'val' and 'validation' splits; keep one")
        if val_folders:
            folders["val"] = val_folders[0]
        for folder in folders.values():
            if folder not in tree:
                raise SplitNotFoundError(
                    f"split {folder!r} not found in {self.path}; available splits: {sorted(tree)}"
                )
        class_names = tuple(sorted(tree["train"]))
        label_of = {name: i for i, name in enumerate(class_names)}
        splits = {}
        for split, folder in folders.items():
            names, labels = [], []
            for cls, files in sorted(tree[folder].items()):
                where = self._archive.location(f"{folder}/{cls}")
                if cls not in label_of:
                    raise DataError(f"class folder {where} has no counterpart in the train split")
                if not files:
                    raise EmptyClassError(
                        f"class folder {where} contains no images ({', '.join(IMAGE_EXTENSIONS)})"
                    )
                names.extend(sorted(files))
                labels.extend([label_of[cls]] * len(files))
            splits[split] = names, np.array(labels, dtype=np.int32)
        return class_names, splits

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._layout[0]

    @property
    def splits(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """{split: (image names, labels int32)} for "train", "test" and, if present, "val"."""
        return self._layout[1]

    def read_encoded(self, name: str) -> tuple[bytes, str]:
        """(the encoded bytes of image `name`, where it is for error messages)."""
        return self._archive.read(name), self._archive.location(name)

    def identity(self, image_size: int | None) -> dict:
        """What the decoded arrays depend on, as a cache key: the zip's size and modification
        time, or the names, sizes and modification times of a directory's images."""
        if self._archive.is_zip:
            stat = self.path.stat()
            fingerprint = f"{stat.st_size}-{stat.st_mtime_ns}"
        else:
            digest = hashlib.sha256()
            for name in (n for names, _ in self.splits.values() for n in names):
                stat = (self.path / name).stat()
                digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            fingerprint = digest.hexdigest()
        return {
            "source": "imagefolder",
            "path": str(self.path),
            "fingerprint": fingerprint,
            "image_size": image_size,
        }

    def decode(
        self, image_size: int | None = None, workers: int | None = None
    ) -> dict[str, np.ndarray]:
        """Decode every split into `{split}_images` uint8 [N, H, W, 3] and `{split}_labels`,
        plus `class_names`. `workers` threads decode in parallel; the default is
        os.cpu_count() for large folders and 1 (no pool) for small ones."""
        names = [n for split_names, _ in self.splits.values() for n in split_names]
        if workers is None:
            workers = os.cpu_count() if len(names) >= _MIN_IMAGES_FOR_POOL else 1
        chunks = (
            [(self._archive.read(n), self._archive.location(n)) for n in names[i : i + _CHUNK]]
            for i in range(0, len(names), _CHUNK)
        )
        if workers <= 1:
            images = [image for chunk in chunks for image in _decode_chunk(chunk, image_size)]
        else:
            images = _decode_in_pool(chunks, image_size, workers)
        stacked = stack_images(images, lambda i: self._archive.location(names[i]))
        arrays = {"class_names": np.array(self.class_names)}
        start = 0
        for split, (split_names, labels) in self.splits.items():
            arrays[f"{split}_images"] = stacked[start : start + len(split_names)]
            arrays[f"{split}_labels"] = labels
            start += len(split_names)
        return arrays


def _tree(names: list[str]) -> dict[str, dict[str, list[str]]]:
    """{split: {class: [image names]}} from archive names; other files are skipped."""
    tree: dict[str, dict[str, list[str]]] = {}
    for name in names:
        parts = name.rstrip("/").split("/")
        if name.endswith("/") or len(parts) == 3:
            classes = tree.setdefault(parts[0], {})
            if len(parts) >= 2:
                files = classes.setdefault(parts[1], [])
                if not name.endswith("/") and name.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(name)
    return tree


def _decode_in_pool(chunks, image_size: int | None, workers: int) -> list[np.ndarray]:
    """Decode chunks of (bytes, location) in worker threads, keeping their order. The caller
    reads the files and submits chunk by chunk, so workers start while it is still reading.

    Threads, not processes: Pillow's decoders release the GIL, and a process pool would need
    "spawn" (forking next to JAX's threads can deadlock), which breaks scripts and notebooks
    without an `if __name__ == "__main__"` guard."""
    pool = ThreadPoolExecutor(workers)
    try:
        futures = [pool.submit(_decode_chunk, chunk, image_size) for chunk in chunks]
        return [image for future in futures for image in future.result()]
    finally:
        pool.shutdown(cancel_futures=True)
