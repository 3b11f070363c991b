"""Filling a data module's image cache ahead of training (what ``fgssl-prepare`` runs)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.cache import ImageCache
from fgssl.errors import ConfigError

__all__ = ["CacheReport", "fill_cache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheReport:
    """What :func:`fill_cache` did."""

    images: int
    """Distinct images of the data module (all splits), after any left out."""
    already_cached: int
    built: int
    left_out: int
    """Images left out as unreadable (``missing_images="skip"``)."""
    megabytes: float
    """Size of the cache entries of these images."""
    seconds: float


def fill_cache(
    datamodule: ImageClassificationDataModule,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CacheReport:
    """Read and check the data module's files and decode every image once into its cache.

    Decoding is the most thorough check of the images: unreadable ones raise
    :class:`~fgssl.errors.ImageReadError` naming them, or are left out under
    ``missing_images="skip"``. Entries already in the cache are only read back.

    Raises :class:`~fgssl.errors.ConfigError` when there is no cache, when its folder
    cannot be written (checked before any image is decoded), or when some images could not
    be stored (e.g. the disk filled up): training would read those uncached.
    """
    cache = datamodule.cache
    if cache is None:
        raise ConfigError(
            "the data config has no image cache: set data.cache_dir=/path/to/cache "
            "(any folder; one cache serves every dataset)"
        )
    _require_writable(cache.folder)
    started = time.perf_counter()
    hits, builds = cache.hits, cache.builds
    splits = datamodule.reread(verify_images="decode", workers=workers, progress=progress)
    kept = {p for table in splits.values() for p in table["path"]}
    cached = [p for p in kept if _is_cached(cache, p)]
    if len(cached) < len(kept):
        raise ConfigError(
            f"{len(kept) - len(cached)} of {len(kept)} images could not be stored in the "
            f"image cache {str(cache.folder)!r} (data.cache_dir; see the warning above): "
            "free space there or choose another folder"
        )
    size = sum(cache.entry(p).stat().st_size for p in cached)
    return CacheReport(
        images=len(kept),
        already_cached=cache.hits - hits,
        built=cache.builds - builds,
        left_out=len(datamodule.unreadable),
        megabytes=size / 2**20,
        seconds=time.perf_counter() - started,
    )


def _require_writable(folder: Path) -> None:
    """Create ``folder`` and write a file into it, or raise naming data.cache_dir."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(
            f"data.cache_dir {str(folder)!r} cannot be written ({error.strerror or error}): "
            "fgssl-prepare stores the decoded images there; choose a writable folder"
        ) from error


def _is_cached(cache: ImageCache, path: str) -> bool:
    try:
        return cache.entry(path).is_file()
    except OSError:  # the source itself is gone
        return False
