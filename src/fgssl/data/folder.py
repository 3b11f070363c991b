"""Users' own images, one sub-folder per class (the torchvision ImageFolder layout)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.splits import assemble_splits, check_fractions
from fgssl.data.tables import IMAGE_EXTENSIONS, require_dir
from fgssl.errors import DataLayoutError

__all__ = ["FolderDataModule"]

log = logging.getLogger(__name__)


class FolderDataModule(ImageClassificationDataModule):
    """Images sorted into one sub-folder per class::

        root/<class name>/<any sub-folders>/<image>.png|.jpg|.jpeg|.bmp|.tif|.tiff|.webp

    and optionally ``val_root`` and ``test_root`` in the same layout. Without ``val_root``,
    ``val_fraction`` (default 0.2) of ``root``'s images are drawn for validation (seeded,
    stratified); without ``test_root`` the test split is the validation split unless
    ``test_fraction > 0`` holds one out too. Hidden files and folders are skipped; other
    files that are not images are counted in a log message.

    Args:
        class_names: the classes in label order (default: the sub-folder names of ``root``,
            sorted). Every sub-folder must be one of them.
        ordinal: the classes are grades (the official metric is then quadratic weighted
            kappa, else balanced accuracy).
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    transforms_preset = "default"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        val_root: str | os.PathLike[str] | None = None,
        test_root: str | os.PathLike[str] | None = None,
        class_names: Sequence[str] | None = None,
        ordinal: bool = False,
        val_fraction: float | None = None,
        test_fraction: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        check_fractions(val_fraction, test_fraction)
        self.val_root = self._beside_root(val_root)
        self.test_root = self._beside_root(test_root)
        self._class_names: tuple[str, ...] | None = tuple(class_names) if class_names else None
        self.ordinal = ordinal
        self.official_metric = "kappa" if ordinal else "balanced_acc"
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction

    @property
    def class_names(self) -> Sequence[str]:
        """The classes, in label order (read from the folders when not given)."""
        if self._class_names is None:
            self.setup()
        assert self._class_names is not None
        return self._class_names

    @class_names.setter
    def class_names(self, names: Sequence[str]) -> None:
        self._class_names = tuple(names)

    def _beside_root(self, path: str | os.PathLike[str] | None) -> Path | None:
        """``path`` as given (absolute) or relative to ``root``."""
        return None if path is None else self.root / Path(path).expanduser()

    def read_splits(self) -> SplitTables:
        train = self._scan(self.root, "image folder (one sub-folder per class)")
        if self._class_names is None:
            self._class_names = tuple(sorted(train["class"].unique()))
        encoded = {"train": self._encode(train, self.root)}
        for name, folder in (("val", self.val_root), ("test", self.test_root)):
            if folder is not None:
                encoded[name] = self._encode(self._scan(folder, f"{name} image folder"), folder)
        counts = encoded["train"]["label"].value_counts()
        empty = [n for i, n in enumerate(self.class_names) if counts.get(i, 0) == 0]
        if empty:
            log.warning("class(es) %s have no training image in %s", empty, self.root)
        return assemble_splits(
            encoded["train"],
            val=encoded.get("val"),
            test=encoded.get("test"),
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.seed,
        )

    def _scan(self, folder: Path, what: str) -> pd.DataFrame:
        require_dir(folder, what)
        class_dirs = sorted(
            d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        if not class_dirs:
            raise DataLayoutError(
                f"{str(folder)!r} has no sub-folders: expected one folder of images per class, "
                f"e.g. {str(folder / '<class name>' / 'image.png')!r}"
            )
        loose = [p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        if loose:
            log.warning(
                "%d image(s) directly in %s belong to no class folder and are not used, e.g. %s",
                len(loose),
                folder,
                loose[0],
            )
        rows, others = [], []
        for class_dir in class_dirs:
            for path in sorted(class_dir.rglob("*")):
                relative = path.relative_to(folder)
                if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                    continue
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    rows.append((relative.as_posix(), class_dir.name, str(path)))
                else:
                    others.append(relative.as_posix())
        if others:
            log.info(
                "%d file(s) in %s are not images and are not used, e.g. %s",
                len(others),
                folder,
                others[0],
            )
        if not rows:
            raise DataLayoutError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {str(folder)!r}"
            )
        return pd.DataFrame(rows, columns=["id", "class", "path"])

    def _encode(self, table: pd.DataFrame, folder: Path) -> pd.DataFrame:
        unknown = sorted(set(table["class"]) - set(self.class_names))
        if unknown:
            raise DataLayoutError(
                f"class folder(s) {unknown} in {str(folder)!r} are not among the classes "
                f"{list(self.class_names)}: rename them or set data.class_names"
            )
        position = {name: index for index, name in enumerate(self.class_names)}
        return table.assign(label=table["class"].map(position)).drop(columns="class")
