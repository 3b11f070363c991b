"""Reading the files and CSVs of a dataset, with errors that say what was expected."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fgssl.data.image_listing import IMAGE_EXTENSIONS, list_files, nfc, shown
from fgssl.errors import DataLayoutError, DataNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataLayoutError",
    "files_of",
    "find_images",
    "index_images",
    "parse_one_hot",
    "pick_images",
    "read_csv_columns",
    "require_dir",
    "require_file",
    "require_unique",
]

SHOWN = 5
"""How many examples an error message names."""


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


def read_csv_columns(
    path: Path,
    columns: Sequence[str],
    what: str,
    *,
    unique: str | None = None,
    labels: Sequence[str] = (),
) -> pd.DataFrame:
    """Read ``path`` (every cell a string) and check that it has ``columns`` (extra
    columns are kept).

    ``unique``: a column whose values identify images (stripped of spaces): a value on
    more than one row raises :class:`DataLayoutError` (see :func:`require_unique`), noting
    those whose ``labels`` columns disagree.
    """
    require_file(path, what)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataLayoutError(f"cannot parse {str(path)!r} as CSV: {error}") from error
    table.columns = [str(c).strip() for c in table.columns]
    expected = list(dict.fromkeys([*columns, *([unique] if unique else [])]))
    missing = [c for c in expected if c not in table.columns]
    if missing:
        raise DataLayoutError(
            f"{str(path)!r} lacks the column(s) {missing}: expected a header with "
            f"{expected}, found {list(table.columns)}"
        )
    if unique is not None:
        label_values = None
        if labels:
            stripped = table[list(labels)].apply(lambda c: c.str.strip())
            label_values = list(stripped.itertuples(index=False, name=None))
        require_unique(
            table[unique].str.strip().tolist(),
            source=f"{str(path)!r}",
            what=f"{unique} value(s)",
            labels=label_values,
            label_name=", ".join(labels),
        )
    return table


def require_unique(
    values: Sequence[str],
    *,
    source: str,
    what: str,
    labels: Sequence[object] | None = None,
    label_name: str = "label",
    hint: str = "each image must be listed once",
) -> None:
    """Raise :class:`DataLayoutError` when a (non-empty) value of ``values`` occurs more
    than once: the message gives the number of such values, the first few with their
    row counts, and how many of them have conflicting ``labels`` (one per value).

    Values are compared after Unicode normalisation (NFC): two spellings of one name name
    one file. Empty values are left to the checks of empty cells.
    """
    values = [nfc(v) for v in values]
    counts = Counter(v for v in values if v != "")
    repeated = [v for v, n in counts.items() if n > 1]
    if not repeated:
        return
    examples = ", ".join(f"{shown(v)} ({counts[v]} rows)" for v in repeated[:SHOWN])
    conflict = ""
    if labels is not None:
        seen: dict[str, set[object]] = {}
        for value, label in zip(values, labels, strict=True):
            if counts.get(value, 0) > 1:
                seen.setdefault(value, set()).add(label)
        conflicting = [v for v in repeated if len(seen[v]) > 1]
        if conflicting:
            conflict = (
                f"; {len(conflicting)} of them with conflicting {label_name}, e.g. "
                f"{shown(conflicting[0])}"
            )
    raise DataLayoutError(
        f"{source} lists {len(repeated)} {what} more than once "
        f"({sum(counts[v] for v in repeated)} rows), e.g. {examples}{conflict}: {hint}"
    )


def index_images(
    folders: Iterable[Path],
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ignore: str | None = None,
) -> dict[str, list[Path]]:
    """Map the stem of every image file in ``folders`` (not recursive; links followed),
    normalised to NFC, to its files (in folder order, then by name; more than one when the
    stem has several extensions or folders). What is left out is logged
    (:meth:`fgssl.data.image_listing.Listing.report`).

    ``ignore`` is a regular expression: stems it matches are left out (e.g. ISIC 2017's
    ``_superpixels`` PNGs).
    """
    pattern = re.compile(ignore) if ignore else None
    by_stem: dict[str, list[Path]] = {}
    for folder in folders:
        listing = list_files(folder, recursive=False)
        listing.report(folder)
        for path in listing.images:
            stem, ext = os.path.splitext(path.name)
            if ext.lower() not in extensions:
                continue
            if pattern is not None and pattern.search(stem):
                continue
            by_stem.setdefault(nfc(stem), []).append(path)
    return by_stem


def files_of(image_id: str, index: dict[str, list[Path]]) -> list[Path]:
    """The files of ``index`` (from :func:`index_images`) the listed ``image_id`` names,
    compared after NFC normalisation: those of the stem ``image_id`` or, for an id that
    carries an image extension (``img000.png``), that file."""
    key = nfc(image_id)
    if key in index:
        return index[key]
    stem, ext = os.path.splitext(key)
    if ext.lower() not in IMAGE_EXTENSIONS:
        return []
    return [p for p in index.get(stem, ()) if os.path.splitext(p.name)[1].lower() == ext.lower()]


def pick_images(
    index: dict[str, list[Path]], ids: Sequence[str], *, where: str
) -> list[Path | None]:
    """The image file of every id in ``index`` (from :func:`index_images`; see
    :func:`files_of`), None where there is none.

    Raises :class:`DataLayoutError` when ids name more than one file (``x.png`` and
    ``x.jpg``, or ``x`` in two folders): which one is the image would be a guess. The
    message names the first few, their files and their count; ``where`` says where the
    files were looked for.
    """
    files = [files_of(i, index) for i in ids]
    ambiguous = list(dict.fromkeys(i for i, f in zip(ids, files, strict=True) if len(f) > 1))
    if ambiguous:
        examples = "; ".join(
            f"{shown(i)}: " + ", ".join(shown(p.name) for p in files_of(i, index))
            for i in ambiguous[:SHOWN]
        )
        raise DataLayoutError(
            f"{len(ambiguous)} listed id(s) name more than one image file in {where}, e.g. "
            f"{examples}: keep one file per id"
        )
    return [f[0] if f else None for f in files]


def find_images(
    folder: Path,
    ids: Sequence[str],
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> tuple[list[Path | None], list[str]]:
    """Locate ``<id><ext>`` (or ``<id>`` when the id carries an image extension) in
    ``folder`` for every id (extension case-insensitive, names compared in NFC).

    Returns the paths (None where missing) and the ids that have no file; raises
    :class:`DataLayoutError` when an id names several files (see :func:`pick_images`).
    """
    index = index_images([folder], extensions=extensions)
    paths = pick_images(index, ids, where=repr(str(folder)))
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
