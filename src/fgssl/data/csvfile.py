"""Users' own images listed in a CSV file with their labels."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import SplitTables
from fgssl.data.image_listing import IMAGE_EXTENSIONS, FileMatcher
from fgssl.data.labels import is_missing
from fgssl.data.tables import read_csv_columns, require_dir
from fgssl.data.user import UserDataModule
from fgssl.errors import ConfigError, DataLayoutError

__all__ = ["CSVDataModule"]

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
"""Accepted values of ``split_column`` (case-insensitive) -> split."""


class CSVDataModule(UserDataModule):
    """Images listed in a CSV file with a path column and a label column::

        root/labels.csv        path,label            (any other columns are kept aside)
                               scans/a001.png,melanoma
        root/scans/a001.png

    Relative paths (of the CSV files and of the images) are resolved against ``root``; an
    image path without an extension also matches ``<path>.png``, ``.jpg``, ... Labels are
    class names, or integer positions in ``class_names`` when it is given (and none of its
    names is a number); spellings of one label are one class
    (:func:`~fgssl.data.labels.label_key`: ``1``/``1.0``, ``Melanoma``/``melanoma``), and
    a row without a label (empty, ``NA``, ``NaN``, ...) is refused naming its line. Without
    ``class_names`` the classes are the training labels (:mod:`fgssl.data.class_order`),
    and a validation or test label that is not one of them is refused.

    The splits: a ``split_column`` (values train / val / test), or separate ``val_csv`` and
    ``test_csv`` files, or else ``val_fraction`` (default 0.2) of the images drawn for
    validation (seeded, stratified; grouped by ``group_column``, e.g. a patient id, when
    given). Without a test split the test split is the validation split unless
    ``test_fraction > 0`` holds one out too.

    Args:
        csv: the CSV of (training) images.
        path_column: the name of its image-path column.
        label_column: the name of its label column.
        val_csv: a CSV file of the validation images (same columns).
        test_csv: a CSV file of the test images (same columns).
        split_column: a column of ``csv`` naming each image's split instead.
        group_column: a column (e.g. a patient id) whose groups drawn splits keep together
            (a blank cell: a group of its own).
        **kwargs: see :class:`UserDataModule` (``class_names`` defaults to the distinct
            training labels: numbers numerically, ICDR grades by grade when ``ordinal``,
            other names sorted) and :class:`ImageClassificationDataModule`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        csv: str | os.PathLike[str] = "labels.csv",
        path_column: str = "path",
        label_column: str = "label",
        val_csv: str | os.PathLike[str] | None = None,
        test_csv: str | os.PathLike[str] | None = None,
        split_column: str | None = None,
        group_column: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        if split_column is not None and (val_csv is not None or test_csv is not None):
            raise ConfigError(
                "give either split_column or val_csv/test_csv for the splits, not both"
            )
        self.csv = self.root / Path(csv).expanduser()
        self.val_csv = self.beside_root(val_csv)
        self.test_csv = self.beside_root(test_csv)
        self.path_column = path_column
        self.label_column = label_column
        self.split_column = split_column
        self.group_column = group_column

    def read_splits(self) -> SplitTables:
        require_dir(self.root, "data root of the CSV data")
        tables = {"train": self._read(self.csv)}
        if self.split_column is not None:
            tables = self._split_by_column(tables["train"])
        for name, path in (("val", self.val_csv), ("test", self.test_csv)):
            if path is not None:
                tables[name] = self._read(path)
        train_source = self._source("train")
        self.derive_classes(tables["train"]["raw_label"], where=f"the labels of {train_source}")
        encoded = {
            name: self._encode(table, self._source(name), train_source)
            for name, table in tables.items()
        }
        self.warn_untrained(encoded["train"]["label"], train_source)
        if self.group_column is None:
            return self.assemble(encoded)
        return self.assemble(
            encoded, group_column="group", group_name=f"{self.group_column!r} (data.group_column)"
        )

    def _source(self, split: str) -> str:
        """Where the labels of ``split`` are read, for messages."""
        given = {"val": self.val_csv, "test": self.test_csv}.get(split)
        if given is not None:
            return repr(str(given))
        if self.split_column is not None:
            return f"{str(self.csv)!r} (rows with {self.split_column} {split})"
        return repr(str(self.csv))

    def _read(self, path: Path) -> pd.DataFrame:
        columns = [self.path_column, self.label_column]
        for extra in (self.split_column, self.group_column):
            if extra is not None and extra not in columns:
                columns.append(extra)
        table = read_csv_columns(
            path, columns, "image list CSV", unique=self.path_column, labels=[self.label_column]
        )
        raw_paths = table[self.path_column].str.strip()
        labels = table[self.label_column].str.strip()
        empty = raw_paths.eq("")
        self._require_cells(path, empty, f"an empty {self.path_column!r} cell", raw_paths)
        self._require_cells(
            path,
            labels.map(
                lambda label: is_missing(label, self._class_names if self.names_given else None)
            ),
            f"no label in {self.label_column!r} (an empty cell or a missing-value marker: NA, "
            "N/A, NaN, None, null, ...; list a class so named in data.class_names)",
            labels,
        )
        matcher = FileMatcher()
        frame = pd.DataFrame(
            {
                "id": raw_paths,
                "raw_label": labels,
                "path": [self._locate(p, matcher) for p in raw_paths],
            }
        )
        if self.split_column is not None:
            frame["split"] = table[self.split_column].str.strip().str.lower()
        if self.group_column is not None:
            frame["group"] = table[self.group_column].str.strip()
        return self.drop_missing(
            frame, source=path, expected=f"files relative to {str(self.root)!r}"
        )

    def _locate(self, raw: str, matcher: FileMatcher) -> str | None:
        """The file ``raw`` names (names compared in NFC), trying ``raw`` + an image
        extension when it has none."""
        relative = Path(raw).expanduser()
        path = matcher.find(self.root, relative)
        if path is None and relative.suffix.lower() not in IMAGE_EXTENSIONS:
            for extension in IMAGE_EXTENSIONS:
                path = matcher.find(self.root, relative.with_name(relative.name + extension))
                if path is not None:
                    break
        return None if path is None else str(path)

    def _split_by_column(self, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
        known = table["split"].map(SPLIT_NAMES)
        if known.isna().any():
            bad = sorted(set(table.loc[known.isna(), "split"]))
            raise DataLayoutError(
                f"{str(self.csv)!r} has unknown value(s) {bad[:5]} in its split column "
                f"{self.split_column!r}: expected train, val (or valid, validation) or test"
            )
        tables = {name: table[known == name] for name in ("train", "val", "test")}
        return {name: t for name, t in tables.items() if not t.empty or name == "train"}

    def _encode(self, table: pd.DataFrame, source: str, train_source: str) -> pd.DataFrame:
        labels = self.encode(
            table["raw_label"],
            source=source,
            train_source=train_source,
            ids=table["id"].tolist(),
        )
        return table.assign(label=labels).drop(columns="raw_label")

    @staticmethod
    def _require_cells(path: Path, bad: pd.Series, what: str, values: pd.Series) -> None:
        """Raise :class:`DataLayoutError` naming the file's lines (1-based, after the
        header) where ``bad`` holds, and their values."""
        if bad.any():
            lines = [f"{i + 2} ({values[i]!r})" for i in bad[bad].index[:5]]  # +2: header
            raise DataLayoutError(
                f"{int(bad.sum())} row(s) of {str(path)!r} have {what}, e.g. line(s) "
                f"{', '.join(lines)}: fill them in or leave those rows out"
            )
