"""The data-parallel device mesh: the batch is split over every device, the state replicated."""

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxaug.train import distributed

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A one-axis mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split across the mesh."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def maybe_initialize_distributed(config) -> None:
    """Joins a multi-host run when the config asks for it (``config.distributed.enabled``).

    With no coordinator given, ``jax.distributed.initialize`` detects the cluster (TPU pods, SLURM,
    Open MPI); otherwise the coordinator address, process count and id are passed through, after
    `jaxaug.train.distributed.join` has waited for every process (at most
    ``distributed.initialization_timeout`` seconds, then a `JoinTimeoutError` naming the processes
    that did not join).
    """
    dist = config.distributed
    if not dist.enabled:
        return
    if not dist.initialization_timeout > 0:
        raise ValueError(f"Invalid config.distributed.initialization_timeout="
                         f"{dist.initialization_timeout!r}: must be a positive number of seconds")
    kwargs = {
        name: dist[name]
        for name in ("coordinator_address", "num_processes", "process_id")
        if dist[name] is not None
    }
    if len(kwargs) == 3:
        distributed.join(**kwargs, timeout=dist.initialization_timeout)
    # JAX takes whole seconds; its own wait comes after the join, so it is rarely the one to end.
    jax.distributed.initialize(**kwargs,
                               initialization_timeout=math.ceil(dist.initialization_timeout))
