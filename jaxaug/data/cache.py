"""On-disk cache of decoded datasets, so that a second run does not decode images again.

A cache file is an uncompressed .npz holding the arrays plus a manifest (name, dtype, shape and
SHA-256 of every array). It is named after a hash of the source identity (e.g. resolved path,
size and mtime), so a changed source gets a new file. Files are written atomically (temp file in
the same directory, fsync, `os.replace`), so a crash never leaves a partial file under the final
name; a file that fails verification raises `CorruptCacheError` instead of being rebuilt silently,
because a corrupt cache usually means a disk or copy problem the user should know about.
"""

import hashlib
import json
import os
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxaug.data.atomic import write_atomic
from jaxaug.data.errors import CorruptCacheError

FORMAT_VERSION = 1
_MANIFEST = "__manifest__"


def default_cache_dir() -> Path:
    """`$JAXAUG_CACHE_DIR` if set, else `~/.cache/jaxaug`."""
    return Path(os.environ.get("JAXAUG_CACHE_DIR") or Path.home() / ".cache" / "jaxaug")


def cache_file(cache_dir: str | os.PathLike | None, label: str, identity: dict) -> Path:
    """The cache path for a source: `<cache_dir>/<label>-<hash of identity>.npz`."""
    key = json.dumps({"format": FORMAT_VERSION, **identity}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    safe_label = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    return Path(cache_dir or default_cache_dir()) / f"{safe_label}-{digest}.npz"


def _describe(array: np.ndarray) -> dict:
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "sha256": hashlib.sha256(np.ascontiguousarray(array).data).hexdigest(),
    }


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to `path` atomically; on failure no file is left at `path` or beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = json.dumps({name: _describe(a) for name, a in arrays.items()})

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, **{_MANIFEST: np.array(manifest)})

    write_atomic(path, write)


def load(path: Path) -> dict[str, np.ndarray]:
    """Read and verify a cache file written by `save`; raise `CorruptCacheError` if it fails."""

    def corrupt(reason: str) -> CorruptCacheError:
        return CorruptCacheError(
            f"cache file {path} is corrupt ({reason}); delete it and run again to rebuild it"
        )

    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        manifest = json.loads(str(arrays.pop(_MANIFEST)))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise corrupt(f"{type(e).__name__}: {e}") from e
    if sorted(manifest) != sorted(arrays):
        raise corrupt(f"arrays {sorted(arrays)} do not match the manifest {sorted(manifest)}")
    for name, array in arrays.items():
        if _describe(array) != manifest[name]:
            raise corrupt(f"array {name!r} does not match its recorded dtype, shape or checksum")
    return arrays


def cached(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load `path` if it exists, else `build()` the arrays, save them to `path` and return them.

    A cache directory that cannot be written (read-only, full, not ours) costs the cache, not the
    run: the arrays are returned unsaved, with a warning. Temporary files that killed runs left
    in the directory are removed first."""
    if path.exists():
        return load(path)
    remove_orphans(path.parent)
    arrays = build()
    try:
        save(path, arrays)
    except OSError as e:
        warnings.warn(f"cannot write the dataset cache {path} ({e}); going on without it, so the "
                      "next run decodes again", stacklevel=2)
    return arrays


def remove_orphans(cache_dir: Path) -> list[Path]:
    """Delete the temporary files of cache writes in `cache_dir` last modified before this process
    started (a live writer keeps touching its file), and return them."""
    started = _process_start_time()
    orphans = [p for pattern in (".*.npz.*.tmp.npz", "*.npz.*.tmp")
               for p in cache_dir.glob(pattern) if p.stat().st_mtime < started]
    for orphan in orphans:
        try:
            orphan.unlink(missing_ok=True)
        except OSError:  # a directory we cannot write: `cached` warns when it tries to save
            pass
    return orphans


def _process_start_time() -> float:
    """This process's start, as a Unix time (from /proc where there is one)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()
