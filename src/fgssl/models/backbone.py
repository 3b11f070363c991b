"""timm backbones that tap their last stages and can stop early."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from fgssl.errors import ConfigError, PretrainedWeightsError

__all__ = ["TappedBackbone", "create_timm_model"]


def create_timm_model(
    name: str,
    *,
    pretrained: bool = False,
    pretrained_weights: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """``timm.create_model`` with local weights and a clear error when weights cannot be had.

    Args:
        name: any timm model name.
        pretrained: load ImageNet weights (from ``pretrained_weights`` when given, else from
            the Hugging Face hub or its local cache).
        pretrained_weights: a local ``.safetensors``/``.pth``/``.bin`` file of timm weights.
    """
    overlay: dict[str, Any] | None = None
    if pretrained_weights is not None and pretrained:
        path = Path(pretrained_weights).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(
                f"model.pretrained_weights={str(path)!r} does not exist: expected a timm weights "
                "file (.safetensors, .pth or .bin) for backbone " + repr(name)
            )
        overlay = {"file": str(path)}
    if name not in timm.list_models():
        raise ConfigError(
            f"unknown timm backbone {name!r}: see timm.list_models() for the available names"
        )
    try:
        return timm.create_model(
            name, pretrained=pretrained, pretrained_cfg_overlay=overlay, **kwargs
        )
    except (OSError, RuntimeError, ValueError) as error:
        if not pretrained:
            raise
        raise PretrainedWeightsError(
            f"could not load pretrained ImageNet weights for backbone {name!r} ({error}). "
            "Without internet access, download the weights elsewhere (e.g. "
            f"https://huggingface.co/timm/{name}) and set model.pretrained_weights=/path/to/"
            "model.safetensors, or train from scratch with model.pretrained=false."
        ) from error


class TappedBackbone(nn.Module):
    """A timm ``features_only`` backbone returning its last ``num_levels`` stages.

    ``forward_until(x, level)`` returns one tapped stage and, for models that implement
    timm's ``forward_intermediates`` (ResNets, EfficientNets, ConvNeXts, ViTs, ...), runs no
    deeper stage than that one.
    """

    def __init__(
        self,
        name: str,
        num_levels: int = 3,
        *,
        pretrained: bool = False,
        pretrained_weights: str | None = None,
    ):
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}")
        out_indices = tuple(range(-num_levels, 0))
        common: dict[str, Any] = dict(
            pretrained=pretrained,
            pretrained_weights=pretrained_weights,
            features_only=True,
            out_indices=out_indices,
        )
        self.features: Any
        try:
            try:
                self.features = create_timm_model(name, feature_cls="getter", **common)
                self.can_stop_early = True
            except (AttributeError, TypeError, NotImplementedError):
                self.features = create_timm_model(name, **common)
                self.can_stop_early = False
        except (AssertionError, IndexError) as error:  # timm's check of out_indices
            raise ConfigError(
                f"backbone {name!r} has fewer feature stages than the {num_levels} "
                f"granularities asked for (model.num_granularities): {error}"
            ) from error
        self.channels: list[int] = list(self.features.feature_info.channels())
        self.reductions: list[int] = list(self.features.feature_info.reduction())
        self.num_levels = num_levels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.features(x))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the backbone's activations in the backward pass (timm's checkpointing)."""
        model = self.features.model if self.can_stop_early else self.features
        model.set_grad_checkpointing(enable)

    def forward_until(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """Feature map of tapped stage ``level`` (0 = shallowest tapped stage)."""
        if not 0 <= level < self.num_levels:
            raise IndexError(f"level must be in [0, {self.num_levels}), got {level}")
        if not self.can_stop_early:
            return self.forward(x)[level]
        index = self.features.out_indices[level]
        (feature,) = self.features.model.forward_intermediates(
            x, indices=[index], stop_early=True, intermediates_only=True
        )
        return feature
