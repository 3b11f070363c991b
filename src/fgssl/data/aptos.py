"""APTOS 2019 Blindness Detection, read in the Kaggle layout."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.splits import stratified_split
from fgssl.data.tables import find_images, read_csv_columns, require_dir
from fgssl.errors import ConfigError, DataLayoutError, MissingImagesError

__all__ = ["APTOS2019DataModule"]

log = logging.getLogger(__name__)


class APTOS2019DataModule(ImageClassificationDataModule):
    """Diabetic-retinopathy grading (APTOS 2019, 5 grades), from the Kaggle download::

        root/train.csv            id_code,diagnosis
        root/train_images/<id_code>.png (or .jpg)
        root/test.csv             id_code           (optional, unlabelled: prediction)
        root/test_images/<id_code>.png

    ``train.csv`` is split (seeded, stratified) into train / val and, when
    ``test_fraction > 0``, a held-out test split. The official test labels were never
    released, so with ``test_fraction=0`` (the papers' protocol) the test split is the
    validation split.

    Args:
        val_fraction: share of train.csv used for validation (default 0.2).
        test_fraction: share of train.csv held out for testing (default 0).
        missing_images: ``"error"`` (default) or ``"skip"`` rows whose image file is missing
            (their count is logged).
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    class_names = ("No DR", "Mild", "Moderate", "Severe", "Proliferative DR")
    ordinal = True
    official_metric = "kappa"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        missing_images: Literal["error", "skip"] = "error",
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        if (
            not 0 < val_fraction < 1
            or not 0 <= test_fraction < 1
            or val_fraction + test_fraction >= 1
        ):
            raise ConfigError(
                f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) "
                "and leave images for training"
            )
        if missing_images not in ("error", "skip"):
            raise ConfigError(f"missing_images must be 'error' or 'skip', got {missing_images!r}")
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.missing_images = missing_images

    def read_splits(self) -> SplitTables:
        root = require_dir(self.root, "APTOS 2019 data root (the folder with train.csv)")
        labelled = self._read_table(root / "train.csv", root / "train_images", labelled=True)
        splits: SplitTables = {}
        rest = labelled
        if self.test_fraction > 0:
            kept, held = stratified_split(
                rest["label"].tolist(), self.test_fraction, seed=self.seed
            )
            rest, splits["test"] = rest.iloc[kept], rest.iloc[held]
        val_share = self.val_fraction / (1.0 - self.test_fraction)
        kept, held = stratified_split(rest["label"].tolist(), val_share, seed=self.seed)
        splits["train"], splits["val"] = rest.iloc[kept], rest.iloc[held]
        if "test" not in splits:
            splits["test"] = splits["val"]
        if (root / "test.csv").is_file() and (root / "test_images").is_dir():
            splits["predict"] = self._read_table(
                root / "test.csv", root / "test_images", labelled=False
            )
        return {name: table.reset_index(drop=True) for name, table in splits.items()}

    def _read_table(self, csv_path: Path, image_dir: Path, *, labelled: bool) -> pd.DataFrame:
        columns = ["id_code", "diagnosis"] if labelled else ["id_code"]
        table = read_csv_columns(csv_path, columns, "APTOS " + csv_path.name)
        require_dir(image_dir, f"APTOS image folder for {csv_path.name}")
        ids = table["id_code"].str.strip().tolist()
        labels = self._parse_labels(table, csv_path) if labelled else [-1] * len(ids)
        paths, missing = find_images(image_dir, ids)
        frame = pd.DataFrame({"id": ids, "path": paths, "label": labels})
        if missing:
            message = (
                f"{len(missing)} of {len(ids)} images listed in {str(csv_path)!r} are missing "
                f"from {str(image_dir)!r} (expected <id_code>.png or .jpg), e.g. "
                + ", ".join(missing[:5])
            )
            if self.missing_images == "error":
                raise MissingImagesError(
                    message + "; set data.missing_images=skip to leave them out"
                )
            log.warning("%s; skipping them", message)
            frame = frame[frame["path"].notna()]
        return frame

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
