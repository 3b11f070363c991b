"""Fundus photographs brought to one frame, and Ben Graham's local-average colour subtraction.

Ben Graham's preprocessing won the Kaggle Diabetic Retinopathy Detection competition (2015;
his competition report, and ``preprocessImages.py`` of SparseConvNet's
``kaggle_Diabetic_Retinopathy_competition`` branch) and is still the common preprocessing of
APTOS 2019 solutions: scale the image so that the retina has a fixed radius R, subtract the
local average colour, ``4 * image - 4 * GaussianBlur(image, sigma=R/30) + 128``, and replace
everything outside a circle of 0.9 R by grey 128 (the edge of the field of view, where the
blur mixes in the black border). fgssl first trims the black border to the field of view
(as the APTOS solutions' ``crop_image_from_gray``), so that R is measured on the retina
itself, and centres the retina on a black 2R x 2R square: every image comes out at the same
scale and size whatever the camera.

The field of view is found on the luminance, downsized (area interpolation) so its long side
is at most :data:`DETECTION_SIDE` pixels, which averages out the noise of dark borders:
the border's level is the median of the four corners (squares of :data:`CORNER_FRACTION` of
the long side, which a round field of view leaves dark), the field of view the largest
8-connected region brighter than that level plus :data:`BORDER_MARGIN` grey levels (text
and specks in the border are other regions), and its bounding box, mapped back to the full
image, is the crop. The retina's radius is half the box's longer side (fundus cameras
clip the circle at the top and bottom, rarely at the sides). An image whose border is not
dark (level above :data:`DARK_BORDER`: no black border, e.g. a crop inside the retina) is
its own field of view; an image with no region above its border (all dark) is used whole,
with a warning naming it.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

__all__ = [
    "BLUR_FRACTION",
    "BORDER_MARGIN",
    "CORNER_FRACTION",
    "DARK_BORDER",
    "DETECTION_SIDE",
    "MASK_FRACTION",
    "ben_graham",
    "crop_to_retina",
    "field_of_view",
    "subtract_local_average",
]

log = logging.getLogger(__name__)

DETECTION_SIDE = 512
"""Long side (pixels) of the downsized luminance the field of view is found on."""
BORDER_MARGIN = 5
"""Grey levels above the border's level from which a pixel is part of the field of view
(a dark fundus' edge is about 7 levels above a black border; noisy grey borders vary by 3)."""
CORNER_FRACTION = 0.05
"""Side of the corner squares the border's level is measured on, as a share of the long side."""
DARK_BORDER = 32
"""A border brighter than this (grey levels) is no black border: nothing to trim."""
BLUR_FRACTION = 1 / 30
"""Ben Graham's blur: sigma = R / 30."""
MASK_FRACTION = 0.9
"""Ben Graham's mask: grey 128 outside 0.9 R."""
_warned: set[str] = set()


def field_of_view(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), half-open pixel bounds of the field of view of an
    (H, W, 3) uint8 RGB fundus photograph (module docstring); the whole image when its
    border is not dark; None when nothing is brighter than its border."""
    height, width = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, DETECTION_SIDE / max(height, width))
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    c = max(1, round(CORNER_FRACTION * max(gray.shape)))
    corners = [gray[:c, :c], gray[:c, -c:], gray[-c:, :c], gray[-c:, -c:]]
    level = float(np.median(np.concatenate([corner.ravel() for corner in corners])))
    if level > DARK_BORDER:
        return 0, height, 0, width
    mask = (gray > level + BORDER_MARGIN).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:  # label 0 is the background
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[largest, :4])
    if scale == 1:
        return y, y + h, x, x + w
    sy, sx = height / gray.shape[0], width / gray.shape[1]  # the exact factors of the resize
    top, left = math.floor(y * sy), math.floor(x * sx)
    return top, min(height, math.ceil((y + h) * sy)), left, min(width, math.ceil((x + w) * sx))


def crop_to_retina(image: np.ndarray, radius: int, source: str = "") -> np.ndarray:
    """The field of view of ``image`` ((H, W, 3) uint8 RGB), scaled so that the retina's
    radius is ``radius`` pixels (area interpolation when shrinking, bilinear when
    enlarging) and centred on a black (2 radius, 2 radius, 3) uint8 square. ``source``
    names the image in the warning about an image with no field of view."""
    box = field_of_view(image)
    if box is None:
        _warn_once(source, "%r shows no field of view brighter than its border: used whole")
        box = (0, image.shape[0], 0, image.shape[1])
    top, bottom, left, right = box
    crop = image[top:bottom, left:right]
    height, width = crop.shape[:2]
    side = 2 * radius
    scale = side / max(height, width)  # the longer side becomes exactly 2 radius
    size = (min(side, max(1, round(width * scale))), min(side, max(1, round(height * scale))))
    if size != (width, height):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        crop = cv2.resize(crop, size, interpolation=interpolation)
    canvas = np.zeros((side, side, 3), np.uint8)
    y, x = (side - size[1]) // 2, (side - size[0]) // 2
    canvas[y : y + size[1], x : x + size[0]] = crop
    return canvas


def subtract_local_average(image: np.ndarray, radius: int) -> np.ndarray:
    """Ben Graham's colour subtraction of a (2R, 2R, 3) uint8 image whose retina (radius
    R = ``radius``) is centred: ``4 * image - 4 * GaussianBlur(image, sigma=R/30) + 128``,
    rounded and saturated to uint8 (``cv2.addWeighted``), then grey 128 wherever a pixel's
    centre lies farther than 0.9 R from the square's centre."""
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=radius * BLUR_FRACTION)
    out = cv2.addWeighted(image, 4, blurred, -4, 128)
    rows, cols = np.ogrid[: image.shape[0], : image.shape[1]]
    centre_y, centre_x = image.shape[0] / 2, image.shape[1] / 2
    outside = (rows + 0.5 - centre_y) ** 2 + (cols + 0.5 - centre_x) ** 2 > (
        MASK_FRACTION * radius
    ) ** 2
    out[outside] = 128
    return out


def ben_graham(image: np.ndarray, radius: int, source: str = "") -> np.ndarray:
    """Ben Graham's preprocessing of an (H, W, 3) uint8 RGB fundus photograph: the retina
    cropped, scaled to ``radius`` and centred (:func:`crop_to_retina`), then its local
    average colour subtracted (:func:`subtract_local_average`). Returns (2R, 2R, 3) uint8."""
    return subtract_local_average(crop_to_retina(image, radius, source), radius)


def _warn_once(source: str, message: str) -> None:
    """Log ``message % source`` once per image and process."""
    if source in _warned:
        return
    _warned.add(source)
    log.warning(message, source)
