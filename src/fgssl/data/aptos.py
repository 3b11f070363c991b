"""APTOS 2019 Blindness Detection, read in the Kaggle layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.fractions import HeldOutFractions
from fgssl.data.icdr import ICDRGrading
from fgssl.data.tables import read_csv_columns, require_dir
from fgssl.errors import DataLayoutError

__all__ = ["APTOS2019DataModule"]


class APTOS2019DataModule(ICDRGrading, HeldOutFractions, ImageClassificationDataModule):
    """Diabetic-retinopathy grading (APTOS 2019, 5 grades), from the Kaggle download::

        root/train.csv            id_code,diagnosis
        root/train_images/<id_code>.png (or .jpg)
        root/test.csv             id_code           (optional, unlabelled: prediction)
        root/test_images/<id_code>.png

    Each ``id_code`` must be listed once. ``train.csv`` is split (seeded, stratified;
    byte-identical images kept on one side) into train / val and, when
    ``test_fraction > 0``, a held-out test split. The official test labels were never
    released, so with ``test_fraction=0`` (the papers' protocol) the test split is the
    validation split.

    Args:
        val_fraction: share of train.csv used for validation (default 0.2).
        test_fraction: share of train.csv held out for testing (default 0).
        **kwargs: see :class:`ImageClassificationDataModule` (``missing_images``,
            ``cache_dir``, ``label_fraction``, ...).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        self._init_fractions(val_fraction, test_fraction)

    def read_splits(self) -> SplitTables:
        root = require_dir(self.root, "APTOS 2019 data root (the folder with train.csv)")
        labelled = self._read_table(root / "train.csv", root / "train_images", labelled=True)
        splits = self._assemble_splits(labelled)
        if (root / "test.csv").is_file() and (root / "test_images").is_dir():
            splits["predict"] = self._read_table(
                root / "test.csv", root / "test_images", labelled=False
            ).reset_index(drop=True)
        return splits

    def _read_table(self, csv_path: Path, image_dir: Path, *, labelled: bool) -> pd.DataFrame:
        columns = ["id_code", "diagnosis"] if labelled else ["id_code"]
        table = read_csv_columns(
            csv_path, columns, "APTOS " + csv_path.name, unique="id_code", labels=columns[1:]
        )
        require_dir(image_dir, f"APTOS image folder for {csv_path.name}")
        ids = table["id_code"].str.strip().tolist()
        labels = self._parse_labels(table, csv_path) if labelled else [-1] * len(ids)
        frame = pd.DataFrame({"id": ids, "label": labels})
        return self.resolve_images(frame, [image_dir], source=csv_path)

    def _parse_labels(self, table: pd.DataFrame, csv_path: Path) -> list[int]:
        raw = table["diagnosis"].str.strip()
        numeric = pd.to_numeric(raw, errors="coerce")
        valid = numeric.notna() & numeric.isin(range(self.num_classes))
        if not valid.all():
            bad = table.loc[~valid, ["id_code", "diagnosis"]].head(5)
            examples = ", ".join(f"{r.id_code}={r.diagnosis!r}" for r in bad.itertuples())
            raise DataLayoutError(
                f"{int((~valid).sum())} row(s) of {str(csv_path)!r} have a diagnosis outside the "
                f"grades 0..{self.num_classes - 1}, e.g. {examples}"
            )
        return numeric.astype(int).tolist()
