"""Reading the files and CSVs of a dataset, with errors that say what was expected."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fgssl.errors import DataLayoutError, DataNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataLayoutError",
    "find_images",
    "index_images",
    "parse_one_hot",
    "read_csv_columns",
    "require_dir",
    "require_file",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""File name endings read as images (case-insensitive)."""


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise naming ``what`` was expected there."""
    if not path.is_dir():
        raise DataNotFoundError(f"{what} not found: {str(path)!r} is not a folder")
    return path


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise naming ``what`` was expected there."""
    if not path.is_file():
        raise DataNotFoundError(f"{what} not found: expected the file {str(path)!r}")
    return path


def read_csv_columns(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Read ``path`` (every cell a string) and check that it has ``columns`` (extra
    columns are kept)."""
    require_file(path, what)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataLayoutError(f"cannot parse {str(path)!r} as CSV: {error}") from error
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataLayoutError(
            f"{str(path)!r} lacks the column(s) {missing}: expected a header with "
            f"{list(columns)}, found {list(table.columns)}"
        )
    return table


def index_images(
    folders: Iterable[Path],
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ignore: str | None = None,
) -> dict[str, Path]:
    """Map the stem of every image file in ``folders`` (not recursive) to its path.

    ``ignore`` is a regular expression: stems it matches are left out (e.g. ISIC 2017's
    ``_superpixels`` PNGs). The first folder wins when a stem appears twice.
    """
    pattern = re.compile(ignore) if ignore else None
    by_stem: dict[str, Path] = {}
    for folder in folders:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                stem, ext = os.path.splitext(entry.name)
                if ext.lower() not in extensions or entry.name.startswith("."):
                    continue
                if pattern is not None and pattern.search(stem):
                    continue
                if entry.is_file():
                    by_stem.setdefault(stem, Path(entry.path))
    return by_stem


def find_images(
    folder: Path,
    ids: Sequence[str],
    *,
    extensions: Sequence[str] = (".png", ".jpg", ".jpeg"),
) -> tuple[list[Path | None], list[str]]:
    """Locate ``<id><ext>`` in ``folder`` for every id (extension case-insensitive).

    Returns the paths (None where missing) and the ids that have no file.
    """
    by_stem = index_images([folder], extensions=extensions)
    paths = [by_stem.get(i) for i in ids]
    missing = [i for i, p in zip(ids, paths, strict=True) if p is None]
    return paths, missing


def parse_one_hot(
    table: pd.DataFrame, columns: Sequence[str], *, id_column: str, path: Path
) -> list[int]:
    """The index of the one 1 in ``columns`` of every row (values 0/1, as floats or ints).

    Raises :class:`DataLayoutError` naming the file and the first offending rows when a
    value is not a number in {0, 1} or a row does not hold exactly one 1.
    """
    values = table[list(columns)].apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce"))
    matrix = values.to_numpy(dtype=float)
    binary = np.isin(matrix, (0.0, 1.0))
    valid = binary.all(axis=1) & (np.nansum(np.where(binary, matrix, 0), axis=1) == 1)
    if not valid.all():
        bad = table.loc[~valid, [id_column, *columns]].head(3)
        examples = "; ".join(
            f"{row[0]}: " + ",".join(str(v) for v in row[1:]) for row in bad.itertuples(index=False)
        )
        raise DataLayoutError(
            f"{int((~valid).sum())} row(s) of {str(path)!r} are not one-hot over "
            f"{','.join(columns)} (expected exactly one 1.0 and the rest 0.0), e.g. {examples}"
        )
    return matrix.argmax(axis=1).astype(int).tolist()
