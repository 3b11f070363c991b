"""EyePACS: the Kaggle Diabetic Retinopathy Detection (2015) data, read as downloaded.

Layout (the competition's data page, kaggle.com/c/diabetic-retinopathy-detection/data, and
the projects that read it, e.g. TensorFlow Datasets' ``diabetic_retinopathy_detection``)::

    root/trainLabels.csv            image,level         (35126 rows, e.g. 10_left,0)
    root/train/<image>.jpeg         10_left.jpeg, 10_right.jpeg, ...
    root/test/<image>.jpeg          (53576 images)
    root/retinopathy_solution.csv   image,level,Usage   (the test labels released after the
                                    competition; Usage: Public or Private leaderboard)
    root/sampleSubmission.csv       (not read)

Ids are ``<patient>_left`` / ``<patient>_right``: both eyes of a patient stay on one side
of the validation split drawn from the training images (they are strongly correlated).
Grades 0-4 as APTOS; the official metric is quadratic weighted kappa.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.benchmark_tables import list_unlabelled, parse_grades
from fgssl.data.fractions import HeldOutFractions
from fgssl.data.icdr import ICDRGrading
from fgssl.data.tables import read_csv_columns, require_dir
from fgssl.errors import ConfigError, DataLayoutError

__all__ = ["EyePACSDataModule"]

log = logging.getLogger(__name__)

TRAIN_LABELS = "trainLabels.csv"
SOLUTION = "retinopathy_solution.csv"
EYE_ID = r"^(?P<patient>\d+)_(left|right)$"
TestUsage = Literal["all", "Public", "Private"]


class EyePACSDataModule(ICDRGrading, HeldOutFractions, ImageClassificationDataModule):
    """Kaggle Diabetic Retinopathy Detection (EyePACS, 5 grades) as downloaded.

    Splits: ``val_fraction`` (default 0.2) of ``trainLabels.csv``, drawn by patient
    (stratified as the groups allow). Test: the official test set with the released labels
    (``retinopathy_solution.csv``; ``test_usage`` keeps the Public or Private leaderboard
    rows only); without that file, ``test_fraction`` of the training patients, or the
    validation split, and the ``test/`` images become the unlabelled ``predict`` split.

    Args:
        val_fraction: share of the training images to validate on (by patient).
        test_fraction: > 0 holds that share of the training images (by patient) out as the
            test split instead of the official test set.
        test_usage: ``"all"`` (default), ``"Public"`` or ``"Private"``: which rows of the
            solution file form the test split.
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        test_usage: TestUsage = "all",
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        self._init_fractions(val_fraction, test_fraction)
        if test_usage not in ("all", "Public", "Private"):
            raise ConfigError(
                f"data.test_usage must be 'all', 'Public' or 'Private', got {test_usage!r}"
            )
        self.test_usage = test_usage

    def read_splits(self) -> SplitTables:
        root = require_dir(self.root, "EyePACS data root (the folder with trainLabels.csv)")
        train = self._read(root / TRAIN_LABELS, root / "train")
        test = None
        solution = root / SOLUTION
        if solution.is_file():
            test = self._read(solution, root / "test", usage=True)
        else:
            log.info("no %s in %s: the test split is drawn from trainLabels.csv", SOLUTION, root)
        splits = self._assemble_splits(
            train,
            test=test,
            group_column="group",
            group_name="patient",
        )
        if test is None and (root / "test").is_dir():
            predict = self.unlabelled_images(["test"])
            splits["predict"] = predict.assign(id=[Path(p).stem for p in predict["path"]])
        return splits

    def unlabelled_images(self, folders: list[str] | None = None) -> pd.DataFrame:
        """Every image of ``train/`` and ``test/`` (ids relative to the root, label -1),
        read without any CSV: a pool for self-supervised pretraining."""
        names = folders or ["train", "test"]
        return list_unlabelled(self.root, [self.root / f for f in names], what="EyePACS")

    def _read(self, csv_path: Path, images: Path, *, usage: bool = False) -> pd.DataFrame:
        columns = ["image", "level", *(["Usage"] if usage else [])]
        table = read_csv_columns(
            csv_path, columns, f"EyePACS {csv_path.name}", unique="image", labels=["level"]
        )
        if usage and self.test_usage != "all":
            kept = table["Usage"].str.strip() == self.test_usage
            log.info(
                "test_usage=%s: testing on %d of %d rows of %s",
                self.test_usage,
                int(kept.sum()),
                len(kept),
                SOLUTION,
            )
            table = table[kept]
        ids = table["image"].str.strip()
        patients = ids.str.extract(EYE_ID)["patient"]
        if patients.isna().any():
            bad = ", ".join(ids[patients.isna()].head(5))
            raise DataLayoutError(
                f"{int(patients.isna().sum())} image id(s) of {str(csv_path)!r} are not "
                f"<patient>_left or <patient>_right, e.g. {bad}"
            )
        frame = pd.DataFrame(
            {
                "id": ids,
                "label": parse_grades(
                    table["level"], ids, allowed=range(5), path=csv_path, column="level"
                ),
                "group": patients,
            }
        )
        folder = require_dir(images, f"EyePACS image folder for {csv_path.name}")
        return self.resolve_images(frame, [folder], source=csv_path)
