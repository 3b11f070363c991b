"""The field's per-image preprocessing (``data.preprocess``), applied once as an image is read.

- ``ben_graham`` (fundus): the black border trimmed to the field of view, the retina scaled
  to radius R and centred on a 2R x 2R square, its local average colour subtracted and
  grey 128 outside 0.9 R (:mod:`fgssl.data.retina`; Ben Graham, Kaggle DR 2015).
- ``fundus_crop`` (fundus): the crop, scaling and centring alone (the colours kept).
- ``shades_of_gray`` (dermoscopy): Shades of Gray colour constancy, p = 6
  (:mod:`fgssl.data.color_constancy`; the ISIC 2018/2019 solutions).

Each is deterministic per image, so it is computed once: by the image cache when it builds an
entry (its key names the preprocessing), else by :class:`ImageReader` at every read (the
data modules' ``reader`` without a cache, ``fgssl-predict``), always on the full decoded
image, before any resizing. Training, evaluation and prediction therefore see the same
pixels. R is ``data.preprocess_radius``, by default ``data.image_size`` (at least half
``data.resize_size``): the 2R square is the image cache's default size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fgssl.conf.resolvers import default_resize_size
from fgssl.data.color_constancy import SHADES_OF_GRAY_POWER, shades_of_gray
from fgssl.data.io import check_bits_stored, read_rgb
from fgssl.data.retina import ben_graham, crop_to_retina
from fgssl.errors import ConfigError

__all__ = [
    "FUNDUS",
    "PREPROCESSINGS",
    "ImageReader",
    "Preprocessing",
    "default_radius",
    "make_preprocessing",
    "preprocessing_of",
]

FUNDUS = ("ben_graham", "fundus_crop")
"""The preprocessings that scale the retina to a radius."""
PREPROCESSINGS = (*FUNDUS, "shades_of_gray")
VERSION = 1
"""Part of the cache key: bump when a preprocessing's output changes for the same image."""
_MIN_RADIUS = 8


@dataclass(frozen=True)
class Preprocessing:
    """A preprocessing by name, with the retina radius R (pixels) of the fundus ones."""

    name: str
    radius: int | None = None

    def __call__(self, image: np.ndarray, source: str = "") -> np.ndarray:
        """``image`` ((H, W, 3) uint8 RGB) preprocessed: (2R, 2R, 3) uint8 for the fundus
        ones, (H, W, 3) for ``shades_of_gray``. ``source`` names the image in warnings."""
        if self.name == "shades_of_gray":
            return shades_of_gray(image, source=source)
        assert self.radius is not None
        if self.name == "ben_graham":
            return ben_graham(image, self.radius, source)
        return crop_to_retina(image, self.radius, source)

    @property
    def key(self) -> str:
        """Identifies the output (the image cache's key): name, version and radius."""
        return f"{self.name}/v{VERSION}" + (f"/r{self.radius}" if self.radius else "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the export's preprocessing file and the model's metadata)."""
        tree: dict[str, Any] = {"name": self.name, "version": VERSION}
        if self.radius is not None:
            tree["radius"] = self.radius
        if self.name == "shades_of_gray":
            tree["power"] = SHADES_OF_GRAY_POWER
        return tree

    @classmethod
    def from_dict(cls, tree: Mapping[str, Any] | None, source: str) -> Preprocessing | None:
        """The preprocessing of :meth:`to_dict`'s form (None: none); :class:`ConfigError`
        naming ``source`` for one this version of fgssl does not compute alike."""
        if tree is None:
            return None
        fields = dict(tree) if isinstance(tree, Mapping) else {}
        name, radius = fields.get("name"), fields.get("radius")
        try:
            if (
                name not in PREPROCESSINGS
                or fields.get("version") != VERSION
                or (name in FUNDUS) != (radius is not None)
            ):
                raise ConfigError("not a preprocessing of this version")
            return make_preprocessing(name, radius, image_size=_MIN_RADIUS)
        except ConfigError:
            raise ConfigError(
                f"{source} asks for the preprocessing {tree!r}: this fgssl computes "
                f"{list(PREPROCESSINGS)} at version {VERSION} (the fundus ones with a radius "
                f">= {_MIN_RADIUS}); use the fgssl that wrote it"
            ) from None

    def describe(self) -> str:
        """The preprocessing in words (the export's steps)."""
        if self.name == "shades_of_gray":
            return (
                f"Shades of Gray colour constancy, p = {SHADES_OF_GRAY_POWER}, on the full "
                "image (fgssl.data.color_constancy.shades_of_gray)"
            )
        radius = self.radius or 0
        crop = (
            "trim the black border to the field of view, scale the retina to radius "
            f"{radius} px and centre it on a black {2 * radius} px square"
        )
        if self.name == "fundus_crop":
            return f"{crop} (fgssl.data.retina.crop_to_retina)"
        return (
            f"{crop}, then 4 * image - 4 * GaussianBlur(image, sigma={radius}/30) + 128 "
            f"and grey 128 outside a circle of radius {0.9 * radius:g} px "
            "(fgssl.data.retina.ben_graham)"
        )


def default_radius(image_size: int, resize_size: int | None = None) -> int:
    """R of the fundus preprocessings when ``data.preprocess_radius`` is unset:
    ``image_size``, at least half ``resize_size`` (default: 8/7 of ``image_size``)."""
    resize_size = resize_size or default_resize_size(image_size)
    return max(image_size, (resize_size + 1) // 2)


def make_preprocessing(
    name: object, radius: object = None, *, image_size: int, resize_size: int | None = None
) -> Preprocessing | None:
    """The preprocessing ``data.preprocess`` (``name``: None or one of
    :data:`PREPROCESSINGS`) and ``data.preprocess_radius`` (``radius``: None for
    :func:`default_radius`, else pixels, for the fundus ones only) ask for.
    Raises :class:`ConfigError` naming the key for any other value."""
    if name is None:
        if radius is not None:
            raise ConfigError(
                f"data.preprocess_radius={radius} applies to data.preprocess="
                f"{' or '.join(FUNDUS)}, and data.preprocess is null"
            )
        return None
    if name not in PREPROCESSINGS:
        raise ConfigError(
            f"data.preprocess must be null or one of {list(PREPROCESSINGS)}, got {name!r}"
        )
    if name not in FUNDUS:
        if radius is not None:
            raise ConfigError(
                f"data.preprocess_radius={radius} applies to data.preprocess="
                f"{' or '.join(FUNDUS)}, not to {name}: leave it null"
            )
        return Preprocessing(str(name))
    if radius is None:
        return Preprocessing(str(name), default_radius(image_size, resize_size))
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < _MIN_RADIUS:
        raise ConfigError(
            f"data.preprocess_radius must be null or a number of pixels >= {_MIN_RADIUS}, "
            f"got {radius!r}"
        )
    return Preprocessing(str(name), radius)


def preprocessing_of(data: Mapping[str, Any] | None) -> Preprocessing | None:
    """The preprocessing of a run's ``data`` config (None: none), as its data module made it."""
    if data is None:
        return None
    image_size = int(data.get("image_size", 224))
    resize_size = data.get("resize_size")
    return make_preprocessing(
        data.get("preprocess"),
        data.get("preprocess_radius"),
        image_size=image_size,
        resize_size=int(resize_size) if resize_size else None,
    )


@dataclass(frozen=True)
class ImageReader:
    """Reads an image file into (H, W, 3) uint8 RGB by :func:`fgssl.data.io.read_rgb`'s
    rule (``bits_stored``), then applies ``preprocess``: the reader of a data module
    without an image cache, and of ``fgssl-predict``. Picklable (dataloader workers)."""

    bits_stored: int | None = None
    preprocess: Preprocessing | None = None

    def __post_init__(self) -> None:
        check_bits_stored(self.bits_stored)

    def __call__(self, path: str | os.PathLike[str]) -> np.ndarray:
        image = read_rgb(path, bits_stored=self.bits_stored)
        return image if self.preprocess is None else self.preprocess(image, os.fspath(path))
