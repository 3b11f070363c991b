"""ISIC 2019 (lesion diagnosis, 8 classes + UNK), read as downloaded.

Layout (challenge.isic-archive.com/data/#2019; Tschandl et al. 2018, Codella et al. 2017,
Combalia et al. 2019)::

    ISIC_2019_Training_Input/ISIC_0000000.jpg ... (25331; some ISIC_0000xxx_downsampled.jpg)
    ISIC_2019_Training_GroundTruth.csv   image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK (one-hot)
    ISIC_2019_Training_Metadata.csv      image,age_approx,anatom_site_general,lesion_id,sex
    ISIC_2019_Test_Input/ + ISIC_2019_Test_Metadata.csv             (8238 images)
    ISIC_2019_Test_GroundTruth.csv       (released later; same class columns)

Ids are file names without ``.jpg``, ``_downsampled`` included (the ground truth lists
``ISIC_0000000_downsampled``). ``UNK`` (none of the others) has no training image: the
model learns the 8 other classes, and images whose ground truth is ``UNK`` (the test set
has some) are left out with a warning; the official score counts them, so scores here are
of the 8 known classes. The official metric is balanced multiclass accuracy.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.benchmark_tables import list_unlabelled
from fgssl.data.fractions import HeldOutFractions
from fgssl.data.tables import parse_one_hot, read_csv_columns, require_dir

__all__ = ["ISIC2019DataModule"]

log = logging.getLogger(__name__)

TRAIN_IMAGES = "ISIC_2019_Training_Input"
TRAIN_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
TEST_IMAGES = "ISIC_2019_Test_Input"
TEST_TRUTH = "ISIC_2019_Test_GroundTruth.csv"
COLUMNS = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")


class ISIC2019DataModule(HeldOutFractions, ImageClassificationDataModule):
    """ISIC 2019 as downloaded.

    Validation: ``val_fraction`` (default 0.2) of the training images, all images of a
    lesion (the metadata's ``lesion_id``; an image without one is its own lesion) on one
    side. Test: the official test set when its ground truth is there (``test_fraction > 0``
    holds a share of the training lesions out instead), else the validation split; the test
    images without ground truth are the unlabelled ``predict`` split.

    Args:
        val_fraction: see above.
        test_fraction: see above.
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    class_names = COLUMNS[:-1]
    official_metric = "balanced_acc"
    transforms_preset = "skin"

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
        root = require_dir(self.root, "ISIC 2019 data root")
        train = self._read(root / TRAIN_TRUTH, root / TRAIN_IMAGES, "training")
        train = train.assign(group=self._lesions(root, train["id"]))
        test = None
        if (root / TEST_TRUTH).is_file():
            test = self._read(root / TEST_TRUTH, root / TEST_IMAGES, "test")
        splits = self._assemble_splits(
            train,
            test=test,
            group_column="group",
            group_name=f"lesion_id in {METADATA}",
        )
        if test is None and (root / TEST_IMAGES).is_dir():
            predict = list_unlabelled(root, [root / TEST_IMAGES], what="ISIC 2019 test")
            splits["predict"] = predict.assign(id=[Path(p).stem for p in predict["path"]])
        return splits

    def unlabelled_images(self) -> pd.DataFrame:
        """Every image of the training and test folders, read without the CSVs."""
        folders = [self.root / TRAIN_IMAGES, self.root / TEST_IMAGES]
        return list_unlabelled(self.root, folders, what="ISIC 2019")

    def _read(self, csv_path: Path, images: Path, split: str) -> pd.DataFrame:
        table = read_csv_columns(
            csv_path,
            ["image", *COLUMNS],
            f"ISIC 2019 {split} ground truth",
            unique="image",
            labels=COLUMNS,
        )
        labels = pd.Series(
            parse_one_hot(table, COLUMNS, id_column="image", path=csv_path), index=table.index
        )
        unknown = labels == len(COLUMNS) - 1
        if unknown.any():
            log.warning(
                "ISIC 2019 %s: %d of %d images are UNK (no training image has that class): "
                "left out, so the scores are of the 8 known classes",
                split,
                int(unknown.sum()),
                len(labels),
            )
        frame = pd.DataFrame({"id": table["image"].str.strip(), "label": labels})[~unknown]
        folder = require_dir(images, f"ISIC 2019 {split} images")
        return self.resolve_images(frame, [folder], source=csv_path)

    def _lesions(self, root: Path, ids: pd.Series) -> list[str]:
        path = root / METADATA
        if not path.is_file():
            log.warning(
                "no %s in %s: the splits drawn from the training images are drawn image by "
                "image, so lesions seen in training may reappear there",
                METADATA,
                root,
            )
            return ids.tolist()
        table = read_csv_columns(
            path, ["image", "lesion_id"], "ISIC 2019 metadata", unique="image", labels=["lesion_id"]
        )
        lesion = dict(zip(table["image"].str.strip(), table["lesion_id"].str.strip(), strict=True))
        return [lesion.get(i, "") for i in ids]  # blank: a lesion of its own (assemble_splits)
