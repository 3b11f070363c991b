"""IDRiD part B (disease grading), read as downloaded.

Layout (IEEE DataPort, "Indian Diabetic Retinopathy Image Dataset (IDRiD)"; Porwal et al.,
Data 2018, and the projects that read it), from the ``B. Disease Grading`` folder::

    1. Original Images/a. Training Set/IDRiD_001.jpg ... (413)
    1. Original Images/b. Testing Set/IDRiD_001.jpg ...  (103; numbered from 001 again)
    2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv
    2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv
        Image name,Retinopathy grade,Risk of macular edema      (ids without extension)

The official headers are irregular: ``Risk of macular edema `` ends in a space and the
training file has trailing empty columns (and may end in empty rows): header cells are read
stripped, extra columns and all-empty rows ignored. Because the test images reuse the
training names, an image is known by its split and name (a name in both splits is two
images; the same file twice is still refused).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.benchmark_tables import list_unlabelled, parse_grades
from fgssl.data.fractions import HeldOutFractions
from fgssl.data.icdr import ICDRGrading
from fgssl.data.tables import read_csv_columns, require_dir
from fgssl.errors import DataNotFoundError

__all__ = ["IDRiDDataModule"]

log = logging.getLogger(__name__)

FOLDER = "B. Disease Grading"
IMAGES = {
    "train": "1. Original Images/a. Training Set",
    "test": "1. Original Images/b. Testing Set",
}
LABELS = {
    "train": "2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv",
    "test": "2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv",
}
COLUMNS = ["Image name", "Retinopathy grade"]


class IDRiDDataModule(ICDRGrading, HeldOutFractions, ImageClassificationDataModule):
    """IDRiD disease grading (5 DR grades): the official training and test sets.

    ``root`` is the ``B. Disease Grading`` folder or the folder holding it. Validation:
    ``val_fraction`` (default 0.2) of the training images (seeded, stratified); test: the
    official test set (``test_fraction > 0`` holds a share of the training images out
    instead).

    Args:
        val_fraction: see above.
        test_fraction: see above.
        **kwargs: see :class:`ImageClassificationDataModule`.
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

    @property
    def grading_root(self) -> Path:
        """The ``B. Disease Grading`` folder."""
        root = require_dir(self.root, "IDRiD data root")
        if (root / FOLDER).is_dir():
            return root / FOLDER
        if not (root / "2. Groundtruths").is_dir():
            raise DataNotFoundError(
                f"no IDRiD disease grading data in {str(root)!r}: expected the folder "
                f"{FOLDER!r} or its '1. Original Images' and '2. Groundtruths' folders"
            )
        return root

    def read_splits(self) -> SplitTables:
        base = self.grading_root
        train = self._read(base, "train")
        test = self._read(base, "test")
        return self._assemble_splits(
            train,
            test=test,
            unique_ids=False,  # the test set reuses the training names
        )

    def unlabelled_images(self) -> pd.DataFrame:
        """Every image of the training and testing folders, read without the CSVs."""
        base = self.grading_root
        return list_unlabelled(self.root, [base / f for f in IMAGES.values()], what="IDRiD")

    def _read(self, base: Path, split: str) -> pd.DataFrame:
        csv_path = base / LABELS[split]
        table = read_csv_columns(
            csv_path,
            COLUMNS,
            f"IDRiD {split} grades",
            unique="Image name",
            labels=["Retinopathy grade"],
        )
        empty = (table.apply(lambda c: c.str.strip()) == "").all(axis=1)
        table = table[~empty]
        ids = table["Image name"].str.strip()
        grades = table["Retinopathy grade"]
        labels = parse_grades(grades, ids, allowed=range(5), path=csv_path, column=COLUMNS[1])
        frame = pd.DataFrame({"id": ids, "label": labels})
        folder = require_dir(base / IMAGES[split], f"IDRiD {split} images")
        return self.resolve_images(frame, [folder], source=csv_path)
