"""The record of a data module's splits: one row per image (``split.csv`` of a run)."""

from __future__ import annotations

import abc
from pathlib import Path

import pandas as pd

from fgssl.data.duplicates import COLUMN as DUPLICATE_COLUMN
from fgssl.data.splits import SplitTables

__all__ = ["SplitRecord"]


class SplitRecord(abc.ABC):
    """Mixin of :class:`~fgssl.data.base.ImageClassificationDataModule`: its split table."""

    @abc.abstractmethod
    def _ready_splits(self) -> SplitTables:
        """The split tables, read and checked on first use."""

    def split_table(self) -> pd.DataFrame:
        """One row per image: ``id``, ``label``, ``split`` (train/val/test/predict, and
        ``unlabelled`` for the extra pretraining images of ``data.unlabelled``),
        ``labelled`` (False for unlabelled images and for training images whose label
        ``label_fraction`` held back from finetuning) and, unless ``duplicates="ignore"``,
        ``duplicate_group`` (shared by byte-identical files, empty for the others)."""
        splits = self._ready_splits()
        frames = []
        for name, table in splits.items():
            labelled = table["labelled"] if "labelled" in table else table["label"] >= 0
            frames.append(table.assign(split=name, labelled=labelled))
        columns = ["id", "label", "split", "labelled"]
        if DUPLICATE_COLUMN in frames[0]:
            columns.append(DUPLICATE_COLUMN)
        return pd.concat(frames, ignore_index=True)[columns]

    def write_split(self, path: str | Path) -> Path:
        """Write :meth:`split_table` as CSV to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.split_table().to_csv(path, index=False)
        return path
