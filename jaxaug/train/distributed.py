"""What a multi-process run needs beyond `jax.distributed`: a join that fails with a Python error
naming the processes missing, and a stop decision every process agrees on.

`join` runs before ``jax.distributed.initialize``. JAX's own wait for the other processes ends, on
a timeout, by aborting the process (a fatal C++ error saying only "Deadline Exceeded"), and its
coordination service cannot be asked which processes registered. So process 0 first listens on
the coordinator's port itself, each other process connects and sends its id, and process 0 answers
all of them with either "go" or the ids still missing when ``timeout`` runs out. Every process then
raises a `JoinTimeoutError` naming itself, the coordinator, the process count and the missing ids
(a process that never reached the coordinator says so instead). Process 0 closes its socket before
JAX's coordination service binds the same port, and the other processes' JAX clients retry their
connection until it is up.
"""

import contextlib
import socket
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

_GO = "go"
_MISSING = "missing"


class JoinTimeoutError(TimeoutError):
    """Not every process of a multi-process run joined within
    ``distributed.initialization_timeout`` seconds."""


def join(coordinator_address: str, num_processes: int, process_id: int, timeout: float) -> None:
    """Returns once all ``num_processes`` processes have called `join` with the same coordinator
    (``host:port``, served by process 0); raises `JoinTimeoutError` after ``timeout`` seconds
    otherwise, and ``ValueError`` for an id outside ``[0, num_processes)``, two processes with
    one id or with different process counts."""
    if not 0 <= process_id < num_processes:
        raise ValueError(f"Invalid config.distributed.process_id={process_id!r}: must be in "
                         f"[0, num_processes={num_processes})")
    if num_processes == 1:
        return
    host, port = _split(coordinator_address)
    deadline = time.monotonic() + timeout
    where = (f"process {process_id} of {num_processes} (coordinator {coordinator_address}, "
             f"distributed.initialization_timeout={timeout:g} s)")
    if process_id == 0:
        _serve(port, num_processes, deadline, where)
    else:
        _report(host, port, process_id, num_processes, deadline, where)


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"Invalid config.distributed.coordinator_address={address!r}: must be "
                         "host:port")
    return host.strip("[]"), int(port)


def _serve(port: int, num_processes: int, deadline: float, where: str) -> None:
    """Process 0: accept every other process's id until all are in or the deadline passes, then
    tell each one the outcome."""
    family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
    peers: dict[int, socket.socket] = {}
    try:
        server = socket.create_server(("", port), family=family,
                                      dualstack_ipv6=family == socket.AF_INET6)
    except OSError as e:
        raise OSError(f"{where}: cannot listen on port {port} ({e}); is another process 0, or "
                      "another program, using it?") from None
    with server:
        try:
            while len(peers) < num_processes - 1 and (left := deadline - time.monotonic()) > 0:
                server.settimeout(left)
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    break
                conn.settimeout(max(deadline - time.monotonic(), 0.1))
                try:
                    peer, their_count = map(int, _read_line(conn).split())
                except (OSError, ValueError):
                    conn.close()  # not one of ours (a port scanner, a half-open connection)
                    continue
                if their_count != num_processes or peer in peers or peer == 0:
                    conn.close()
                    raise ValueError(
                        f"{where}: a process joined with process_id={peer} and num_processes="
                        f"{their_count}; every process needs the same num_processes and its own "
                        "process_id")
                peers[peer] = conn
            missing = sorted(set(range(1, num_processes)) - set(peers))
            answer = _GO if not missing else f"{_MISSING} {','.join(map(str, missing))}"
            for conn in peers.values():
                with contextlib.suppress(OSError):
                    conn.sendall(f"{answer}\n".encode())
        finally:
            for conn in peers.values():
                conn.close()
    if missing:
        raise JoinTimeoutError(f"{where}: process(es) {missing} did not join")


def _report(host: str, port: int, process_id: int, num_processes: int, deadline: float,
            where: str) -> None:
    """A process other than 0: connect to process 0 (retrying until it listens), send the id and
    wait for its answer."""
    while True:
        try:
            conn = socket.create_connection((host, port),
                                            timeout=max(deadline - time.monotonic(), 0.1))
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise JoinTimeoutError(f"{where}: process 0 did not join (nothing answered at "
                                       "the coordinator address)") from None
            time.sleep(0.1)
    with conn:
        try:
            conn.sendall(f"{process_id} {num_processes}\n".encode())
            # Process 0 answers by its own deadline at the latest.
            conn.settimeout(max(deadline - time.monotonic(), 0) + 10)
            answer = _read_line(conn)
        except OSError as e:
            raise JoinTimeoutError(f"{where}: process 0 did not answer ({e})") from None
    if answer.startswith(_MISSING):
        missing = [int(p) for p in answer.split()[1].split(",")]
        raise JoinTimeoutError(f"{where}: process(es) {missing} did not join")
    if answer != _GO:
        raise JoinTimeoutError(f"{where}: process 0 closed the connection without an answer "
                               f"({answer!r}); see its log")


def _read_line(conn: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true in any process. Every process must call it at the same point of
    the run (it is a collective); one process returns ``flag`` without communicating."""
    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))
