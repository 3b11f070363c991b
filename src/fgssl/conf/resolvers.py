"""OmegaConf resolvers of fgssl's configs: settings derived from other settings.

Registered when :mod:`fgssl.conf` is imported (Hydra imports it to compose the configs), so
a derived default such as ``data.resize_size: ${fgssl.resize_size:${data.image_size}}``
follows ``data.image_size`` whatever sets it, while an explicit value still replaces it.
"""

from __future__ import annotations

from fractions import Fraction

from omegaconf import OmegaConf

from fgssl.errors import ConfigError

__all__ = [
    "RESIZE_RATIO",
    "default_resize_size",
    "if_pretrained",
    "reciprocal",
    "register_resolvers",
]

RESIZE_RATIO = Fraction(8, 7)
"""Short side before cropping / crop side: 256 / 224, the ImageNet evaluation protocol
(resize the short side to 256, centre-crop 224) that the reference FG-SSL code follows."""


def default_resize_size(image_size: int, ratio: Fraction | str = RESIZE_RATIO) -> int:
    """The short side (pixels) images are resized to before an ``image_size`` crop:
    ``round(image_size * ratio)`` (256 for 224, 110 for 96). ``ratio`` is a fraction such as
    ``"8/7"``. Raises :class:`ConfigError` for a size or ratio that is not positive."""
    try:
        factor = Fraction(str(ratio))
    except (ValueError, ZeroDivisionError) as error:
        raise ConfigError(f"resize ratio {ratio!r} is not a fraction such as '8/7'") from error
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(
            f"data.image_size must be a positive number of pixels, got {image_size!r}"
        )
    if factor < 1:
        raise ConfigError(f"resize ratio {ratio!r} is below 1: the crop would not fit")
    return round(image_size * factor)


def if_pretrained(pretrained: object, with_weights: object, from_scratch: object) -> object:
    """``with_weights`` when the backbone starts from pretrained (ImageNet) weights, else
    ``from_scratch``: settings that only make sense with weights to protect (a lower
    backbone learning rate) follow ``model.net.pretrained``. Raises :class:`ConfigError`
    when ``pretrained`` is not a boolean."""
    if not isinstance(pretrained, bool):
        raise ConfigError(f"model.net.pretrained must be true or false, got {pretrained!r}")
    return with_weights if pretrained else from_scratch


def reciprocal(value: object) -> float:
    """``1 / value``: a factor that follows a width, e.g. the Barlow Twins loss scaled by
    ``1 / model.net.feat_dim`` (its off-diagonal sum grows with D²; scaled by 1/D its
    gradients are on the scale of cross-entropy's). Raises :class:`ConfigError` when
    ``value`` is not a positive number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"expected a positive number to take the reciprocal of, got {value!r}")
    return 1.0 / value


def register_resolvers() -> None:
    """Register ``${fgssl.resize_size:<image size>[,<ratio>]}`` (see
    :func:`default_resize_size`), ``${fgssl.len:<list>}`` (its length: K, the number of
    tapped stages, from the patch schedule's grids) and
    ``${fgssl.if_pretrained:<pretrained>,<with weights>,<from scratch>}`` (see
    :func:`if_pretrained`) and ``${fgssl.reciprocal:<number>}`` (see :func:`reciprocal`)."""
    OmegaConf.register_new_resolver("fgssl.resize_size", default_resize_size, replace=True)
    OmegaConf.register_new_resolver("fgssl.len", len, replace=True)
    OmegaConf.register_new_resolver("fgssl.if_pretrained", if_pretrained, replace=True)
    OmegaConf.register_new_resolver("fgssl.reciprocal", reciprocal, replace=True)
