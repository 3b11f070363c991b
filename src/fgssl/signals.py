"""SIGTERM to a whole process group (GNU ``timeout``, ``kill -TERM -<pgid>``, SLURM before
a time limit) ends a run as a SIGTERM to the main process alone does.

PyTorch's DataLoader workers die of a SIGTERM that their parent did not send, and the main
process then fails with "DataLoader worker ... is killed by signal: Terminated" in the
middle of a step. Here the workers leave such a signal to the main process, where
Lightning stops at the next batch and the run ends with fgssl-train's interruption
message; and a worker failure that follows a SIGTERM counts as that interruption.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from lightning_fabric.utilities.seed import pl_worker_init_function
from pytorch_lightning.utilities.exceptions import SIGTERMException

__all__ = ["WorkerInit", "is_worker_failure", "leave_sigterm_to_parent", "recording_sigterm"]


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


@contextmanager
def recording_sigterm() -> Iterator[Callable[[], bool]]:
    """In the main process: note every SIGTERM; yields a function that says whether one
    came. Outside a Lightning run (which chains this handler after its own and stops at
    the next batch) a SIGTERM raises Lightning's :class:`SIGTERMException` at once, as one
    inside a run ends it. Restores the previous handler on exit; does nothing outside the
    main thread (where signal handlers cannot be set).
    """
    received = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received = True
        if signal.getsignal(signal.SIGTERM) is handler:  # not chained by Lightning
            raise SIGTERMException

    if threading.current_thread() is not threading.main_thread():
        yield lambda: received
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield lambda: received
    finally:
        # None: a handler not set from Python, which cannot be restored from it
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def is_worker_failure(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is PyTorch's report of a
    DataLoader worker that died ("DataLoader worker (pid ...) is killed by signal ..." or
    "... exited unexpectedly")."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RuntimeError) and "DataLoader worker" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
