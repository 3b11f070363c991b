"""DDR (Li et al., Information Sciences 2019), DR grading part, read as downloaded.

Layout (github.com/nkicsl/DDR-dataset, the ``DR_grading`` folder)::

    DR_grading/train/007-0004-000.jpg ...   DR_grading/train.txt   (6260 lines)
    DR_grading/valid/...                    DR_grading/valid.txt   (2503)
    DR_grading/test/...                     DR_grading/test.txt    (3759)

Each line of a ``.txt`` is ``<file name> <label>``, e.g. ``007-0004-000.jpg 0``: grades
0-4, and 5 = ungradable. Ungradable images are left out of the labelled splits (they have no
grade) and counted in the log; :meth:`DDRDataModule.unlabelled_images` still lists them.
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
from fgssl.data.tables import require_dir, require_file, require_unique
from fgssl.errors import DataLayoutError

__all__ = ["DDRDataModule"]

log = logging.getLogger(__name__)

SPLITS = {"train": "train", "val": "valid", "test": "test"}
"""fgssl's split -> DDR's folder and list name."""
UNGRADABLE = 5


class DDRDataModule(ICDRGrading, HeldOutFractions, ImageClassificationDataModule):
    """DDR DR grading (5 grades) with its official train / valid / test sets.

    ``root`` is the ``DR_grading`` folder or the folder holding it. ``val_fraction`` or
    ``test_fraction`` (default None / 0: the official sets) draw that share of the training
    images instead (seeded, stratified).

    Args:
        val_fraction: see above.
        test_fraction: see above.
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

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

    @property
    def grading_root(self) -> Path:
        """The ``DR_grading`` folder."""
        root = require_dir(self.root, "DDR data root")
        return root / "DR_grading" if (root / "DR_grading").is_dir() else root

    def read_splits(self) -> SplitTables:
        base = self.grading_root
        tables = {split: self._read(base, name) for split, name in SPLITS.items()}
        return self._assemble_splits(
            tables["train"],
            val=tables["val"],
            test=tables["test"],
        )

    def unlabelled_images(self) -> pd.DataFrame:
        """Every image of the train, valid and test folders (ungradable ones too), read
        without the lists."""
        base = self.grading_root
        return list_unlabelled(self.root, [base / n for n in SPLITS.values()], what="DDR")

    def _read(self, base: Path, name: str) -> pd.DataFrame:
        path = require_file(base / f"{name}.txt", f"DDR {name} list")
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DataLayoutError(
                    f"line {number} of {str(path)!r} is {line.strip()!r}: expected "
                    "'<file name> <label>', e.g. '007-0004-000.jpg 0'"
                )
            rows.append(fields)
        table = pd.DataFrame(rows, columns=["name", "label"], dtype=str)
        require_unique(
            table["name"].tolist(),
            source=repr(str(path)),
            what="file name(s)",
            labels=table["label"].tolist(),
        )
        ids = table["name"].map(lambda n: Path(n).stem)
        labels = parse_grades(table["label"], ids, allowed=range(6), path=path, column="label")
        ungradable = labels == UNGRADABLE
        if ungradable.any():
            log.info(
                "DDR %s: %d of %d images are ungradable (label 5) and left out",
                name,
                int(ungradable.sum()),
                len(labels),
            )
        frame = pd.DataFrame({"id": ids[~ungradable], "label": labels[~ungradable]})
        folder = require_dir(base / name, f"DDR {name} images")
        return self.resolve_images(frame, [folder], source=path)
