"""Shades of Gray colour constancy (Finlayson & Trezzi, "Shades of gray and colour
constancy", CIC 2004), the colour normalisation of dermoscopy images in ISIC 2018 and 2019
solutions (e.g. the ISIC 2019 winner, Gessert et al., arXiv:1910.03910), after Barata et al.
(IEEE JBHI 19(3), 2015), with their Minkowski norm p = 6.

The illuminant is estimated per channel as the p-norm mean of the image,
``e_c = (mean over pixels of I_c ** p) ** (1 / p)`` (p = 1 is Gray World, p = infinity
White Patch), and each channel is multiplied by ``|e| / (sqrt(3) * e_c)`` (``|e|`` the
Euclidean norm of e): the corrected image's estimate is neutral, ``|e| / sqrt(3)`` on every
channel, with the same norm as before. Values are rounded and clipped to 0..255.

The estimate is computed from each channel's histogram (an 8-bit channel has 256 values),
and the gains are applied through a lookup table: OpenCV's, a few passes over the image.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

__all__ = ["SHADES_OF_GRAY_POWER", "illuminant", "shades_of_gray"]

log = logging.getLogger(__name__)

SHADES_OF_GRAY_POWER = 6
"""The Minkowski norm of the ISIC solutions (Barata et al. 2015)."""
_LEVELS = np.arange(256, dtype=np.float64)
_warned: set[str] = set()


def illuminant(image: np.ndarray, power: float = SHADES_OF_GRAY_POWER) -> np.ndarray:
    """The p-norm estimate e (3 floats, 0..255) of an (H, W, 3) uint8 image's illuminant:
    ``(mean of I_c ** power) ** (1 / power)`` per channel, in float64 from the histogram."""
    pixels = image.shape[0] * image.shape[1]
    weights = _LEVELS**power
    image = np.ascontiguousarray(image)
    counts = [cv2.calcHist([image], [c], None, [256], [0, 256]).ravel() for c in range(3)]
    moments = np.asarray([count.astype(np.float64) @ weights / pixels for count in counts])
    return moments ** (1 / power)


def shades_of_gray(
    image: np.ndarray, power: float = SHADES_OF_GRAY_POWER, source: str = ""
) -> np.ndarray:
    """``image`` ((H, W, 3) uint8 RGB) colour-corrected by Shades of Gray (module
    docstring), as (H, W, 3) uint8. An image with a black channel has no defined illuminant:
    it is returned as it is, with a warning naming ``source`` once."""
    estimate = illuminant(image, power)
    if not (estimate > 0).all():
        if source not in _warned:
            _warned.add(source)
            log.warning(
                "%r has a black colour channel: Shades of Gray has no illuminant to correct, "
                "the image is used as decoded",
                source,
            )
        return image
    gains = np.linalg.norm(estimate) / (np.sqrt(3) * estimate)
    table = np.clip(np.rint(_LEVELS[:, None] * gains[None, :]), 0, 255).astype(np.uint8)
    out: np.ndarray = cv2.LUT(np.ascontiguousarray(image), table.reshape(256, 1, 3))
    return out
