"""ISIC 2018 Task 3 (HAM10000): seven skin-lesion classes, in the official or HAM10000 layout."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.fractions import HeldOutFractions
from fgssl.data.tables import parse_one_hot, read_csv_columns, require_dir
from fgssl.errors import DataLayoutError, DataNotFoundError

__all__ = ["ISIC2018DataModule"]

log = logging.getLogger(__name__)

TASK3 = "ISIC2018_Task3_{split}_Input"
GROUND_TRUTH = "ISIC2018_Task3_{split}_GroundTruth/ISIC2018_Task3_{split}_GroundTruth.csv"
LESION_GROUPINGS = "ISIC2018_Task3_Training_LesionGroupings.csv"
HAM_METADATA = "HAM10000_metadata.csv"
HAM_IMAGES = ("HAM10000_images_part_1", "HAM10000_images_part_2")
EXCLUDED_FROM_TEST = ("ISIC_0035068",)
"""Left out of the test set by the official scorer (and missing from some copies)."""


class ISIC2018DataModule(HeldOutFractions, ImageClassificationDataModule):
    """ISIC 2018 Task 3 (lesion diagnosis, 7 classes) as downloaded, in either layout.

    The official challenge layout::

        ISIC2018_Task3_Training_Input/ISIC_0024306.jpg ...
        ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv
                                            image,MEL,NV,BCC,AKIEC,BKL,DF,VASC (one-hot)
        ISIC2018_Task3_Training_LesionGroupings.csv   image,lesion_id,... (optional)
        ISIC2018_Task3_Validation_Input/ + ISIC2018_Task3_Validation_GroundTruth/...csv
        ISIC2018_Task3_Test_Input/       + ISIC2018_Task3_Test_GroundTruth/...csv

    or HAM10000 (Kaggle / Dataverse)::

        HAM10000_images_part_1/  HAM10000_images_part_2/
        HAM10000_metadata.csv    lesion_id,image_id,dx,...   (dx: akiec, bcc, bkl, ...)
        (ISIC2018_Task3_Test_Input/ + its ground truth, when present, are the test split)

    Validation: the official validation set when present, else ``val_fraction`` (default
    0.2) of the training images. Splits made from the training images keep all images of a
    lesion on one side when lesion ids are known (groupings file or HAM10000 metadata).
    Test: the official test set, without ``ISIC_0035068`` as the official scorer; without a
    test set, the validation split.

    Args:
        val_fraction: None (official validation set, else 0.2) or a share of the training
            images to validate on instead.
        test_fraction: > 0 holds that share of the training images out as the test split.
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    class_names = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
    official_metric = "balanced_acc"
    transforms_preset = "skin"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        val_fraction: float | None = None,
        test_fraction: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        self._init_fractions(val_fraction, test_fraction)

    def read_splits(self) -> SplitTables:
        root = require_dir(self.root, "ISIC 2018 data root")
        official = (root / TASK3.format(split="Training")).is_dir()
        if official:
            train = self._read_official(root, "Training")
        elif (root / HAM_METADATA).is_file():
            train = self._read_ham10000(root)
        else:
            raise DataNotFoundError(
                f"no ISIC 2018 data in {str(root)!r}: expected the folder "
                f"{TASK3.format(split='Training')}/ with its ground truth "
                f"{GROUND_TRUTH.format(split='Training')}, or the HAM10000 layout "
                f"({HAM_METADATA} with {' and '.join(HAM_IMAGES)}/)"
            )
        val = self._read_optional(root, "Validation")
        test = self._read_optional(root, "Test")
        drawn = []  # the splits drawn from the training images
        if self.val_fraction is not None or val is None or self.fold is not None:
            drawn.append("validation")
        if self.test_fraction > 0:
            drawn.append("test")
        if official and drawn and not (root / LESION_GROUPINGS).is_file():
            log.warning(
                "no %s in %s: the %s drawn from the training images image by image, so "
                "lesions seen in training may reappear there",
                LESION_GROUPINGS,
                root,
                " and ".join(drawn) + (" splits are" if len(drawn) > 1 else " split is"),
            )
        return self._assemble_splits(
            train,
            val=val,
            test=test,
            group_column="group",
            group_name="lesion_id",
        )

    # ------------------------------------------------------------------ layouts
    def _read_official(self, root: Path, split: str) -> pd.DataFrame:
        csv_path = root / GROUND_TRUTH.format(split=split)
        table = read_csv_columns(
            csv_path,
            ["image", *self.class_names],
            f"ISIC 2018 {split} ground truth",
            unique="image",
            labels=self.class_names,
        )
        ids = table["image"].str.strip()
        frame = pd.DataFrame(
            {
                "id": ids,
                "label": parse_one_hot(table, self.class_names, id_column="image", path=csv_path),
            }
        )
        ignore = None
        if split == "Test":
            excluded = frame["id"].isin(EXCLUDED_FROM_TEST)
            if excluded.any():
                log.info(
                    "leaving %s out of the test set, as the official scorer does",
                    ", ".join(EXCLUDED_FROM_TEST),
                )
            frame = frame[~excluded]
            ignore = "^(" + "|".join(EXCLUDED_FROM_TEST) + ")$"
        folder = require_dir(root / TASK3.format(split=split), f"ISIC 2018 {split} images")
        frame = self.resolve_images(frame, [folder], source=csv_path, ignore=ignore)
        if split == "Training":
            frame = frame.assign(group=self._lesion_groups(root, frame["id"]))
        return frame

    def _read_optional(self, root: Path, split: str) -> pd.DataFrame | None:
        """An official split, or None when neither its images nor its ground truth are there."""
        images = root / TASK3.format(split=split)
        truth = root / GROUND_TRUTH.format(split=split)
        if not images.exists() and not truth.exists():
            log.info("no ISIC 2018 %s set in %s", split.lower(), root)
            return None
        if not truth.is_file():
            raise DataNotFoundError(
                f"ISIC 2018 {split} ground truth not found: {str(images)!r} is there, so "
                f"expected the file {str(truth)!r} too"
            )
        return self._read_official(root, split)

    def _read_ham10000(self, root: Path) -> pd.DataFrame:
        csv_path = root / HAM_METADATA
        table = read_csv_columns(
            csv_path,
            ["lesion_id", "image_id", "dx"],
            "HAM10000 metadata",
            unique="image_id",
            labels=["dx", "lesion_id"],
        )
        names = {name.lower(): index for index, name in enumerate(self.class_names)}
        dx = table["dx"].str.strip().str.lower()
        unknown = sorted(set(dx) - set(names))
        if unknown:
            raise DataLayoutError(
                f"{str(csv_path)!r} has unknown dx value(s) {unknown}: expected {sorted(names)}"
            )
        frame = pd.DataFrame(
            {
                "id": table["image_id"].str.strip(),
                "label": dx.map(names).astype(int),
                "group": table["lesion_id"].str.strip(),
            }
        )
        folders = [require_dir(root / name, "HAM10000 image folder") for name in HAM_IMAGES]
        return self.resolve_images(frame, folders, source=csv_path)

    def _lesion_groups(self, root: Path, ids: pd.Series) -> list[str]:
        path = root / LESION_GROUPINGS
        if not path.is_file():  # read_splits warns if a split is then drawn by image
            return ids.tolist()
        table = read_csv_columns(
            path,
            ["image", "lesion_id"],
            "ISIC 2018 lesion groupings",
            unique="image",
            labels=["lesion_id"],
        )
        lesion = dict(zip(table["image"].str.strip(), table["lesion_id"].str.strip(), strict=True))
        return [lesion.get(i, "") for i in ids]  # blank: a lesion of its own (assemble_splits)
