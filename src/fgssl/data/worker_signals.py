"""The DataLoader workers' side of a SIGTERM to a whole process group (GNU ``timeout``,
``kill -TERM -<pgid>``, SLURM): a worker leaves a SIGTERM that its parent did not send to
the main process, which ends the run cleanly (the main process's side:
:mod:`fgssl.run.signals`)."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader

__all__ = ["SignalSafeDataLoader", "WorkerInit", "leave_sigterm_to_parent"]


class SignalSafeDataLoader(DataLoader):
    """A DataLoader whose workers start with SIGTERM blocked in every thread.

    A worker may start threads before its ``worker_init_fn`` runs (PyTorch's intra-op pool,
    when the parent set the thread count); a SIGTERM sent to the whole process group would
    reach such a thread and kill the worker. Blocking SIGTERM in the parent while the workers
    fork makes every worker thread inherit the block; :class:`WorkerInit`'s waiting thread
    then takes the signal. A SIGTERM to the parent meanwhile stays pending, not lost.
    """

    def _get_iterator(self) -> Any:
        if self.num_workers == 0 or not hasattr(signal, "sigwaitinfo"):
            return super()._get_iterator()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            return super()._get_iterator()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class WorkerInit:
    """The ``worker_init_fn`` of fgssl's DataLoaders: :func:`leave_sigterm_to_parent`, then
    the per-worker seeding that Lightning would have added (``seed_everything(...,
    workers=True)`` sets PL_SEED_WORKERS; Lightning adds its own function only to loaders
    without one).

    Args:
        rank: the global rank of the process that creates the loader.
    """

    def __init__(self, rank: int = 0) -> None:
        self.rank = rank
        self.parent_pid = os.getpid()  # the process that creates (and owns) the workers

    def __call__(self, worker_id: int) -> None:
        leave_sigterm_to_parent(self.parent_pid)
        if int(os.environ.get("PL_SEED_WORKERS", 0)):
            pl_worker_init_function(worker_id, rank=self.rank)


def leave_sigterm_to_parent(parent_pid: int | None = None) -> bool:
    """In a DataLoader worker: exit quietly on a SIGTERM from the parent process (as
    PyTorch's own handler does when the loader shuts its workers down), ignore a SIGTERM
    from anyone else (the main process receives it too, and shuts the workers down).

    A thread waits for the signal (``sigwaitinfo`` tells who sent it); SIGTERM is blocked
    in the worker's other threads. Returns False, changing nothing, where the platform has
    no ``sigwaitinfo`` (macOS, Windows).
    """
    if not hasattr(signal, "sigwaitinfo"):
        return False
    parents = {os.getppid(), parent_pid or os.getppid()}
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid in parents:
                os._exit(0)

    threading.Thread(target=wait, name="fgssl-sigterm", daemon=True).start()
    return True
