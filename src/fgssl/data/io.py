"""Reading image files as RGB uint8 arrays, by one rule for every sample type.

The rule (the same for training, the image cache, the checks before training and
prediction):

- 8-bit images are read as they are; grayscale and palette images become three equal or
  palette channels, an alpha channel is dropped, the EXIF orientation is applied.
- 16-bit images are scaled by their significant bits (``bits_stored``, DICOM's term; default
  16): ``value >> (bits_stored - 8)``, the integer scaling of OpenCV and scikit-image. A
  12-bit image stored in 16 bits therefore needs ``bits_stored=12`` to keep its 256 grey
  levels (as 16-bit data it keeps 16); an image whose values all stay below 4096 is warned
  about once per process. Values above ``2**bits_stored - 1`` are clipped, with a warning.
- Floating-point images hold intensities in [0, 1], scaled to 0-255 and rounded (as
  scikit-image's ``img_as_ubyte``), warned about once per process; other values, NaN and
  infinities are refused as unsupported.
- Other sample types (signed or 32-bit integers) and other formats are refused as
  unsupported; a file of a supported format that cannot be decoded is reported as corrupt
  or truncated, with Pillow's reason.
- A JPEG that decodes with libjpeg's warning of damaged data (``Corrupt JPEG data: ...``,
  ``Premature end of JPEG file``; :mod:`fgssl.data.jpeg_damage`) is refused, naming the
  file and the warning; within :func:`tolerating_damage` (the training and evaluation
  datasets) it is used as decoded, with a warning naming it once per process.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fgssl.data.jpeg_damage import watched_decode
from fgssl.errors import ConfigError, ImageReadError

__all__ = [
    "SUPPORTED_FORMATS",
    "ImageReadError",
    "check_bits_stored",
    "decode_rgb",
    "image_format",
    "read_rgb",
    "refuse_damage",
    "to_rgb8",
    "tolerating_damage",
]

log = logging.getLogger(__name__)

cv2.setNumThreads(0)  # dataloader workers parallelise; OpenCV threads would oversubscribe

SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WebP")
"""The formats fgssl reads (through OpenCV), as named in messages."""

# (offset, signature, format): the supported formats, then formats named as unsupported.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (8, b"WEBP", "WebP"),
    (0, b"GIF8", "GIF"),
    (128, b"DICM", "DICOM"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xffO\xffQ", "JPEG 2000"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypavif", "AVIF"),
    (0, b"%PDF", "PDF"),
)
HEADER_BYTES = 132
"""Bytes of a file's start that :func:`image_format` needs."""

_LOW_BITS_LIMIT = 1 << 12  # 16-bit images below this look like 12-bit (or fewer) data
_warned: set[str] = set()
_tolerant = contextvars.ContextVar("fgssl_tolerate_damaged_images", default=False)


def image_format(head: bytes) -> str | None:
    """The format whose signature starts ``head`` (the first :data:`HEADER_BYTES` bytes of a
    file; e.g. ``"PNG"``, ``"DICOM"``), or None."""
    for offset, signature, name in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if name == "WebP" and not head.startswith(b"RIFF"):
                continue
            return name
    return None


def check_bits_stored(bits_stored: object) -> int | None:
    """``bits_stored`` if it is None or 8..16, else :class:`ConfigError` naming
    ``data.bits_stored``."""
    if bits_stored is None:
        return None
    if isinstance(bits_stored, bool) or not isinstance(bits_stored, int):
        raise ConfigError(f"data.bits_stored must be null or 8..16, got {bits_stored!r}")
    if not 8 <= bits_stored <= 16:
        raise ConfigError(f"data.bits_stored must be null or 8..16, got {bits_stored}")
    return bits_stored


def read_rgb(path: str | os.PathLike[str], *, bits_stored: int | None = None) -> np.ndarray:
    """Decode ``path`` into an (H, W, 3) uint8 RGB array by the rule of this module.

    ``bits_stored`` (8..16, default 16): the significant bits of 16-bit images.
    Raises :class:`ImageReadError` naming the file when it cannot be read, is corrupt or
    truncated, is a damaged JPEG (outside :func:`tolerating_damage`), or is of an
    unsupported format or sample type.
    """
    image, damage = decode_rgb(path, bits_stored=bits_stored)
    if damage is not None:
        refuse_damage(os.fspath(path), damage)
    return image


def decode_rgb(
    path: str | os.PathLike[str], *, bits_stored: int | None = None
) -> tuple[np.ndarray, str | None]:
    """(image, damage): :func:`read_rgb`'s image, and libjpeg's warning when the file is a
    damaged JPEG (the image is then partly garbage), else None."""
    name = os.fspath(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(f"cannot read image file {name!r}: {error}") from error
    damage = None
    if image_format(data[:HEADER_BYTES].tobytes()) == "JPEG":
        image, damage = watched_decode(lambda: _imdecode(data))
    else:
        image = _imdecode(data)
    if image is None:
        raise ImageReadError(_undecodable(name, data))
    return to_rgb8(image, name, bits_stored=bits_stored), damage


def _imdecode(data: np.ndarray) -> np.ndarray | None:
    try:
        # ANYDEPTH keeps 16-bit and float samples; ANYCOLOR drops alpha, expands palettes
        # and keeps grayscale single-channel. The EXIF orientation is applied.
        return cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    except cv2.error:  # some malformed headers make OpenCV raise rather than return None
        return None


@contextlib.contextmanager
def tolerating_damage() -> Iterator[None]:
    """Within this context (of the current thread), :func:`refuse_damage` warns instead of
    raising: a training run does not stop at an image the checks before it did not decode."""
    token = _tolerant.set(True)
    try:
        yield
    finally:
        _tolerant.reset(token)


def refuse_damage(name: str, damage: str) -> None:
    """Raise :class:`ImageReadError` for the damaged JPEG ``name`` (``damage``: libjpeg's
    warning), or, within :func:`tolerating_damage`, warn once per file and process."""
    if not _tolerant.get():
        raise ImageReadError(
            f"{name!r} is a damaged JPEG: libjpeg reports {damage!r} while decoding it, and "
            "part of the decoded image would be garbage"
        )
    _warn_once(
        f"damaged:{name}",
        "%r is a damaged JPEG (libjpeg: %s): it is used as decoded, part of it garbage; "
        "data.verify_images=decode refuses such files before training",
        name,
        damage,
    )


def to_rgb8(image: np.ndarray, name: str, *, bits_stored: int | None = None) -> np.ndarray:
    """A decoded OpenCV image (BGR or grayscale, any supported sample type) as RGB uint8,
    by the rule of this module; ``name`` names the file in warnings and errors."""
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[2]
    if channels not in (1, 3):
        raise ImageReadError(
            f"{name!r} has {channels} channels: unsupported (expected grayscale or RGB)"
        )
    image = _to_uint8(image, name, bits_stored)
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _to_uint8(image: np.ndarray, name: str, bits_stored: int | None) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return _scale_16_bit(image, name, bits_stored)
    if np.issubdtype(image.dtype, np.floating):
        return _scale_float(image, name)
    raise ImageReadError(
        f"{name!r} has {image.dtype} samples: unsupported sample type (fgssl reads 8- and "
        "16-bit unsigned integer and floating-point images); convert it to 8- or 16-bit PNG"
    )


def _scale_16_bit(image: np.ndarray, name: str, bits_stored: int | None) -> np.ndarray:
    peak = int(image.max())
    bits = bits_stored or 16
    if bits_stored is None and 0 < peak < _LOW_BITS_LIMIT:
        _warn_once(
            "low-bits",
            "%r is a 16-bit image whose values all stay below 4096 (maximum %d): read as "
            "16-bit data it keeps %d grey levels; if it holds 12-bit (or 10-bit) data, set "
            "data.bits_stored=12 (or 10). Warned once.",
            name,
            peak,
            (peak >> 8) + 1,
        )
    if peak >= 1 << bits:
        _warn_once(
            "clipped",
            "%r has values up to %d, above the maximum %d of data.bits_stored=%d: they are "
            "clipped to white. Warned once.",
            name,
            peak,
            (1 << bits) - 1,
            bits,
        )
    return np.minimum(image >> (bits - 8), 255).astype(np.uint8)


def _scale_float(image: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(image).all():
        raise ImageReadError(
            f"{name!r} is a floating-point image with NaN or infinite values: unsupported"
        )
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:
        raise ImageReadError(
            f"{name!r} is a floating-point image with values in [{low:.4g}, {high:.4g}]: "
            "unsupported (floating-point images must hold intensities in [0, 1]); convert "
            "it to 8- or 16-bit PNG"
        )
    _warn_once(
        "float",
        "%r is a floating-point image: its values in [0, 1] are scaled to 0-255 (and so "
        "are those of every floating-point image). Warned once.",
        name,
    )
    return np.rint(image * 255).astype(np.uint8)


def _warn_once(kind: str, message: str, *args: Any) -> None:
    """Log ``message`` the first time ``kind`` occurs in this process (dataloader workers
    forked after the checks before training inherit what those warned about)."""
    if kind in _warned:
        return
    _warned.add(kind)
    log.warning(message, *args)


def _undecodable(name: str, data: np.ndarray) -> str:
    """Why OpenCV could not decode ``data``: an unsupported format, or a corrupt or
    truncated file of a supported one (with Pillow's reason)."""
    prefix = f"cannot decode image file {name!r} ({data.size} bytes)"
    if data.size == 0:
        return f"{prefix}: it is empty"
    kind = image_format(data[:HEADER_BYTES].tobytes())
    supported = ", ".join(SUPPORTED_FORMATS)
    if kind is None:
        return f"{prefix}: unsupported format (its first bytes are those of none of {supported})"
    if kind not in SUPPORTED_FORMATS:
        return f"{prefix}: {kind} is an unsupported format (fgssl reads {supported})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's "Corrupt EXIF data"
            with Image.open(io.BytesIO(data.tobytes())) as probe:
                probe.load()
                mode = probe.mode
    except UnidentifiedImageError:
        return f"{prefix}: a corrupt or truncated {kind} file (its header cannot be parsed)"
    except Exception as error:  # Pillow's reason: truncated, broken data stream, ...
        return f"{prefix}: a corrupt or truncated {kind} file ({error})"
    return (
        f"{prefix}: a {kind} variant (Pillow mode {mode!r}) that OpenCV does not read: "
        "unsupported; convert it to 8- or 16-bit PNG"
    )
