"""Users' own images, one sub-folder per class (the torchvision ImageFolder layout)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import SplitTables
from fgssl.data.image_listing import IMAGE_EXTENSIONS, list_files
from fgssl.data.tables import require_dir
from fgssl.data.user import UserDataModule
from fgssl.errors import DataLayoutError

__all__ = ["FolderDataModule"]

log = logging.getLogger(__name__)


class FolderDataModule(UserDataModule):
    """Images sorted into one sub-folder per class::

        root/<class name>/<any sub-folders>/<image>.png|.jpg|.jpeg|.bmp|.tif|.tiff|.webp|...

    and optionally ``val_root`` and ``test_root`` in the same layout. Without ``val_root``,
    ``val_fraction`` (default 0.2) of ``root``'s images are drawn for validation (seeded,
    stratified); without ``test_root`` the test split is the validation split unless
    ``test_fraction > 0`` holds one out too. Folders are listed by
    :func:`fgssl.data.image_listing.list_files` (links followed; hidden files and folders
    skipped; what is left out is logged).

    Args:
        val_root: a folder of validation images in the same layout (relative to ``root`` or
            absolute).
        test_root: a folder of test images, likewise.
        **kwargs: see :class:`UserDataModule` (``class_names`` defaults to the sub-folder
            names of ``root`` in the order of :mod:`fgssl.data.class_order`: numbers
            numerically, ICDR grades by grade when ``ordinal``, other names sorted; every
            sub-folder of ``val_root`` and ``test_root`` must be one of them) and
            :class:`ImageClassificationDataModule`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        val_root: str | os.PathLike[str] | None = None,
        test_root: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        self.val_root = self.beside_root(val_root)
        self.test_root = self.beside_root(test_root)

    def read_splits(self) -> SplitTables:
        train = self._scan(self.root, "image folder (one sub-folder per class)")
        self.derive_classes(train["class"], where=f"the sub-folders of {str(self.root)!r}")
        encoded = {"train": self._encode(train, self.root)}
        for name, folder in (("val", self.val_root), ("test", self.test_root)):
            if folder is not None:
                encoded[name] = self._encode(self._scan(folder, f"{name} image folder"), folder)
        self.warn_untrained(encoded["train"]["label"], str(self.root))
        # Ids are paths relative to each split's folder: 'a/x.png' under root and under
        # val_root are two images. The same file twice is refused by its path.
        return self.assemble(encoded, unique_ids=False)

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
        listing = list_files(folder)
        listing.report(folder)
        loose = [p.name for p in listing.images if len(p.relative_to(folder).parts) == 1]
        if loose:
            log.warning(
                "%d image(s) directly in %s belong to no class folder and are not used, e.g. %s",
                len(loose),
                folder,
                loose[0],
            )
        rows = []
        for path in sorted(listing.images):
            relative = path.relative_to(folder)
            if len(relative.parts) > 1:
                rows.append((relative.as_posix(), relative.parts[0], str(path)))
        if not rows:
            raise DataLayoutError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {str(folder)!r}"
            )
        return pd.DataFrame(rows, columns=["id", "class", "path"])

    def _encode(self, table: pd.DataFrame, folder: Path) -> pd.DataFrame:
        labels = self.encode(
            table["class"],
            source=repr(str(folder)),
            train_source=f"the sub-folders of {str(self.root)!r}",
            ids=table["id"].tolist(),
            what="class folder(s)",
        )
        return table.assign(label=labels).drop(columns="class")
