"""`imagefolder:<path>`: images stored as `<split>/<class>/<image>` in a directory or a .zip.

Splits `train` and `test` are required, `val` or `validation` optional; other top-level entries
are ignored. Class names are the sorted folder names of `train` and map to labels 0..K-1. Images
(.jpg, .jpeg, .png) are decoded with Pillow to RGB uint8 (16-bit greyscale scaled, transparency
composited onto grey 128; see `decode_image`) in sorted (split, class, file) order, so
the arrays never depend on decoding order; large folders are decoded by grain's reader threads
(Pillow releases the GIL while decoding).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import zipfile
import zlib
from pathlib import Path

import grain
import numpy as np
from PIL import Image

from jaxaug.data.errors import (
    CorruptImageError,
    DataError,
    DatasetPathError,
    EmptyClassError,
    ImageSizeMismatchError,
    SplitNotFoundError,
)
from jaxaug.data.imageops import resize_square, stack_images
from jaxaug.data.sources import LazySource

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Below this many images, starting reader threads costs more than they save.
_MIN_IMAGES_FOR_POOL = 4096


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

    def __getstate__(self) -> dict:
        # An open ZipFile does not pickle; the process that unpickles this opens its own.
        return {k: v for k, v in self.__dict__.items() if k != "_zip"}

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

    def read_image(self, name: str, image_size: int | None = None) -> np.ndarray:
        """The image `name` (a name of `splits`) decoded as `decode_image` does."""
        return decode_image(*self.read_encoded(name), image_size)

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
        os.cpu_count() for large folders and none (decoding in this thread) for small ones."""
        names = [n for split_names, _ in self.splits.values() for n in split_names]
        if workers is None:
            workers = os.cpu_count() if len(names) >= _MIN_IMAGES_FOR_POOL else 0
        # grain's reader threads, in order (Pillow releases the GIL while decoding; processes
        # would need "spawn", which breaks scripts and notebooks without a __main__ guard).
        decoded = grain.MapDataset.source(names).map(
            functools.partial(self.read_image, image_size=image_size))
        options = grain.ReadOptions(num_threads=workers if workers > 1 else 0,
                                    prefetch_buffer_size=max(2 * workers, 2))
        images = list(decoded.to_iter_dataset(options))
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



def streamed_sources(folder: ImageFolder, image_size: int | None) -> dict[str, LazySource]:
    """{split: source} that decode each image when it is read (for folders too large to hold
    decoded), resized to (image_size, image_size) if given. Without image_size, every image must
    have the size of the first training image; one that does not raises
    `ImageSizeMismatchError` naming it when it is read. The sources pickle without their images
    (grain sends them to its worker processes)."""
    first = folder.splits["train"][0][0]
    shape = folder.read_image(first, image_size).shape
    sources = {}
    for split, (names, labels) in folder.splits.items():
        read = functools.partial(_read_example, folder, names, labels, image_size, shape, first)
        sources[split] = LazySource(read, labels.__getitem__, len(names), shape, labels=labels)
    return sources


def _read_example(folder, names, labels, image_size, shape, first, index):
    image = folder.read_image(names[index], image_size)
    if image.shape != shape:
        raise ImageSizeMismatchError(
            f"{folder._archive.location(names[index])} has shape {image.shape}, but "
            f"{folder._archive.location(first)} has {shape}; pass image_size to resize all images")
    return image, int(labels[index])
