"""How many dataloader worker processes to start: ``num_workers="auto"`` uses what the
machine has."""

from __future__ import annotations

import os
from typing import Literal

from fgssl.errors import ConfigError

__all__ = [
    "MAX_AUTO_WORKERS",
    "NumWorkers",
    "auto_num_workers",
    "available_cpus",
    "resolve_num_workers",
]

NumWorkers = int | Literal["auto"]

MAX_AUTO_WORKERS = 4
"""Upper bound of ``"auto"``: the former fixed default, enough to feed a GPU from the image
cache; set ``data.num_workers`` higher for decoding large photographs uncached."""


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a SLURM or container
    allocation; ``os.cpu_count()`` where the platform has no affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_num_workers(processes: int = 1) -> int:
    """Workers per training process: the available CPUs shared among ``processes`` (the
    devices of this machine), one left for the process itself, at least 1 and at most
    :data:`MAX_AUTO_WORKERS`. This is the bound PyTorch Lightning's worker check suggests
    (``available // processes - 1``), so it neither warns of too few workers nor makes
    PyTorch warn of more workers than CPUs."""
    return min(MAX_AUTO_WORKERS, max(1, available_cpus() // max(1, processes) - 1))


def resolve_num_workers(value: object, processes: int = 1) -> int:
    """``value`` (an int >= 0 or ``"auto"``) as a number of workers; raises
    :class:`ConfigError` naming ``data.num_workers`` for anything else."""
    if value == "auto":
        return auto_num_workers(processes)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"data.num_workers must be a number >= 0 or 'auto', got {value!r}")
    return value
