"""Telling which JPEG file libjpeg found damaged.

A JPEG whose compressed data is damaged but whose markers are intact decodes without an
error: libjpeg (inside OpenCV) fills the damaged part with garbage and prints one line such
as ``Corrupt JPEG data: 269 extraneous bytes before marker 0xd9`` to the process's stderr
(file descriptor 2), naming no file. :func:`watched_decode` runs a decode with descriptor 2
redirected to a temporary file and returns the damage line it wrote, if any.

Descriptor 2 belongs to the whole process, so decodes that overlap in threads share one
redirection (a *window*, open while any watched decode runs). The file only grows, so a
line written during a decode lies between the file's sizes at the decode's start and end:
a decode that ran alone owns what it finds there; one that overlapped others and finds a
damage line is decoded again alone to tell. Threads thus decode in parallel except around
damaged files. What else was written meanwhile (other messages, other threads' output) is
written to the real stderr when the window closes.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, TypeVar

__all__ = ["DAMAGE_MESSAGE", "watched_decode"]

T = TypeVar("T")

DAMAGE_MESSAGE = re.compile(
    rb"^(?:Corrupt JPEG data: (?!bad ICC marker).*|Premature end of JPEG file"
    rb"|Inconsistent progression sequence .*)$",
    re.MULTILINE,
)
"""libjpeg's warnings (jerror.h) that mean the decoded pixels are partly garbage; its other
warnings (an ICC profile, an unknown JFIF revision) leave them intact and are passed on."""
_DAMAGE_LINE = re.compile(DAMAGE_MESSAGE.pattern + rb"\n?", re.MULTILINE)
_WATCHABLE = hasattr(os, "pread") and hasattr(os, "register_at_fork")  # not on Windows
_WINDOW_SECONDS = 1.0
"""A window open this long lets its decodes finish and closes, so that what it caught
(e.g. log lines of other threads) reaches stderr at least this often."""


class _Watch:
    """The process's window on descriptor 2, shared by the watched decodes (a readers-writer
    scheme: overlapping decodes share it, a decode done again alone holds it alone)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._started = 0  # decodes started so far: tells whether others overlapped one
        self._alone = False  # a decode runs alone
        self._queued = 0  # decodes waiting to run alone: others wait for them
        self._draining = False  # the window is to close: new decodes wait
        self._opened = 0.0  # time.monotonic() when the window opened
        self._file: IO[bytes] | None = None
        self._saved: int | None = None  # the real descriptor 2 while the window is open
        self._spans: list[tuple[int, int]] = []  # (start, end) sizes of this window's decodes

    def run(self, decode: Callable[[], T], *, alone: bool = False) -> tuple[T, str | None]:
        start, concurrent, started = self._enter(alone)
        try:
            result = decode()
        finally:
            damage, overlapped = self._leave(start, concurrent, started, alone)
        if damage is not None and overlapped:
            return self.run(decode, alone=True)  # another decode may have written it
        return result, damage

    def _enter(self, alone: bool) -> tuple[int, int, int]:
        with self._cond:
            if alone:
                self._queued += 1
                self._cond.wait_for(lambda: not self._alone and self._active == 0)
                self._queued -= 1
                self._alone = True
            else:
                if self._active and time.monotonic() - self._opened > _WINDOW_SECONDS:
                    self._draining = True
                self._cond.wait_for(lambda: not (self._alone or self._queued or self._draining))
            if self._active == 0:
                self._open()
            self._active += 1
            self._started += 1
            return self._size(), self._active, self._started

    def _leave(
        self, start: int, concurrent: int, started: int, alone: bool
    ) -> tuple[str | None, bool]:
        with self._cond:
            end = self._size()
            self._spans.append((start, end))
            damage = None
            if self._file is not None and end > start:
                match = DAMAGE_MESSAGE.search(os.pread(self._file.fileno(), end - start, start))
                damage = match.group().decode(errors="replace") if match else None
            overlapped = concurrent > 1 or self._started > started
            self._active -= 1
            if alone:
                self._alone = False
            if self._active == 0:
                self._close()
                self._draining = False
            self._cond.notify_all()
            return damage, overlapped

    def _size(self) -> int:
        return 0 if self._file is None else os.fstat(self._file.fileno()).st_size

    def _open(self) -> None:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            if self._file is None:
                self._file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 (kept open)
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (a daemon): decode unwatched
            return
        os.dup2(self._file.fileno(), 2)
        self._saved = saved
        self._opened = time.monotonic()

    def _close(self) -> None:
        """Restore descriptor 2 and pass on what the window caught, but the damage lines
        that watched decodes report themselves."""
        if self._saved is None or self._file is None:
            return
        if sys.stderr is not None:
            sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        size = self._size()
        caught = os.pread(self._file.fileno(), size, 0) if size else b""
        self._file.truncate(0)
        self._file.seek(0)
        spans, self._spans = self._spans, []
        kept = _DAMAGE_LINE.sub(
            lambda m: b"" if _within(m.start(), m.end(), spans) else m.group(), caught
        )
        if kept:
            os.write(2, kept)

    def after_fork(self) -> None:
        """In a child forked while a window was open: the real stderr back, a fresh state
        (the temporary file is the parent's)."""
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self.__init__()  # type: ignore[misc]


def _within(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(low <= start and end <= high for low, high in spans)


_WATCH = _Watch()
if _WATCHABLE:
    os.register_at_fork(after_in_child=_WATCH.after_fork)


def watched_decode(decode: Callable[[], T]) -> tuple[T, str | None]:
    """``(decode(), damage)``: ``damage`` is libjpeg's line (:data:`DAMAGE_MESSAGE`) when it
    wrote one while ``decode`` ran, else None (always on Windows, which lacks ``os.pread``).
    Thread-safe; see the module's docstring."""
    return _WATCH.run(decode) if _WATCHABLE else (decode(), None)
