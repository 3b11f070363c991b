"""No image in two splits: the training, validation and test images of a run are disjoint,
however the splits were given (a folder given as ``data.root`` and ``data.val_root``, the
training CSV named as ``data.test_csv``, a reader's own tables) or drawn.

:func:`require_distinct` refuses an image listed twice among some tables;
:func:`require_disjoint_splits` applies it to the assembled splits of every data module
(:meth:`fgssl.data.base.ImageClassificationDataModule.setup`).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Mapping, Sequence

import pandas as pd

from fgssl.errors import DataLayoutError

__all__ = ["LABELLED_SPLITS", "require_disjoint_splits", "require_distinct", "same_file_key"]

LABELLED_SPLITS = ("train", "val", "test")
"""The splits that must not share an image (the images to predict and the pretraining pools
have their own rules: :mod:`fgssl.data.duplicates`, :mod:`fgssl.data.unlabelled`)."""
SHOWN = 5


@functools.lru_cache(maxsize=1 << 12)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def same_file_key(path: str | os.PathLike[str]) -> str:
    """A key that two paths share exactly when they name one file: the path made absolute
    with every link resolved (``os.path.realpath``; the folders' resolutions are memoised,
    so a file costs one ``lstat``)."""
    absolute = os.path.normpath(os.path.abspath(path))
    if os.path.islink(absolute):
        return os.path.realpath(absolute)
    folder, name = os.path.split(absolute)
    return os.path.join(_real_folder(folder), name)


def require_distinct(tables: Mapping[str, pd.DataFrame | None], *, ids: bool = True) -> None:
    """Raise :class:`DataLayoutError` when an image file is listed more than once among
    ``tables`` (by its ``path``, links resolved: :func:`same_file_key`), or, with ``ids``,
    when an ``id`` is listed in two of them (e.g. in both the official training and
    validation ground truth). The message gives their count and the first few, with where
    each is listed.

    A ``test`` table that lists exactly the paths of the ``val`` table is that table again
    (the test split of a dataset without one is its validation split; the same CSV given
    as validation and test set), not a second listing. Any other two tables are compared
    image by image, even when they list the same images (``data.val_root`` equal to
    ``data.root``). ``ids=False`` where ids are relative to each split's folder (the folder
    layout) or repeat across splits (IDRiD's test names).
    """
    present = {name: table for name, table in tables.items() if table is not None}
    val, test = present.get("val"), present.get("test")
    if val is not None and test is not None and _same_paths(val, test):
        del present["test"]
    checks = [("image file(s)", "path", lambda v: same_file_key(str(v)))]
    if ids:
        checks.insert(0, ("id(s)", "id", str))
    for what, column, normalise in checks:
        where: dict[str, list[str]] = {}
        first: dict[str, object] = {}  # the value as first listed
        for name, table in present.items():
            for value in table[column]:
                key = normalise(value)
                where.setdefault(key, []).append(name)
                first.setdefault(key, value)
        repeated = {v: names for v, names in where.items() if len(names) > 1}
        if column == "id":  # ids repeated within one table are the readers' to refuse
            repeated = {v: names for v, names in repeated.items() if len(set(names)) > 1}
        if repeated:
            examples = ", ".join(
                f"{_as_listed(first[v], column)!r} ({_listings(names)})"
                for v, names in list(repeated.items())[:SHOWN]
            )
            raise DataLayoutError(
                f"{len(repeated)} {what} are listed more than once, e.g. {examples}: an image "
                "must be listed once, in one split"
            )


def require_disjoint_splits(splits: Mapping[str, pd.DataFrame]) -> None:
    """:func:`require_distinct` of the :data:`LABELLED_SPLITS` of assembled ``splits`` by
    file: a data module's training, validation and test images share none."""
    require_distinct({name: splits.get(name) for name in LABELLED_SPLITS}, ids=False)


def _same_paths(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return a["path"].astype(str).tolist() == b["path"].astype(str).tolist()


def _as_listed(value: object, column: str) -> str:
    """A value as shown in the message: a path absolute and normalised, an id as it is."""
    text = str(value)
    return os.path.normpath(os.path.abspath(text)) if column == "path" else text


def _listings(names: Sequence[str]) -> str:
    """Where a value is listed: "train and val", "train 2 times"."""
    counts = Counter(names)
    return " and ".join(n if k == 1 else f"{n} {k} times" for n, k in counts.items())
