"""Messidor-2 with the adjudicated grades in common use, read as downloaded.

Layout: the images from ADCIS (adcis.net/en/third-party/messidor2: the ``IMAGES`` archive,
1748 photographs of 874 examinations, PNG for Messidor-Original and JPG for
Messidor-Extension) and the adjudicated grades of Krause et al. 2018 (Kaggle
``google-brain/messidor2-dr-grades``)::

    root/IMAGES/20051020_43808_0100_PP.png, IM000001.JPG, ...
    root/messidor_data.csv    image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable

``image_id`` is a file name with its extension (``IM000001.jpg`` may be ``IM000001.JPG`` on
disk: files are matched by name without the extension, case-insensitively by extension).
Ungradable images (``adjudicated_gradable`` 0; their grade is empty) are left out of the
labelled splits and counted in the log; :meth:`Messidor2DataModule.unlabelled_images` still
lists them. ``adjudicated_dme`` is not read. The examination pairs (ADCIS's spreadsheet)
are not read either, so a drawn split may put the two eyes of an examination on both sides.
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
from fgssl.data.tables import read_csv_columns, require_dir, require_unique

__all__ = ["Messidor2DataModule"]

log = logging.getLogger(__name__)

COLUMNS = ["image_id", "adjudicated_dr_grade", "adjudicated_gradable"]


class Messidor2DataModule(ICDRGrading, HeldOutFractions, ImageClassificationDataModule):
    """Messidor-2 (5 DR grades, adjudicated), gradable images only.

    No official split: ``val_fraction`` (default 0.2) is drawn (seeded, stratified) and the
    test split is the validation split unless ``test_fraction > 0`` holds one out. Papers
    mostly test on all of Messidor-2 as an external set: train on another dataset and
    evaluate with ``fgssl-eval`` on this one.

    Args:
        csv: the grades file, relative to ``root`` or absolute (default ``messidor_data.csv``).
        image_dir: the image folder, relative to ``root`` or absolute (default ``IMAGES``).
        val_fraction: see above.
        test_fraction: see above.
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        csv: str = "messidor_data.csv",
        image_dir: str = "IMAGES",
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        self._init_fractions(val_fraction, test_fraction)
        self.csv = self.root / Path(csv).expanduser()
        self.image_dir = self.root / Path(image_dir).expanduser()

    def read_splits(self) -> SplitTables:
        require_dir(self.root, "Messidor-2 data root")
        table = read_csv_columns(
            self.csv,
            COLUMNS,
            "Messidor-2 adjudicated grades",
            unique="image_id",
            labels=COLUMNS[1:],
        )
        ids = table["image_id"].str.strip().map(lambda name: Path(name).stem)
        require_unique(
            ids.tolist(), source=repr(str(self.csv)), what="image name(s) (without extension)"
        )
        gradable = parse_grades(
            table["adjudicated_gradable"],
            ids,
            allowed=(0, 1),
            path=self.csv,
            column="adjudicated_gradable",
        ).astype(bool)
        if (~gradable).any():
            log.info(
                "Messidor-2: %d of %d images are ungradable (adjudicated_gradable 0) and left out",
                int((~gradable).sum()),
                len(gradable),
            )
        table, ids = table[gradable], ids[gradable]
        labels = parse_grades(
            table["adjudicated_dr_grade"],
            ids,
            allowed=range(5),
            path=self.csv,
            column="adjudicated_dr_grade",
        )
        frame = pd.DataFrame({"id": ids, "label": labels})
        folder = require_dir(self.image_dir, "Messidor-2 image folder (set data.image_dir)")
        frame = self.resolve_images(frame, [folder], source=self.csv)
        return self._assemble_splits(frame)

    def unlabelled_images(self) -> pd.DataFrame:
        """Every image of the image folder, gradable or not, read without the CSV."""
        return list_unlabelled(self.root, [self.image_dir], what="Messidor-2")
