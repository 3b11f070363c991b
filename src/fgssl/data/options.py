"""The checks of a data module's options: each bad value is refused in one line naming the
``data.`` key and what was expected, when the module is built (before any file is read)."""

from __future__ import annotations

import os

from fgssl.conf.resolvers import default_resize_size
from fgssl.data.cache import CacheFormat, ImageCache
from fgssl.data.preprocess import ImageReader, make_preprocessing
from fgssl.data.verify import VERIFY_MODES
from fgssl.errors import ConfigError

__all__ = ["check_policies", "check_resize_size", "make_cache", "make_reading"]


def check_resize_size(image_size: int, resize_size: int | None) -> int:
    """The short side images are resized to before cropping: ``resize_size``, or 8/7 of
    ``image_size`` when it is None (:func:`fgssl.conf.resolvers.default_resize_size`).
    Raises :class:`ConfigError` when it is smaller than ``image_size``."""
    resize_size = resize_size or default_resize_size(image_size)
    if resize_size < image_size:
        raise ConfigError(
            f"data.resize_size={resize_size} is smaller than data.image_size="
            f"{image_size}: images would be enlarged again to be cropped; leave "
            f"data.resize_size unset (8/7 of data.image_size: "
            f"{default_resize_size(image_size)}) or set it >= {image_size}"
        )
    return resize_size


def check_policies(
    missing_images: object, verify_images: object, label_fraction: float, sampler: object
) -> None:
    """Raise :class:`ConfigError` unless ``missing_images`` is ``"error"`` or ``"skip"``,
    ``verify_images`` one of :data:`~fgssl.data.verify.VERIFY_MODES`, ``label_fraction`` in
    (0, 1] and ``sampler`` None or ``"weighted"``."""
    if missing_images not in ("error", "skip"):
        raise ConfigError(f"missing_images must be 'error' or 'skip', got {missing_images!r}")
    if verify_images not in VERIFY_MODES:
        raise ConfigError(
            f"verify_images must be one of {list(VERIFY_MODES)}, got {verify_images!r}"
        )
    if not 0 < label_fraction <= 1:
        raise ConfigError(f"label_fraction must be in (0, 1], got {label_fraction}")
    if sampler not in (None, "weighted"):
        raise ConfigError(f"sampler must be null or 'weighted', got {sampler!r}")


def make_cache(
    folder: str | os.PathLike[str] | None,
    size: int | None,
    fmt: CacheFormat,
    image_size: int,
    resize_size: int,
    reader: ImageReader,
) -> ImageCache | None:
    """The image cache in ``folder`` (None or ``""``: no cache) of images read as ``reader``
    reads them (its ``bits_stored`` and preprocessing), whose short side is ``size``
    (default: twice ``image_size``, at least ``resize_size``). Raises
    :class:`ConfigError` when ``size`` is smaller than ``resize_size``."""
    if folder is None or str(folder) == "":
        return None
    size = size or max(2 * image_size, resize_size)
    if size < resize_size:
        raise ConfigError(
            f"data.cache_size={size} is smaller than data.resize_size={resize_size}: "
            "cached images would be enlarged again; raise data.cache_size or leave it "
            "unset (twice data.image_size)"
        )
    return ImageCache(
        folder, size, fmt=fmt, bits_stored=reader.bits_stored, preprocess=reader.preprocess
    )


def make_reading(
    bits_stored: int | None,
    preprocess: object,
    preprocess_radius: object,
    image_size: int,
    resize_size: int,
    cache_dir: str | os.PathLike[str] | None,
    cache_size: int | None,
    cache_format: CacheFormat,
) -> tuple[ImageReader, ImageCache | None]:
    """How a data module reads its images: the reader without a cache (``bits_stored`` and
    the preprocessing ``data.preprocess`` and ``data.preprocess_radius`` ask for, see
    :func:`~fgssl.data.preprocess.make_preprocessing`), and the image cache that reads
    alike (:func:`make_cache`; None without ``cache_dir``). Raises :class:`ConfigError`."""
    preprocessing = make_preprocessing(
        preprocess, preprocess_radius, image_size=image_size, resize_size=resize_size
    )
    reader = ImageReader(bits_stored, preprocessing)
    cache = make_cache(cache_dir, cache_size, cache_format, image_size, resize_size, reader)
    return reader, cache
