"""The images fgssl-predict is given: a folder, or a CSV of paths or ids, each image
listed once and each id naming one image (files listed by :mod:`fgssl.data.image_listing`:
links followed, names compared in NFC, ids with or without their extension)."""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fgssl.data.image_listing import IMAGE_EXTENSIONS, FileMatcher, list_files, shown
from fgssl.data.tables import find_images, read_csv_columns, require_unique
from fgssl.errors import ConfigError, DataLayoutError, DataNotFoundError, MissingImagesError

__all__ = [
    "EXCLUDED_BY_DEFAULT",
    "ID_COLUMNS",
    "IMAGE_EXTENSIONS",
    "NO_FILE",
    "ImageInputs",
    "images_from_csv",
    "images_from_folder",
    "read_inputs",
]

log = logging.getLogger(__name__)

EXCLUDED_BY_DEFAULT = ("*_superpixels.png",)
"""ISIC 2017's superpixel maps lie among its images but are not photographs."""
ID_COLUMNS = ("id_code", "image_id", "image", "id", "isic_id")
NO_FILE = "no image file found"
"""The failure reason of a listed image without a file."""
UNIQUE_IDS = "image name(s) (the ids, without extension)"
UNIQUE_HINT = "each id must name one image (the predictions have one row per id)"


@dataclass
class ImageInputs:
    """The images to predict: an id and a file (None when no file was found) for each."""

    ids: list[str]
    paths: list[Path | None]
    expected: str = ""
    """Where a missing file was looked for (in its failure's reason)."""

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.paths):
            raise ValueError(f"{len(self.ids)} ids but {len(self.paths)} paths")


def images_from_folder(
    folder: str | os.PathLike[str], *, exclude: Sequence[str] = EXCLUDED_BY_DEFAULT
) -> ImageInputs:
    """The image files directly in ``folder`` (by extension, links followed, sorted by
    name; see :mod:`fgssl.data.image_listing`); the id of an image is its file name without
    extension. Names matching ``exclude`` are skipped; sub-folders are not read (a warning
    counts them).

    Raises :class:`DataLayoutError` when two files share an id (``x.png`` and ``x.jpg``):
    the predictions (and a Kaggle submission) would list it twice."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"image folder {str(folder)!r} does not exist")
    listing = list_files(folder, recursive=False)
    listing.report(folder)
    files = sorted(
        p
        for p in listing.images
        if not any(fnmatch.fnmatch(p.name, pattern) for pattern in exclude)
    )
    if listing.subfolders:
        log.warning(
            "%d sub-folder(s) of %s are not read (only the images directly in it are "
            "predicted), e.g. %r",
            len(listing.subfolders),
            repr(str(folder)),
            listing.subfolders[0].name,
        )
    if not files:
        raise DataNotFoundError(
            f"no images in {str(folder)!r}: expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
        )
    ids = [p.stem for p in files]
    require_unique(ids, source=repr(str(folder)), what=UNIQUE_IDS, hint=UNIQUE_HINT)
    return ImageInputs(ids, list(files))


def read_inputs(
    source: str | os.PathLike[str],
    *,
    image_dir: str | os.PathLike[str] | None = None,
    id_column: str | None = None,
    include_all: bool = False,
) -> ImageInputs:
    """The images of ``source``: a folder (:func:`images_from_folder`, skipping
    :data:`EXCLUDED_BY_DEFAULT` unless ``include_all``) or a CSV (:func:`images_from_csv`).
    Raises :class:`DataNotFoundError` when ``source`` does not exist."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataNotFoundError(
            f"input {str(path)!r} does not exist: expected a folder of images or a CSV"
        )
    if path.is_dir():
        return images_from_folder(path, exclude=() if include_all else EXCLUDED_BY_DEFAULT)
    return images_from_csv(path, image_dir=image_dir, id_column=id_column)


def images_from_csv(
    csv_path: str | os.PathLike[str],
    *,
    image_dir: str | os.PathLike[str] | None = None,
    id_column: str | None = None,
) -> ImageInputs:
    """Images listed in a CSV: a ``path`` column (relative paths are relative to the CSV's
    folder), or an id column (``id_code``, ``image_id``, ``image``, ``id``, ``isic_id``, or
    ``id_column``) naming ``<id>.png/.jpg/...`` files in ``image_dir`` (e.g. APTOS's
    ``test.csv`` with ``test_images/``); an id may carry its extension (``img000.png``).
    Names are compared after Unicode normalisation (NFC).

    Every image must be listed once and every id name one image: a file listed twice, two
    files of one name (without extension), an id listed twice or naming two files
    (``x.png`` and ``x.jpg``) raise :class:`DataLayoutError`."""
    csv_path = Path(csv_path).expanduser()
    table = read_csv_columns(csv_path, [id_column] if id_column else [], "image list")
    if id_column is None and "path" in table.columns:
        paths = [Path(p) if Path(p).is_absolute() else csv_path.parent / p for p in table["path"]]
        source = repr(str(csv_path))
        files = [os.path.normpath(os.path.abspath(p)) for p in paths]
        require_unique(files, source=source, what="image file(s)")
        ids = [p.stem for p in paths]
        require_unique(ids, source=source, what=UNIQUE_IDS, hint=UNIQUE_HINT)
        matcher = FileMatcher()
        expected = f"paths relative to {str(csv_path.parent)!r}"
        return _some_found(ImageInputs(ids, [matcher.find(Path(), p) for p in paths], expected))
    column = id_column or next((c for c in ID_COLUMNS if c in table.columns), None)
    if column is None:
        raise DataLayoutError(
            f"{str(csv_path)!r} has neither a 'path' column nor an id column "
            f"({', '.join(ID_COLUMNS)}): found {list(table.columns)}"
        )
    if image_dir is None:
        raise ConfigError(
            f"{str(csv_path)!r} lists image ids (column {column!r}): give the folder that "
            "holds <id>.png/.jpg with --image-dir"
        )
    folder = Path(image_dir).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"image folder {str(folder)!r} does not exist")
    ids = table[column].str.strip().tolist()
    require_unique(ids, source=repr(str(csv_path)), what=f"{column} value(s)")
    found, _ = find_images(folder, ids, extensions=IMAGE_EXTENSIONS)
    expected = f"<id> with an image extension in {str(folder)!r}"
    return _some_found(ImageInputs(ids, list(found), expected))


def _some_found(inputs: ImageInputs) -> ImageInputs:
    """``inputs``, or :class:`MissingImagesError` when none of them has a file."""
    if inputs.ids and all(p is None for p in inputs.paths):
        raise MissingImagesError(
            f"none of the {len(inputs.ids)} listed images was found (expected "
            f"{inputs.expected}), e.g. " + ", ".join(shown(i) for i in inputs.ids[:3])
        )
    return inputs
