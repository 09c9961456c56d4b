"""Test-session setup shared by every test module."""

import os
import zipfile

import jax
import numpy as np
import pytest
from PIL import Image

# XLA compiles dominate the suite's time on CPU. A persistent compilation cache lets runs that
# compile identical programs (resumed runs, subprocesses, repeated configs) compile once. It is set
# through the environment before JAX is imported, so subprocesses inherit it too.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(_REPO, ".pytest_cache", "jax-compilation")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


@pytest.fixture(scope="module")
def unoptimized_xla():
    """Compiles without XLA's backend optimizations (`jax_disable_most_optimizations`) while the
    module runs, the library's own jits included, which halves compile times.

    For modules that compile whole training steps or models and run them briefly, and check what
    the programs compute against each other or against loose bounds; never for parity or
    closed-form checks of ops, whose tolerances hold for the optimized programs users run. Opt in
    with `pytestmark = pytest.mark.usefixtures("unoptimized_xla")`. The flag is not part of JAX's
    in-memory cache keys, so on exit those caches are cleared: no program compiled here serves a
    later module (the persistent cache keys on compile options, so it keeps them apart)."""
    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)
        jax.clear_caches()


# Fixtures of the data tests.
def _zip_folder(root, archive, folder_entries=True):
    """Write the tree under `root` into the zip `archive`, with entries relative to `root`."""
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(root.rglob("*")):
            if path.is_file() or folder_entries:
                z.write(path, path.relative_to(root).as_posix())
    return archive


@pytest.fixture
def zip_folder():
    """`zip_folder(root, archive, folder_entries=True)` zips a tree and returns the archive."""
    return _zip_folder


@pytest.fixture
def make_image_folder(tmp_path):
    """Factory writing `<root>/<split>/<class>/<NNN>.png` with random RGB pixels (PNG: lossless,
    so decoded pixels must equal the written arrays). `counts` is {split: {class: n}};
    `sizes` optionally maps a (split, class, index) to a (height, width). Returns (root, images)
    where images[(split, class, index)] is the written uint8 array. With `zip=True` root is a
    .zip of the same tree (with folder entries unless `folder_entries=False`)."""

    def make(counts, *, size=(8, 8), sizes=None, zip=False, folder_entries=True, name="data"):
        rng = np.random.default_rng(0)
        root = tmp_path / name
        images = {}
        for split, classes in counts.items():
            for cls, n in classes.items():
                folder = root / split / cls
                folder.mkdir(parents=True)
                for i in range(n):
                    h, w = (sizes or {}).get((split, cls, i), size)
                    array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                    Image.fromarray(array).save(folder / f"{i:03d}.png")
                    images[(split, cls, i)] = array
        if zip:
            return _zip_folder(root, tmp_path / f"{name}.zip", folder_entries), images
        return root, images

    return make


@pytest.fixture
def cache_dir(tmp_path):
    """An empty directory for jaxaug.data's decoded-array cache."""
    return tmp_path / "cache"
