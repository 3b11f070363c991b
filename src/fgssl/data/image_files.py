"""Finding a dataset's image files and leaving out the missing or unreadable ones, under the
``missing_images`` policy (``error``: refuse, naming the first few; ``skip``: log a count)."""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fgssl.data.image_listing import IMAGE_EXTENSIONS, shown
from fgssl.data.splits import SplitTables
from fgssl.data.tables import index_images, pick_images
from fgssl.data.verify import VerifyMode, find_unreadable
from fgssl.errors import ImageReadError, MissingImagesError

__all__ = ["ImageLookup", "drop_missing", "drop_unreadable", "resolve_images"]

log = logging.getLogger(__name__)


def resolve_images(
    table: pd.DataFrame,
    folders: Sequence[Path],
    *,
    source: Path,
    ignore: str | None = None,
    missing_images: str = "error",
) -> pd.DataFrame:
    """Add the ``path`` of each row's ``<id>.<image extension>`` found in ``folders``.

    Ids without a file raise :class:`MissingImagesError` naming the first few and their
    count, or, with ``missing_images="skip"``, are left out with a logged count; ids that
    name several files (``x.png`` and ``x.jpg``) raise :class:`DataLayoutError`. ``source``
    names the file that listed them; ``ignore`` is a regular expression of file stems that
    are not images of the dataset.
    """
    index = index_images(folders, ignore=ignore)
    ids = table["id"].tolist()
    where = " or ".join(repr(str(f)) for f in folders)
    found = pick_images(index, ids, where=where)
    paths = pd.Series(
        [None if p is None else str(p) for p in found], index=table.index, dtype=object
    )
    frame = table.assign(path=paths)
    used = {p for p in found if p is not None}
    unlisted = sum(p not in used for files in index.values() for p in files)
    if unlisted:
        log.info(
            "%d image file(s) in %s are not listed in %s and are not used",
            unlisted,
            ", ".join(repr(str(f)) for f in folders),
            repr(str(source)),
        )
    return drop_missing(
        frame,
        source=source,
        expected=f"<id> with an image extension ({' '.join(IMAGE_EXTENSIONS)}) in {where}",
        missing_images=missing_images,
    )


def drop_missing(
    frame: pd.DataFrame, *, source: Path, expected: str, missing_images: str = "error"
) -> pd.DataFrame:
    """Apply the ``missing_images`` policy to the rows of ``frame`` whose ``path`` is None
    (their image file was not found). When none was found, the error does not suggest
    ``skip``: it would leave nothing."""
    missing = frame.loc[frame["path"].isna(), "id"].astype(str).tolist()
    if not missing:
        return frame
    message = (
        f"{len(missing)} of {len(frame)} images listed in {str(source)!r} are missing "
        f"(expected {expected}), e.g. " + ", ".join(shown(m, quoted=False) for m in missing[:5])
    )
    if missing_images == "error" and len(missing) == len(frame):
        raise MissingImagesError(f"{message}: none was found, check the folder and the names")
    if missing_images == "error":
        raise MissingImagesError(message + "; set data.missing_images=skip to leave them out")
    log.warning("%s; skipping them", message)
    return frame[frame["path"].notna()]


def drop_unreadable(
    splits: SplitTables,
    *,
    mode: VerifyMode,
    reader: Callable[..., Any],
    bits_stored: int | None,
    workers: int | None,
    progress: Callable[[int, int], None] | None,
    missing_images: str = "error",
) -> tuple[SplitTables, dict[str, str]]:
    """``splits`` without the images that cannot be read (checked per ``mode``, see
    :func:`fgssl.data.verify.find_unreadable`), and those images (path -> reason)."""
    paths = [p for table in splits.values() for p in table["path"]]
    problems = find_unreadable(
        paths, mode=mode, reader=reader, bits_stored=bits_stored, workers=workers, progress=progress
    )
    if not problems:
        return splits, problems
    examples = "; ".join(list(problems.values())[:3])
    message = (
        f"{len(problems)} of {len(set(paths))} images cannot be read (corrupt, truncated or "
        f"of an unsupported format): {examples}"
    )
    if missing_images == "error":
        raise ImageReadError(message + "; set data.missing_images=skip to leave them out")
    log.warning("%s; skipping them", message)
    kept = {name: t[~t["path"].isin(problems)].reset_index(drop=True) for name, t in splits.items()}
    return kept, problems


class ImageLookup:
    """Mixin of :class:`~fgssl.data.base.ImageClassificationDataModule`: the readers' lookup
    of the images their files list, and the check that they can be read, under the module's
    ``missing_images`` and ``verify_images`` policies."""

    missing_images: str
    verify_images: VerifyMode
    bits_stored: int | None
    verify_workers: int | None
    verify_progress: Callable[[int, int], None] | None
    unreadable: dict[str, str]

    @property
    @abc.abstractmethod
    def reader(self) -> Callable[[str | os.PathLike[str]], np.ndarray]: ...

    def resolve_images(
        self,
        table: pd.DataFrame,
        folders: Sequence[Path],
        *,
        source: Path,
        ignore: str | None = None,
    ) -> pd.DataFrame:
        """Add the ``path`` of each row's ``<id>.<image extension>`` found in ``folders``.

        Ids without a file raise :class:`MissingImagesError` naming the first few and their
        count, or, with ``missing_images="skip"``, are left out with a logged count; ids
        that name several files (``x.png`` and ``x.jpg``) raise :class:`DataLayoutError`.
        ``source`` names the file that listed them; ``ignore`` is a regular expression of
        file stems that are not images of the dataset.
        """
        return resolve_images(
            table, folders, source=source, ignore=ignore, missing_images=self.missing_images
        )

    def drop_missing(self, frame: pd.DataFrame, *, source: Path, expected: str) -> pd.DataFrame:
        """Apply the ``missing_images`` policy to the rows of ``frame`` whose ``path`` is
        None (their image file was not found)."""
        return drop_missing(
            frame, source=source, expected=expected, missing_images=self.missing_images
        )

    def _drop_unreadable(self, splits: SplitTables) -> SplitTables:
        """``splits`` without the images that cannot be read (recorded in ``unreadable``),
        checked by :func:`drop_unreadable` under the module's policies."""
        kept, self.unreadable = drop_unreadable(
            splits,
            mode=self.verify_images,
            reader=self.reader,
            bits_stored=self.bits_stored,
            workers=self.verify_workers,
            progress=self.verify_progress,
            missing_images=self.missing_images,
        )
        return kept
