"""The sources of ``data.unlabelled``: extra unlabelled images for the pretrain phase.

A source is a folder (every image file below it, recursively, links followed: see
:mod:`fgssl.data.image_listing`) or a CSV with a column of image paths (relative paths are
read from the CSV's folder, or from the source's ``root``; names compared in NFC)::

    data.unlabelled=[/data/eyepacs/train,/data/extra.csv]
    data.unlabelled=[{path: /data/isic_archive.csv, column: file, root: /data/isic_archive}]

Ids are ``<source name>/<path relative to the folder>`` (a CSV's source name is its file
name without extension; the column's path for a CSV), so that ``split.csv`` lists each
image once under the ``unlabelled`` split, and a moved source keeps its ids.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.image_listing import IMAGE_EXTENSIONS, FileMatcher, list_files, shown
from fgssl.data.tables import read_csv_columns, require_unique
from fgssl.errors import ConfigError, DataLayoutError, DataNotFoundError, MissingImagesError

__all__ = ["UnlabelledSource", "parse_sources", "read_sources"]

log = logging.getLogger(__name__)

SHOWN = 3
"""How many missing images an error message names."""


@dataclass(frozen=True)
class UnlabelledSource:
    """One ``data.unlabelled`` entry: a folder, or a CSV with a ``column`` of image paths
    (relative to ``root``, default the CSV's folder)."""

    path: Path
    column: str = "path"
    root: Path | None = None

    @property
    def name(self) -> str:
        """The prefix of the ids of this source's images."""
        return self.path.stem if self.path.suffix.lower() == ".csv" else self.path.name


def parse_sources(value: Any, key: str = "data.unlabelled") -> list[UnlabelledSource]:
    """The sources of a config value: None or ``[]`` (none), a path, or a list of paths and
    mappings ``{path, column, root}``. Raises :class:`ConfigError` naming ``key`` for
    anything else, for an unknown mapping key, and for a source that is neither a folder
    nor a ``.csv`` file."""
    if value is None:
        return []
    entries = [value] if isinstance(value, (str, os.PathLike, Mapping)) else value
    if not isinstance(entries, Sequence):
        raise ConfigError(f"{key} must be a path or a list of paths, got {value!r}")
    sources = []
    for entry in entries:
        if isinstance(entry, Mapping):
            unknown = set(entry) - {"path", "column", "root"}
            if unknown or "path" not in entry:
                raise ConfigError(
                    f"{key} entry {dict(entry)!r}: expected the keys path (required), column "
                    f"and root, got {sorted(entry)}"
                )
            root = entry.get("root")
            source = UnlabelledSource(
                Path(str(entry["path"])).expanduser(),
                column=str(entry.get("column") or "path"),
                root=None if root is None else Path(str(root)).expanduser(),
            )
        elif isinstance(entry, (str, os.PathLike)) and str(entry):
            source = UnlabelledSource(Path(entry).expanduser())
        else:
            raise ConfigError(
                f"{key} entries must be paths or {{path, column, root}}, got {entry!r}"
            )
        if not (source.path.is_dir() or source.path.suffix.lower() == ".csv"):
            raise DataNotFoundError(
                f"{key}: {str(source.path)!r} is not a folder of images or a .csv file"
            )
        sources.append(source)
    return sources


def read_sources(sources: Sequence[UnlabelledSource], *, missing_images: str) -> pd.DataFrame:
    """The images of ``sources``: columns ``id``, ``path``, ``label`` (-1) and ``source``.

    A CSV's paths that name no file follow ``missing_images`` (``"error"``:
    :class:`MissingImagesError` naming the CSV, the count and the first few; ``"skip"``:
    left out with a warning). An id given twice (a path listed twice in a CSV, the same
    relative path in two sources of the same name) raises :class:`DataLayoutError`; a
    source without images raises :class:`DataNotFoundError`.
    """
    frames = [_read_source(s, missing_images=missing_images) for s in sources]
    if not frames:
        return pd.DataFrame(columns=["id", "path", "label", "source"])
    table = pd.concat(frames, ignore_index=True)
    require_unique(
        table["id"].tolist(),
        source="data.unlabelled",
        what="image id(s)",
        hint="give sources of the same name different names, and list each image once",
    )
    return table


def _read_source(source: UnlabelledSource, *, missing_images: str) -> pd.DataFrame:
    if source.path.is_dir():
        base = source.path
        listing = list_files(base)
        listing.report(base)
        paths = listing.images
        if not paths:
            raise DataNotFoundError(
                f"data.unlabelled: no image files ({', '.join(IMAGE_EXTENSIONS)}) in "
                f"{str(base)!r} or its subfolders"
            )
        relative = [p.relative_to(base).as_posix() for p in paths]
    else:
        table = read_csv_columns(
            source.path, [source.column], "data.unlabelled CSV", unique=source.column
        )
        relative = [v.strip() for v in table[source.column]]
        empty = sum(v == "" for v in relative)
        if empty:
            raise DataLayoutError(
                f"{empty} row(s) of {str(source.path)!r} have an empty {source.column!r}"
            )
        base = source.root or source.path.parent
        matcher = FileMatcher()
        found = [matcher.find(base, v) for v in relative]
        missing = [v for v, p in zip(relative, found, strict=True) if p is None]
        if missing:
            _missing(missing, len(found), source, base, missing_images)
        kept = [i for i, p in enumerate(found) if p is not None]
        relative = [relative[i] for i in kept]
        paths = [p for p in found if p is not None]
    return pd.DataFrame(
        {
            "id": [f"{source.name}/{r}" for r in relative],
            "path": [str(p) for p in paths],
            "label": -1,
            "source": str(source.path),
        }
    )


def _missing(
    missing: list[str], total: int, source: UnlabelledSource, base: Path, missing_images: str
) -> None:
    """Raise or warn (``missing_images``) about a CSV's paths that name no file."""
    message = (
        f"{len(missing)} of {total} images listed in {str(source.path)!r} are missing "
        f"(paths relative to {str(base)!r}), e.g. "
        + ", ".join(shown(m, quoted=False) for m in missing[:SHOWN])
    )
    if missing_images == "error" and len(missing) == total:
        raise MissingImagesError(f"{message}: none was found, check the folder and the paths")
    if missing_images == "error":
        raise MissingImagesError(message + "; set data.missing_images=skip to leave them out")
    log.warning("%s; skipping them", message)
