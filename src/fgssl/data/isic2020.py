"""ISIC 2020 (SIIM-ISIC melanoma classification, binary), read as downloaded.

Two layouts (challenge.isic-archive.com/data/#2020; kaggle.com/c/siim-isic-melanoma-classification;
Rotemberg et al., Scientific Data 2021)::

    ISIC archive                                   Kaggle
    ISIC_2020_Training_GroundTruth_v2.csv          train.csv
      (or ISIC_2020_Training_GroundTruth.csv)      jpeg/train/ISIC_2637011.jpg ...
    train/ISIC_2637011.jpg ... (33126)             (train/ holds the DICOM files)
    ISIC_2020_Training_Duplicates.csv              jpeg/test/ + test.csv (no labels)
    ISIC_2020_Test_Input/ (no labels)

The ground truth has ``image_name,patient_id,sex,age_approx,anatom_site_general_challenge,
diagnosis,benign_malignant,target`` (v2 adds ``lesion_id``); ``target`` 1 is melanoma (about
1.8 %). ``ISIC_2020_Training_Duplicates.csv`` (``image_name_1,image_name_2``) lists the
duplicate images the archive found: the second of each pair is left out by default
(``remove_duplicates``), and its absence is warned about. Splits keep all images of a
patient on one side. The official metric is AUROC; the test labels were not released.
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
from fgssl.data.tables import read_csv_columns, require_dir
from fgssl.errors import DataNotFoundError

__all__ = ["ISIC2020DataModule"]

log = logging.getLogger(__name__)

TRUTHS = (
    "ISIC_2020_Training_GroundTruth_v2.csv",
    "ISIC_2020_Training_GroundTruth.csv",
    "train.csv",
)
TRAIN_IMAGES = ("jpeg/train", "train")
TEST_IMAGES = ("jpeg/test", "ISIC_2020_Test_Input")
DUPLICATES = "ISIC_2020_Training_Duplicates.csv"


class ISIC2020DataModule(HeldOutFractions, ImageClassificationDataModule):
    """ISIC 2020 melanoma vs benign, from the ISIC archive or the Kaggle download.

    Validation: ``val_fraction`` (default 0.2) of the training images by patient
    (``patient_id``), stratified as the groups allow; test: ``test_fraction`` of the
    patients, or the validation split (the test labels were not released). The test
    images are the unlabelled ``predict`` split.

    Args:
        val_fraction: see above.
        test_fraction: see above.
        remove_duplicates: leave out the second image of each pair of
            ``ISIC_2020_Training_Duplicates.csv`` (default True).
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    class_names = ("benign", "melanoma")
    official_metric = "auroc"
    transforms_preset = "skin"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        remove_duplicates: bool = True,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        self._init_fractions(val_fraction, test_fraction)
        self.remove_duplicates = remove_duplicates

    def read_splits(self) -> SplitTables:
        root = require_dir(self.root, "ISIC 2020 data root")
        truth = next((root / name for name in TRUTHS if (root / name).is_file()), None)
        if truth is None:
            raise DataNotFoundError(
                f"no ISIC 2020 ground truth in {str(root)!r}: expected one of {list(TRUTHS)}"
            )
        table = read_csv_columns(
            truth,
            ["image_name", "patient_id", "target"],
            "ISIC 2020 ground truth",
            unique="image_name",
            labels=["target"],
        )
        ids = table["image_name"].str.strip()
        target = parse_grades(table["target"], ids, allowed=(0, 1), path=truth, column="target")
        frame = pd.DataFrame(
            {
                "id": ids,
                "label": target,
                "group": table["patient_id"].str.strip(),
            }
        )
        frame = self._without_listed_duplicates(root, frame)
        folder = self._folder(TRAIN_IMAGES, "training")
        frame = self.resolve_images(frame, [folder], source=truth)
        splits = self._assemble_splits(
            frame,
            group_column="group",
            group_name="patient_id",
        )
        test = [root / name for name in TEST_IMAGES if (root / name).is_dir()]
        if test:
            predict = list_unlabelled(root, test[:1], what="ISIC 2020 test")
            splits["predict"] = predict.assign(id=[Path(p).stem for p in predict["path"]])
        return splits

    def unlabelled_images(self) -> pd.DataFrame:
        """Every JPEG of the training and test folders, read without the CSVs."""
        folders = [self._folder(TRAIN_IMAGES, "training")]
        folders += [self.root / n for n in TEST_IMAGES if (self.root / n).is_dir()][:1]
        return list_unlabelled(self.root, folders, what="ISIC 2020")

    def _folder(self, names: tuple[str, ...], what: str) -> Path:
        for name in names:
            if (self.root / name).is_dir():
                return self.root / name
        expected = " or ".join(repr(str(self.root / n)) for n in names)
        raise DataNotFoundError(f"ISIC 2020 {what} images not found: expected {expected}")

    def _without_listed_duplicates(self, root: Path, frame: pd.DataFrame) -> pd.DataFrame:
        path = root / DUPLICATES
        if not self.remove_duplicates:
            return frame
        if not path.is_file():
            log.warning(
                "no %s in %s: the duplicate images it lists stay in (some may fall on both "
                "sides of a split); download it from the ISIC archive, or set "
                "data.remove_duplicates=false to silence this",
                DUPLICATES,
                root,
            )
            return frame
        pairs = read_csv_columns(
            path, ["image_name_1", "image_name_2"], "ISIC 2020 duplicates list"
        )
        second = set(pairs["image_name_2"].str.strip()) - {""}
        removed = frame["id"].isin(second)
        log.info(
            "ISIC 2020: %d images left out as duplicates listed in %s (data.remove_duplicates)",
            int(removed.sum()),
            DUPLICATES,
        )
        return frame[~removed]
