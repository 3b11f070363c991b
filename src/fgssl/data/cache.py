"""A disk cache of decoded, downsized images, so that training does not decode full-size
photographs every epoch.

Each source image is stored once, preprocessed (``data.preprocess``, on the full decoded
image: :mod:`fgssl.data.preprocess`) and resized so that its short side is ``short_side``
pixels (never enlarged), as one file: a raw ``.npy`` array (lossless, fastest to read) or a
JPEG (about a tenth of the size). The file name is a hash of the source's absolute path, byte
size and modification time, the short side, the format and the preprocessing, so a changed
source or setting gets a new entry and stale entries are never read. Entries are written to a
temporary file and renamed into place, so dataloader workers and DDP processes may build the
cache at the same time: a reader sees a whole entry or none. Deleting the cache folder is
always safe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from fgssl.data.io import check_bits_stored, decode_rgb, read_rgb, refuse_damage
from fgssl.data.preprocess import Preprocessing
from fgssl.errors import ConfigError

__all__ = ["CACHE_FORMATS", "ImageCache", "downsize"]

log = logging.getLogger(__name__)

CacheFormat = Literal["npy", "jpg"]
CACHE_FORMATS: tuple[CacheFormat, ...] = ("npy", "jpg")
_VERSION = 2  # bump when the stored content changes for the same key (2: fgssl.data.io's rule)


def downsize(image: np.ndarray, short_side: int) -> np.ndarray:
    """Resize ``image`` (area interpolation) so that its short side is ``short_side``;
    images already that small are returned unchanged."""
    height, width = image.shape[:2]
    if min(height, width) <= short_side:
        return image
    scale = short_side / min(height, width)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class ImageCache:
    """A reader of RGB images (``cache(path) -> array``) that stores what it decodes.

    Args:
        folder: where entries live (created when needed); one folder may serve any number
            of datasets and settings.
        short_side: the short side of cached images, in pixels.
        fmt: ``"npy"`` (lossless) or ``"jpg"`` (JPEG at ``quality``, 4:4:4 chroma).
        quality: JPEG quality of the ``"jpg"`` format.
        bits_stored: the significant bits of 16-bit sources (see :func:`fgssl.data.io.read_rgb`).
        preprocess: applied to each decoded source before it is resized and stored.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        short_side: int,
        *,
        fmt: CacheFormat = "npy",
        quality: int = 95,
        bits_stored: int | None = None,
        preprocess: Preprocessing | None = None,
    ):
        if fmt not in CACHE_FORMATS:
            raise ConfigError(f"cache_format must be one of {list(CACHE_FORMATS)}, got {fmt!r}")
        if short_side < 1:
            raise ConfigError(f"cache_size must be a positive number of pixels, got {short_side}")
        if not 1 <= quality <= 100:
            raise ConfigError(f"cache_quality must be in 1..100, got {quality}")
        self.folder = Path(folder).expanduser()
        self.short_side = int(short_side)
        self.fmt: CacheFormat = fmt
        self.quality = int(quality)
        self.bits_stored = check_bits_stored(bits_stored)
        self.preprocess = preprocess
        self._warned_read_only = False
        self._lock = threading.Lock()
        self.hits = 0
        """Images this process read from the cache."""
        self.builds = 0
        """Images this process decoded from their source and stored."""

    def __repr__(self) -> str:
        return f"ImageCache({str(self.folder)!r}, short_side={self.short_side}, fmt={self.fmt!r})"

    def entry(self, source: str | os.PathLike[str]) -> Path:
        """The cache file of ``source`` in its current state (it may not exist yet)."""
        path = os.path.abspath(source)
        stat = os.stat(path)
        settings = (
            f"{_VERSION}|{path}|{stat.st_size}|{stat.st_mtime_ns}|{self.short_side}|{self.fmt}"
        )
        if self.fmt == "jpg":
            settings += f"|{self.quality}"
        if self.bits_stored is not None:
            settings += f"|bits_stored={self.bits_stored}"
        if self.preprocess is not None:  # none: the key (and the entries) of before
            settings += f"|preprocess={self.preprocess.key}"
        key = hashlib.sha1(settings.encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.{self.fmt}"

    def __call__(self, source: str | os.PathLike[str]) -> np.ndarray:
        """The cached image of ``source``, building its entry first when missing."""
        return self.load(source)[0]

    def load(self, source: str | os.PathLike[str]) -> tuple[np.ndarray, bool]:
        """(image, built): ``built`` is True when the entry was missing and was written."""
        try:
            entry = self.entry(source)
        except OSError:
            return self._decode(source), False  # read_rgb names the unreadable source
        image = self._read_entry(entry)
        if image is not None:
            with self._lock:
                self.hits += 1
            return image, False
        decoded, damage = decode_rgb(source, bits_stored=self.bits_stored)
        image = np.ascontiguousarray(downsize(self._preprocess(decoded, source), self.short_side))
        if damage is not None:  # raises, or warns and is not stored: checks decode it again
            refuse_damage(os.fspath(source), damage)
            return image, False
        built = self._write_entry(entry, image)
        if built:
            with self._lock:
                self.builds += 1
        return image, built

    def _decode(self, source: str | os.PathLike[str]) -> np.ndarray:
        return self._preprocess(read_rgb(source, bits_stored=self.bits_stored), source)

    def _preprocess(self, image: np.ndarray, source: str | os.PathLike[str]) -> np.ndarray:
        return image if self.preprocess is None else self.preprocess(image, os.fspath(source))

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        del state["_lock"]  # dataloader workers get their own
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _read_entry(self, entry: Path) -> np.ndarray | None:
        try:
            if self.fmt == "npy":
                image = np.load(entry, allow_pickle=False)
            else:
                decoded = cv2.imdecode(np.fromfile(entry, np.uint8), cv2.IMREAD_COLOR)
                image = None if decoded is None else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        except (FileNotFoundError, NotADirectoryError):  # not cached yet
            return None
        except (OSError, ValueError) as error:  # damaged entry: rebuild it
            log.warning("rebuilding the damaged cache entry %s (%s)", entry, error)
            return None
        if image is None or image.ndim != 3 or image.dtype != np.uint8:
            log.warning("rebuilding the damaged cache entry %s", entry)
            return None
        return image

    def _write_entry(self, entry: Path, image: np.ndarray) -> bool:
        temporary = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                dir=entry.parent, prefix=f".{entry.stem}.", suffix=".tmp"
            )
            with os.fdopen(handle, "wb") as file:
                if self.fmt == "npy":
                    np.save(file, image, allow_pickle=False)
                else:
                    params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
                    params += [
                        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
                    ]
                    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], params)
                    if not ok:
                        raise OSError("JPEG encoding failed")
                    file.write(encoded.tobytes())
            os.replace(temporary, entry)  # atomic: readers see a whole entry or none
            return True
        except OSError as error:
            if temporary is not None and os.path.exists(temporary):
                os.unlink(temporary)
            if not self._warned_read_only:
                log.warning(
                    "cannot write to the image cache %s (%s): reading images uncached",
                    self.folder,
                    error,
                )
                self._warned_read_only = True
            return False
