"""Reading images from disk as RGB uint8 arrays."""

from __future__ import annotations

import os

import cv2
import numpy as np

from fgssl.errors import ImageReadError

__all__ = ["ImageReadError", "read_rgb"]

cv2.setNumThreads(0)  # dataloader workers parallelise; OpenCV threads would oversubscribe


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` into an (H, W, 3) uint8 RGB array.

    Grayscale and palette images are expanded to three channels, 16-bit images scaled to
    8 bits, an alpha channel is dropped and the EXIF orientation applied. Raises
    :class:`ImageReadError` naming the file when it cannot be decoded.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(f"cannot read image file {os.fspath(path)!r}: {error}") from error
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:  # some malformed headers make OpenCV raise rather than return None
        image = None
    if image is None:
        raise ImageReadError(
            f"cannot decode image file {os.fspath(path)!r} ({data.size} bytes): "
            "expected a readable PNG or JPEG; the file may be corrupt or truncated"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
