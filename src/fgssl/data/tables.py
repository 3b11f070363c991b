"""Reading the CSV files of a dataset, with errors that say what was expected."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fgssl.errors import DataLayoutError, DataNotFoundError

__all__ = ["DataLayoutError", "find_images", "read_csv_columns", "require_dir"]


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise naming ``what`` was expected there."""
    if not path.is_dir():
        raise DataNotFoundError(f"{what} not found: {str(path)!r} is not a folder")
    return path


def read_csv_columns(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Read ``path`` and check that it has ``columns`` (extra columns are kept)."""
    if not path.is_file():
        raise DataNotFoundError(f"{what} not found: expected the file {str(path)!r}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataLayoutError(f"cannot parse {str(path)!r} as CSV: {error}") from error
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataLayoutError(
            f"{str(path)!r} lacks the column(s) {missing}: expected a header with "
            f"{list(columns)}, found {list(table.columns)}"
        )
    return table


def find_images(
    folder: Path,
    ids: Sequence[str],
    *,
    extensions: Sequence[str] = (".png", ".jpg", ".jpeg"),
) -> tuple[list[Path | None], list[str]]:
    """Locate ``<id><ext>`` in ``folder`` for every id (extension case-insensitive).

    Returns the paths (None where missing) and the ids that have no file.
    """
    by_stem: dict[str, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in extensions and entry.is_file():
                by_stem.setdefault(stem, Path(entry.path))
    paths = [by_stem.get(i) for i in ids]
    missing = [i for i, p in zip(ids, paths, strict=True) if p is None] if None in paths else []
    return paths, missing
