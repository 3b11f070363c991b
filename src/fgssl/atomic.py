"""Files written whole or not at all: a crash never leaves a truncated result."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

__all__ = ["atomic_path", "write_csv_atomically", "write_text_atomically"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``
    (atomic on one file system), on failure remove it. Once ``path`` is replaced, the
    temporaries that killed writers left for it are removed too."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp{glob.escape(path.suffix)}"):
        stale.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file; returns ``path``."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def write_csv_atomically(
    path: str | os.PathLike[str], table: pd.DataFrame, *, exact: bool = False
) -> Path:
    """Write ``table`` as CSV (no index) through a temporary file; returns ``path``.

    Floats get 6 significant digits, for reading; with ``exact``, as many as read back to
    the same number, for tables that metrics are recomputed from (predicted probabilities:
    rounded, a confident network's scores tie, and AUROC changes).
    """
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False, float_format=None if exact else "%.6g")
    return Path(path)
