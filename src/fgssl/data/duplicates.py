"""Byte-identical image files: found by size and content hash, reported across splits.

APTOS 2019 and the ISIC archives hold the same photograph under different names. Such a
pair split between training and validation/test inflates the scores; ``data.duplicates``
says what to do: ``error`` refuses, ``warn`` (default) logs the pairs, ``ignore`` reads no
file. Files of different sizes cannot be identical, so only files whose byte size another
file shares are read and hashed (BLAKE2b): usually few of a dataset of photographs.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal, TypeVar

import pandas as pd

from fgssl.errors import ConfigError, DataLayoutError

__all__ = [
    "DUPLICATE_MODES",
    "DuplicateMode",
    "DuplicateReport",
    "check_duplicates",
    "content_keys",
    "find_duplicates",
    "require_duplicate_mode",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DuplicateMode = Literal["error", "warn", "ignore"]
DUPLICATE_MODES: tuple[DuplicateMode, ...] = ("error", "warn", "ignore")
COLUMN = "duplicate_group"
"""The column of the split tables (and of ``split.csv``) naming each image's group of
byte-identical files (the first 16 hex digits of their BLAKE2b digest; empty when the
image has no identical twin)."""
SHOWN = 3
_CHUNK = 1 << 20
_PROGRESS_BYTES = 256 << 20  # show a progress bar when hashing more than this


def require_duplicate_mode(mode: str) -> DuplicateMode:
    """``mode`` if it is one of :data:`DUPLICATE_MODES`, else :class:`ConfigError`."""
    if mode not in DUPLICATE_MODES:
        raise ConfigError(f"data.duplicates must be one of {list(DUPLICATE_MODES)}, got {mode!r}")
    return mode


@functools.lru_cache(maxsize=1 << 16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """BLAKE2b of the file's bytes; (size, mtime_ns) key the memo, so a changed file is
    hashed anew (the data module hashes the training images twice: to draw, to check)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_keys(paths: Sequence[str], *, workers: int | None = None) -> list[str | None]:
    """For each of ``paths``, a key that exactly the byte-identical files among them share
    (a hex BLAKE2b digest), or None for a file with no identical twin.

    The same path given twice is one file (not its own twin). Files that cannot be read
    get None (the image checks report them). Only files of a byte size that another file
    also has are hashed, by ``workers`` threads (default: CPU count, at most 8).
    """
    unique = list(dict.fromkeys(os.path.normpath(os.path.abspath(p)) for p in paths))
    stats: dict[str, os.stat_result] = {}
    by_size: dict[int, list[str]] = {}
    for path in unique:
        try:
            stats[path] = os.stat(path)
        except OSError:
            continue
        by_size.setdefault(stats[path].st_size, []).append(path)
    candidates = [p for group in by_size.values() if len(group) > 1 for p in group]
    total = sum(stats[p].st_size for p in candidates)
    if total > _PROGRESS_BYTES:
        log.info("hashing %d image files of equal sizes (%.0f MB)", len(candidates), total / 1e6)

    def digest(path: str) -> str | None:
        try:
            return _digest(path, stats[path].st_size, stats[path].st_mtime_ns)
        except OSError:
            return None

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashed = _progress(pool.map(digest, candidates), total, candidates)
        digests = dict(zip(candidates, hashed, strict=True))
    counts: dict[str, int] = {}
    for value in digests.values():
        if value is not None:
            counts[value] = counts.get(value, 0) + 1
    keys = {p: d for p, d in digests.items() if d is not None and counts[d] > 1}
    return [keys.get(os.path.normpath(os.path.abspath(p))) for p in paths]


def _progress(results: Iterator[T], total_bytes: int, items: Sequence[str]) -> Iterable[T]:
    """``results`` wrapped in a progress bar (stderr, a terminal only) for large jobs."""
    if total_bytes <= _PROGRESS_BYTES:
        return results
    from tqdm.auto import tqdm

    return tqdm(results, total=len(items), desc="hashing images", unit="img", disable=None)


@dataclass
class DuplicateReport:
    """Byte-identical image files among the splits.

    ``groups`` maps a group key to its members ``(split, id, label, path)``, in split
    order; only groups of two or more distinct files are listed.
    """

    groups: dict[str, list[tuple[str, str, int, str]]] = field(default_factory=dict)

    @property
    def across(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        """Every pair ((split, id), (split, id)) of identical files in different splits."""
        return [
            ((a[0], a[1]), (b[0], b[1]))
            for members in self.groups.values()
            for a, b in combinations(members, 2)
            if a[0] != b[0]
        ]

    @property
    def within(self) -> int:
        """Pairs of identical files in the same split."""
        return sum(
            a[0] == b[0] for members in self.groups.values() for a, b in combinations(members, 2)
        )

    @property
    def conflicting(self) -> int:
        """Groups whose labelled members do not all carry the same label."""
        return sum(
            len({m[2] for m in members if m[2] >= 0}) > 1 for members in self.groups.values()
        )

    @property
    def files(self) -> int:
        """Files that have a byte-identical twin."""
        return sum(len(members) for members in self.groups.values())

    def describe_across(self) -> str:
        """One line: the count of pairs across splits and the first few."""
        pairs = self.across
        examples = ", ".join(f"{a[0]} {a[1]!r} = {b[0]} {b[1]!r}" for a, b in pairs[:SHOWN])
        return (
            f"{len(pairs)} pair(s) of byte-identical image files fall in different splits "
            f"({self.files} files in {len(self.groups)} group(s) of identical files), "
            f"e.g. {examples}"
        )


def find_duplicates(splits: Mapping[str, pd.DataFrame]) -> DuplicateReport:
    """The byte-identical files among the ``path`` columns of ``splits``.

    A split listing exactly the paths of an earlier one (the test split that is the
    validation split) is that split again, not a second copy of its images.
    """
    rows: list[tuple[str, str, int, str]] = []
    seen: list[list[str]] = []
    for name, table in splits.items():
        paths = [str(p) for p in table["path"]]
        if paths in seen:
            continue
        seen.append(paths)
        labels = table["label"].astype(int).tolist()
        ids = table["id"].astype(str).tolist()
        rows.extend(zip([name] * len(paths), ids, labels, paths, strict=True))
    keys = content_keys([row[3] for row in rows])
    groups: dict[str, list[tuple[str, str, int, str]]] = {}
    for row, key in zip(rows, keys, strict=True):
        if key is not None:
            groups.setdefault(key[:16], []).append(row)
    return DuplicateReport(groups)


def check_duplicates(
    splits: Mapping[str, pd.DataFrame], mode: DuplicateMode
) -> dict[str, pd.DataFrame]:
    """Apply ``data.duplicates`` to ``splits``: ``error`` raises :class:`DataLayoutError`
    when identical files fall in different splits (naming the first few pairs and their
    count), ``warn`` logs that as a warning; both log identical files within a split and
    add the :data:`COLUMN` column. ``ignore`` returns ``splits`` unchanged, unread."""
    if mode == "ignore":
        return dict(splits)
    report = find_duplicates(splits)
    if report.across:
        message = report.describe_across()
        if mode == "error":
            raise DataLayoutError(
                f"{message}; remove the copies or set data.duplicates=warn to train anyway"
            )
        log.warning("%s (split.csv marks them in its %s column)", message, COLUMN)
    if report.within:
        log.info("%d pair(s) of byte-identical image files lie in the same split", report.within)
    if report.conflicting:
        log.warning(
            "%d group(s) of byte-identical image files carry different labels",
            report.conflicting,
        )
    group_of = {m[3]: key for key, members in report.groups.items() for m in members}
    return {
        name: table.assign(**{COLUMN: [group_of.get(str(p), "") for p in table["path"]]})
        for name, table in splits.items()
    }
