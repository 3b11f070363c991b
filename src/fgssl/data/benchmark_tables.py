"""Helpers shared by the readers of the wider benchmarks (EyePACS, Messidor-2, IDRiD, DDR,
ISIC 2019, ISIC 2020): integer grades, rows left out with a logged count, and the listing of
a dataset's images without labels (an unlabelled pool for self-supervised pretraining)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fgssl.data.image_listing import list_files
from fgssl.errors import DataLayoutError, DataNotFoundError

__all__ = ["list_unlabelled", "parse_grades"]

log = logging.getLogger(__name__)

SHOWN = 5


def parse_grades(
    values: pd.Series, ids: pd.Series, *, allowed: Sequence[int], path: Path, column: str
) -> pd.Series:
    """The integer grades of ``values`` (strings such as ``"2"`` or ``"2.0"``).

    Raises :class:`DataLayoutError` naming ``path``, ``column``, the count and the first
    few ids when a value is empty, not a whole number or not in ``allowed``.
    """
    numeric = pd.to_numeric(values.str.strip(), errors="coerce")
    valid = numeric.notna() & (numeric % 1 == 0) & numeric.isin(list(allowed))
    if not valid.all():
        bad = pd.DataFrame({"id": ids, "value": values})[~valid].head(SHOWN)
        examples = ", ".join(f"{r.id}={r.value!r}" for r in bad.itertuples())
        raise DataLayoutError(
            f"{int((~valid).sum())} row(s) of {str(path)!r} have a {column} outside "
            f"{list(allowed)}, e.g. {examples}"
        )
    return numeric.astype(int)


def list_unlabelled(
    root: Path, folders: Sequence[Path], *, what: str, ignore: str | None = None
) -> pd.DataFrame:
    """Every image file (by extension, :data:`fgssl.data.image_listing.IMAGE_EXTENSIONS`;
    links followed) directly in ``folders``, without reading any label file: columns ``id``
    (the path relative to ``root``, so the same name in two folders stays two images),
    ``path`` and ``label`` (-1). Hidden files and stems matching the regular expression
    ``ignore`` are left out.

    Raises :class:`DataNotFoundError` when none of ``folders`` exists (``what`` names the
    dataset) or they hold no image.
    """
    present = [f for f in folders if f.is_dir()]
    if not present:
        expected = ", ".join(repr(str(f)) for f in folders)
        raise DataNotFoundError(f"no {what} image folder found: expected one of {expected}")
    pattern = re.compile(ignore) if ignore else None
    rows = []
    for folder in present:
        listing = list_files(folder, recursive=False)
        listing.report(folder)
        for file in sorted(listing.images):
            if pattern is not None and pattern.search(file.stem):
                continue
            rows.append({"id": file.relative_to(root).as_posix(), "path": str(file), "label": -1})
    if not rows:
        raise DataNotFoundError(f"no {what} images in " + ", ".join(repr(str(f)) for f in present))
    log.info("%s: %d unlabelled images in %d folder(s)", what, len(rows), len(present))
    return pd.DataFrame(rows, columns=["id", "path", "label"])
