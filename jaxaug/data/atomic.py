"""Files that appear whole or not at all, with the permissions a normal file gets.

`write_atomic(path, write)` calls `write(tmp)` on a temporary path in the destination's directory,
fsyncs it, gives it mode 0o666 minus the process umask (what `open(path, "w")` would give;
`tempfile.mkstemp` creates 0o600, which would hide a run's files from a TensorBoard server or a
colleague), and renames it over `path`. A failure leaves `path` as it was and no temporary file.
"""

import os
import tempfile
from collections.abc import Callable


def umask() -> int:
    """The process umask, read without changing it where Linux reports it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, briefly
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Write `path` atomically: `write(tmp)` fills a temporary file beside it, which is fsynced,
    given the umask's permissions and renamed to `path`."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # The temporary name keeps the extension, for writers that infer the format from it
    # (matplotlib's savefig): `.<name>.<random>.tmp<ext>`.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp" + os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    # Persist the rename itself, so that after a power loss the file is either complete or absent.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """`write_atomic` of a text file."""

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    write_atomic(path, write)
