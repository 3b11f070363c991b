"""Listing the image files of a folder, and finding the file a listed name means: one rule
for every reader (folder and CSV datasets, the benchmarks' image folders, unlabelled pools,
fgssl-predict).

- An image is a file whose name ends in one of :data:`IMAGE_EXTENSIONS` (any case); hidden
  files and folders (names starting with ``.``) are left out.
- Folders are walked following symbolic links (``os.walk(followlinks=True)``; Python < 3.13's
  ``Path.rglob`` does not). A folder reached a second time (a link loop, or two links to one
  folder) is listed once; the second way, broken links and folders that cannot be listed are
  named in a warning. Other files are counted in an info line, and those whose first bytes
  are an image's (a JPEG named ``.jp``) are named in a warning.
- Names are compared after Unicode normalisation (NFC): a CSV typed with a composed ``é``
  finds a file named with ``e`` + U+0301, as macOS may write it. Messages show a name that
  is not in NFC with escapes (:func:`shown`), so two such names never print alike.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fgssl.data.io import HEADER_BYTES, SUPPORTED_FORMATS, image_format
from fgssl.errors import DataNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FileMatcher",
    "Listing",
    "is_image_name",
    "list_files",
    "nfc",
    "shown",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".jif",
    ".bmp",
    ".dib",
    ".tif",
    ".tiff",
    ".webp",
)
"""File name endings read as images (any case): the names of the formats of
:data:`fgssl.data.io.SUPPORTED_FORMATS` (OpenCV decodes by content, not by name)."""

SHOWN = 3
"""How many examples a message names."""
_SNIFFED = 200  # at most this many non-image files are opened to look for image data


def is_image_name(name: str) -> bool:
    """Whether the file name ``name`` ends in an image extension (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def nfc(name: str) -> str:
    """``name`` in Unicode normal form C (composed): the form names are compared in."""
    return unicodedata.normalize("NFC", name)


def shown(name: object, *, quoted: bool = True) -> str:
    """``name`` as a message shows it: its ``repr`` (or as it is, unless ``quoted``), but
    with escapes (``'e\\u0301.png'``) when it is not in NFC, so that two names that differ
    only by normalisation never print alike."""
    text = str(name)
    if unicodedata.is_normalized("NFC", text):
        return repr(text) if quoted else text
    return f"{text!a} (decomposed Unicode)"


@dataclass
class Listing:
    """The files below a folder (see :func:`list_files`), each kind in walk order."""

    images: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)
    """Files whose names are not images'."""
    broken: list[Path] = field(default_factory=list)
    """Entries that are not files or folders: links to nothing, sockets, ..."""
    repeated: list[tuple[Path, Path]] = field(default_factory=list)
    """(folder, the path it was first listed under): reached again through a link."""
    unlisted: list[tuple[Path, str]] = field(default_factory=list)
    """(folder, why): folders that could not be listed."""
    subfolders: list[Path] = field(default_factory=list)
    """The sub-folders a non-recursive listing did not enter."""

    def report(self, folder: Path) -> None:
        """Log what was left out: a warning for each kind of skipped folder or file that
        may be an image, an info line counting the other files."""
        where = repr(str(folder))
        if self.repeated:
            path, first = self.repeated[0]
            log.warning(
                "%d folder(s) below %s are reached a second time through a link and are "
                "listed once, e.g. %r is %r",
                len(self.repeated),
                where,
                str(path),
                str(first),
            )
        if self.unlisted:
            path, why = self.unlisted[0]
            log.warning(
                "%d folder(s) below %s cannot be listed and their images are not used, "
                "e.g. %r (%s)",
                len(self.unlisted),
                where,
                str(path),
                why,
            )
        if self.broken:
            log.warning(
                "%d item(s) below %s are neither files nor folders (e.g. links to nothing) "
                "and are not used: %s",
                len(self.broken),
                where,
                ", ".join(shown(p) for p in self.broken[:SHOWN]),
            )
        self._report_others(where)

    def _report_others(self, where: str) -> None:
        disguised = [(p, kind) for p in self.others[:_SNIFFED] if (kind := _sniff(p))]
        if disguised:
            examples = ", ".join(f"{shown(p.name)} ({kind})" for p, kind in disguised[:SHOWN])
            log.warning(
                "%d file(s) below %s hold image data but their names do not end in an image "
                "extension (%s), so they are not used: rename them, e.g. %s",
                len(disguised),
                where,
                " ".join(IMAGE_EXTENSIONS),
                examples,
            )
        named = {p for p, _ in disguised}
        rest = [p for p in self.others if p not in named]
        if rest:
            log.info(
                "%d file(s) below %s are not images (by name: %s) and are not used, e.g. %s",
                len(rest),
                where,
                " ".join(IMAGE_EXTENSIONS),
                shown(rest[0].name),
            )


def _sniff(path: Path) -> str | None:
    """The supported image format of ``path``'s first bytes, or None."""
    try:
        with open(path, "rb") as file:
            kind = image_format(file.read(HEADER_BYTES))
    except OSError:
        return None
    return kind if kind in SUPPORTED_FORMATS else None


def list_files(folder: Path, *, recursive: bool = True) -> Listing:
    """The files in ``folder`` (and its sub-folders when ``recursive``), links followed.

    Folders are keyed by (device, inode), so a link loop ends and a folder linked twice
    is listed once. Hidden files and folders are left out. Raises
    :class:`DataNotFoundError` when ``folder`` itself cannot be listed.
    """
    listing = Listing()
    failures: list[OSError] = []
    try:
        info = os.stat(folder)
    except OSError as error:
        raise DataNotFoundError(f"cannot list {str(folder)!r}: {error.strerror}") from error
    seen: dict[tuple[int, int], Path] = {(info.st_dev, info.st_ino): Path(folder)}
    for directory, subfolders, files in os.walk(folder, onerror=failures.append, followlinks=True):
        base = Path(directory)
        subfolders[:] = _enter(base, subfolders, seen, listing, recursive)
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = base / name
            if not os.path.isfile(path):
                listing.broken.append(path)
            elif is_image_name(name):
                listing.images.append(path)
            else:
                listing.others.append(path)
    for failure in failures:
        if Path(failure.filename or "") == Path(folder):
            raise DataNotFoundError(f"cannot list {str(folder)!r}: {failure.strerror or failure}")
        listing.unlisted.append((Path(failure.filename or "?"), str(failure.strerror or failure)))
    return listing


def _enter(
    base: Path,
    names: Sequence[str],
    seen: dict[tuple[int, int], Path],
    listing: Listing,
    recursive: bool,
) -> list[str]:
    """The sub-folders of ``base`` to walk into (sorted, hidden ones and those already
    ``seen`` left out); the others are recorded in ``listing``."""
    entered = []
    for name in sorted(names):
        if name.startswith("."):
            continue
        path = base / name
        if not recursive:
            listing.subfolders.append(path)
            continue
        try:
            info = os.stat(path)
        except OSError as error:
            listing.unlisted.append((path, str(error.strerror or error)))
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            listing.repeated.append((path, seen[key]))
            continue
        seen[key] = path
        entered.append(name)
    return entered


class FileMatcher:
    """Finds the file a listed path names, comparing each part of it after Unicode
    normalisation (NFC) when the path as written names no file. Folder contents are read
    once per matcher."""

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, list[str]]] = {}

    def find(self, base: Path, relative: str | os.PathLike[str]) -> Path | None:
        """The file ``base / relative`` (``relative`` may be absolute) names, or None."""
        path = base / relative
        if path.is_file():
            return path
        current = Path(path.anchor) if path.is_absolute() else Path()
        for part in path.parts[1:] if path.is_absolute() else path.parts:
            if part in (".", ".."):
                current = current / part
                continue
            names = self._names(current).get(nfc(part), [])
            # as written when that name exists, is absent, or is ambiguous
            current = current / (part if part in names or len(names) != 1 else names[0])
        return current if current.is_file() else None

    def _names(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._folders:
            names: dict[str, list[str]] = {}
            try:
                for name in os.listdir(folder):
                    names.setdefault(nfc(name), []).append(name)
            except OSError:
                pass
            self._folders[folder] = names
        return self._folders[folder]
