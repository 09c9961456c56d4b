"""One run per workdir: an advisory lock that dies with its process.

`workdir_lock(workdir)` holds `fcntl.flock` on `<workdir>/.lock` for the life of the run, with the
holder's pid and host written in it. A second run on the same workdir fails at once, naming the
holder, instead of interleaving metrics and crashing inside Orbax. The kernel drops the lock when
its process exits however it exits, so the lock of a killed run is taken over without any check.
"""

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator


class WorkdirLockedError(RuntimeError):
    """Another live process is training in this workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: str) -> Iterator[None]:
    path = os.path.join(workdir, ".lock")
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "an unknown process"
            raise WorkdirLockedError(
                f"{workdir} is in use by {holder} (lock {path}); wait for it to finish, stop it, "
                "or use another --workdir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
