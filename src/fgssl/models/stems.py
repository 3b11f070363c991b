"""The input stem of a timm backbone: ImageNet's (downsampling by 4 before the first block)
or a small-image stem (no downsampling before the first block).

ImageNet CNNs reduce a 224 px image to 56 px before their first block (ResNet: a 7x7
stride-2 convolution and a stride-2 max-pool). A 28-64 px image would be 7-16 px there.
The ``cifar`` stem keeps the full resolution, as the ResNets for CIFAR (He et al., CVPR 2016,
section 4.2) and the 28 px MedMNIST models (Yang et al., Sci Data 2023; MedMNIST/experiments,
``MedMNIST2D/models.py``: a 3x3 stride-1 convolution, no max-pool) do.
"""

from __future__ import annotations

import logging
from typing import Literal, get_args

from torch import nn

from fgssl.errors import ConfigError

__all__ = ["STEMS", "Stem", "apply_stem"]

log = logging.getLogger(__name__)

Stem = Literal["imagenet", "cifar"]
"""``imagenet``: the backbone as timm builds it; ``cifar``: no downsampling before the
first block (see the module docstring)."""
STEMS: tuple[str, ...] = get_args(Stem)

FAMILIES = (
    "ResNet/ResNeXt/SE-ResNet (conv1 + maxpool), EfficientNet/MobileNet (conv_stem), ConvNeXt"
)


def apply_stem(model: nn.Module, stem: str, *, name: str, pretrained: bool = False) -> None:
    """Make ``model`` (a timm model, or timm's ``features_only`` wrapper of one) use ``stem``,
    in place.

    ``cifar`` on the families of :data:`FAMILIES`:

    - ResNets (``conv1`` a convolution, then ``maxpool``): ``conv1`` becomes a 3x3 stride-1
      convolution with the same channels (new weights) and ``maxpool`` the identity; the
      deep stems of ``resnet*d`` (``conv1`` a sequence) keep their weights with stride 1;
    - EfficientNets, MobileNets (``conv_stem``): stride 1, weights kept;
    - ConvNeXts (``stem``: a 4x4 stride-4 patchify convolution): a 3x3 stride-1 convolution
      with the same channels (new weights).

    Every later stage keeps its stride, so the network's total downsampling drops by 4
    (ResNet, ConvNeXt) or 2 (EfficientNet): feature maps are that much larger and steps
    that much slower at the same image size.

    Raises:
        ConfigError: an unknown ``stem``, or a backbone of another family (naming it).
    """
    if stem not in STEMS:
        raise ConfigError(f"model.net.stem={stem!r}: expected one of {list(STEMS)}")
    if stem == "imagenet":
        return
    root = getattr(model, "model", model)  # timm's FeatureGetterNet wraps the model
    new_weights = _small_stem(root)
    if new_weights is None:
        raise ConfigError(
            f"model.net.stem=cifar is not available for backbone {name!r}: it applies to "
            f"{FAMILIES}; use model.net.stem=imagenet"
        )
    if pretrained and new_weights:
        log.warning(
            "model.net.stem=cifar: the first convolution of %s is new (randomly initialised); "
            "the rest keeps its pretrained weights",
            name,
        )


def _small_stem(root: nn.Module) -> bool | None:
    """Change ``root``'s stem to stride 1; True if a layer got new weights, None if the
    family is not known."""
    conv1, stem = getattr(root, "conv1", None), getattr(root, "stem", None)
    if conv1 is not None and hasattr(root, "maxpool"):
        root.maxpool = nn.Identity()
        if isinstance(conv1, nn.Conv2d):
            root.conv1 = _conv3x3(conv1)
            return True
        first = conv1[0] if isinstance(conv1, nn.Sequential) else None
        if isinstance(first, nn.Conv2d):
            first.stride = (1, 1)
            return False
        return None
    conv_stem = getattr(root, "conv_stem", None)
    if isinstance(conv_stem, nn.Conv2d):
        conv_stem.stride = (1, 1)
        return False
    if isinstance(stem, nn.Sequential):
        first = stem[0]
        if isinstance(first, nn.Conv2d) and first.stride == first.kernel_size:  # patchify
            stem[0] = _conv3x3(first)  # ConvNeXt's 4x4 stride-4 stem
            return True
    return None


def _conv3x3(old: nn.Conv2d) -> nn.Conv2d:
    return nn.Conv2d(
        old.in_channels, old.out_channels, 3, stride=1, padding=1, bias=old.bias is not None
    )
