"""SIGTERM to a whole process group (GNU ``timeout``, ``kill -TERM -<pgid>``, SLURM before
a time limit) ends a run as a SIGTERM to the main process alone does.

PyTorch's DataLoader workers die of a SIGTERM that their parent did not send, and the main
process then fails with "DataLoader worker ... is killed by signal: Terminated" in the
middle of a step. Here the workers leave such a signal to the main process, where
Lightning stops at the next batch and the run ends with fgssl-train's interruption
message (the workers' side: :mod:`fgssl.data.worker_signals`); and a worker failure that
follows a SIGTERM counts as that interruption.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from pytorch_lightning.utilities.exceptions import SIGTERMException

__all__ = ["is_worker_failure", "recording_sigterm"]


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
