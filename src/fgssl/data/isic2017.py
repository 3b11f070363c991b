"""ISIC 2017 Part 3: melanoma and seborrheic keratosis classification, official layout."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.fractions import HeldOutFractions
from fgssl.data.tables import read_csv_columns, require_dir
from fgssl.errors import ConfigError, DataLayoutError, DataNotFoundError

__all__ = ["ISIC2017DataModule"]

log = logging.getLogger(__name__)

Task = Literal["melanoma", "seborrheic_keratosis", "three_class"]
TASKS: dict[str, tuple[str, ...]] = {
    "melanoma": ("other", "melanoma"),
    "seborrheic_keratosis": ("other", "seborrheic_keratosis"),
    "three_class": ("melanoma", "seborrheic_keratosis", "nevus"),
}
"""Task -> class names, in label order."""
SPLITS = {
    "train": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part3_GroundTruth.csv"),
    "val": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part3_GroundTruth.csv"),
    "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part3_GroundTruth.csv"),
}
"""Split -> (image folder, ground-truth CSV)."""
NOT_IMAGES = r"_superpixels$"
"""Stems of the superpixel PNGs that sit among the images."""


class ISIC2017DataModule(HeldOutFractions, ImageClassificationDataModule):
    """ISIC 2017 Part 3 (lesion classification) as downloaded::

        ISIC-2017_Training_Data/ISIC_0000000.jpg (+ ISIC_0000000_superpixels.png,
                                ISIC-2017_Training_Data_metadata.csv)
        ISIC-2017_Training_Part3_GroundTruth.csv   image_id,melanoma,seborrheic_keratosis
        ISIC-2017_Validation_Data/ + ISIC-2017_Validation_Part3_GroundTruth.csv
        ISIC-2017_Test_v2_Data/    + ISIC-2017_Test_v2_Part3_GroundTruth.csv

    The superpixel PNGs and metadata CSVs are never taken for images. The official
    validation and test sets are the val and test splits (without them, ``val_fraction`` of
    the training images, stratified, and test = val).

    Args:
        task: ``"melanoma"`` (melanoma vs the rest), ``"seborrheic_keratosis"`` (seborrheic
            keratosis vs the rest; the reference FG-SSL code's task) or ``"three_class"``
            (melanoma / seborrheic keratosis / nevus; the challenge ranked the mean of the
            melanoma and seborrheic keratosis AUROCs).
        val_fraction: None (official validation set) or a share of the training images to
            validate on instead.
        test_fraction: > 0 holds that share of the training images out as the test split.
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    transforms_preset = "skin"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        task: Task = "seborrheic_keratosis",
        val_fraction: float | None = None,
        test_fraction: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        if task not in TASKS:
            raise ConfigError(f"ISIC 2017 task must be one of {list(TASKS)}, got {task!r}")
        self._init_fractions(val_fraction, test_fraction)
        self.task = task
        self.class_names = TASKS[task]
        self.official_metric = "mean_auroc" if task == "three_class" else "auroc"

    def read_splits(self) -> SplitTables:
        root = require_dir(self.root, "ISIC 2017 data root")
        tables: dict[str, pd.DataFrame | None] = {}
        for split, (folder, csv_name) in SPLITS.items():
            images, truth = root / folder, root / csv_name
            if split != "train" and not images.exists() and not truth.exists():
                log.warning("no ISIC 2017 %s set (%s, %s) in %s", split, folder, csv_name, root)
                tables[split] = None
                continue
            require_dir(images, f"ISIC 2017 {split} images")
            if not truth.is_file():
                raise DataNotFoundError(
                    f"ISIC 2017 {split} ground truth not found: expected the file {str(truth)!r}"
                )
            tables[split] = self._read_split(images, truth)
        train = tables["train"]
        assert train is not None
        return self._assemble_splits(
            train,
            val=tables["val"],
            test=tables["test"],
        )

    def _read_split(self, images: Path, csv_path: Path) -> pd.DataFrame:
        columns = ["image_id", "melanoma", "seborrheic_keratosis"]
        table = read_csv_columns(
            csv_path,
            columns,
            "ISIC 2017 Part 3 ground truth",
            unique="image_id",
            labels=columns[1:],
        )
        frame = pd.DataFrame(
            {"id": table["image_id"].str.strip(), "label": self._labels(table, csv_path)}
        )
        return self.resolve_images(frame, [images], source=csv_path, ignore=NOT_IMAGES)

    def _labels(self, table: pd.DataFrame, csv_path: Path) -> np.ndarray:
        values = table[["melanoma", "seborrheic_keratosis"]].apply(
            lambda c: pd.to_numeric(c.str.strip(), errors="coerce")
        )
        matrix = values.to_numpy(dtype=float)
        valid = np.isin(matrix, (0.0, 1.0)).all(axis=1) & (np.nan_to_num(matrix).sum(axis=1) <= 1)
        if not valid.all():
            bad = table.loc[~valid, ["image_id", "melanoma", "seborrheic_keratosis"]].head(3)
            examples = "; ".join(f"{r[0]}: {r[1]},{r[2]}" for r in bad.itertuples(index=False))
            raise DataLayoutError(
                f"{int((~valid).sum())} row(s) of {str(csv_path)!r} are not valid Part 3 labels "
                "(expected melanoma and seborrheic_keratosis values 0.0 or 1.0, at most one "
                f"of them 1.0), e.g. {examples}"
            )
        melanoma, keratosis = matrix[:, 0] == 1, matrix[:, 1] == 1
        if self.task == "melanoma":
            return melanoma.astype(int)
        if self.task == "seborrheic_keratosis":
            return keratosis.astype(int)
        return np.select([melanoma, keratosis], [0, 1], default=2)
