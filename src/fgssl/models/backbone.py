"""timm backbones that tap their last stages and can stop early."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from fgssl.errors import ConfigError, PretrainedWeightsError
from fgssl.models.stems import apply_stem

__all__ = ["TappedBackbone", "create_timm_model", "fixed_input_size"]


def fixed_input_size(name: str) -> int | None:
    """The input side (px) a timm model is built for when it takes no other size (ViT,
    Swin, ... : timm's ``pretrained_cfg.fixed_input_size``), else None (CNNs take any)."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.fixed_input_size:
        return None
    return int(cfg.input_size[-1])


def create_timm_model(
    name: str,
    *,
    pretrained: bool = False,
    pretrained_weights: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    stem: str = "imagenet",
    **kwargs: Any,
) -> nn.Module:
    """``timm.create_model`` with local weights and a clear error when weights cannot be had.

    Args:
        name: any timm model name.
        pretrained: load ImageNet weights (from ``pretrained_weights`` when given, else from
            the Hugging Face hub or its local cache).
        pretrained_weights: a local ``.safetensors``/``.pth``/``.bin`` file of timm weights.
        image_size: side (px) of the square images the model will see. A model with a fixed
            input size (:func:`fixed_input_size`) is built for it (timm's ``img_size``;
            pretrained position embeddings are resampled by timm) and tried once on such an
            image; other models take any size and ignore it.

    Raises:
        ConfigError: an unknown name, or a fixed-size model that cannot take ``image_size``
            (the message names the size it was made for).
        PretrainedWeightsError: the weights cannot be had.
    """
    overlay = _weights_overlay(name, pretrained_weights) if pretrained else None
    if name not in timm.list_models():
        raise ConfigError(
            f"unknown timm backbone {name!r}: see timm.list_models() for the available names"
        )
    fixed = fixed_input_size(name) if image_size is not None else None
    resized = fixed is not None and image_size != fixed
    size: dict[str, Any] = {"img_size": image_size} if resized else {}
    try:
        model = timm.create_model(
            name, pretrained=pretrained, pretrained_cfg_overlay=overlay, **size, **kwargs
        )
        if resized:
            _run_once(model, image_size)
    except (TypeError, AssertionError, OSError, RuntimeError, ValueError) as error:
        if (
            fixed is not None
            and resized
            and not _builds_at(name, kwargs, image_size, fixed)
            and _builds_at(name, kwargs, fixed, fixed)
        ):
            raise _size_error(name, image_size, fixed, error) from error
        if not pretrained or isinstance(error, (TypeError, AssertionError)):
            raise
        raise PretrainedWeightsError(
            f"could not load pretrained ImageNet weights for backbone {name!r} ({error}). "
            "Without internet access, download the weights elsewhere (e.g. "
            f"https://huggingface.co/timm/{name}) and set model.net.pretrained_weights=/path/"
            "to/model.safetensors, or train from scratch with model.net.pretrained=false."
        ) from error
    apply_stem(model, stem, name=name, pretrained=pretrained)
    return model


def _weights_overlay(
    name: str, pretrained_weights: str | os.PathLike[str] | None
) -> dict[str, Any] | None:
    """timm's ``pretrained_cfg_overlay`` that reads the weights from a local file (None:
    timm's own source); :class:`PretrainedWeightsError` when the file does not exist.

    ``custom_load`` says the file's format: a state dict, unless it is an ``.npz`` of the
    original JAX weights. The registry's value describes its own source (ViT's default
    tags: JAX ``.npz``); timm before 1.0.31 kept it for a local file and failed to read a
    ``.pth`` or ``.safetensors`` there."""
    if pretrained_weights is None:
        return None
    path = Path(pretrained_weights).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(
            f"model.net.pretrained_weights={str(path)!r} does not exist: expected a timm "
            "weights file (.safetensors, .pth or .bin) for backbone " + repr(name)
        )
    return {"file": str(path), "custom_load": path.suffix.lower() == ".npz"}


def _run_once(model: nn.Module, image_size: int | None) -> None:
    """Run ``model`` once on a blank image: some fixed-size models accept ``img_size`` at
    creation but fail in the forward pass (windows or pooling that do not divide it)."""
    assert image_size is not None
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, image_size, image_size))
    finally:
        model.train(training)


def _builds_at(name: str, kwargs: dict[str, Any], size: int | None, fixed: int) -> bool:
    """Whether the model, without pretrained weights, builds and runs on ``size`` px images
    (to tell an error of the input size from one of the weights or other settings)."""
    extra: dict[str, Any] = {"img_size": size} if size != fixed else {}
    try:
        _run_once(timm.create_model(name, pretrained=False, **extra, **kwargs), size)
    except Exception:  # any failure: the original error is the one to report
        return False
    return True


def _size_error(name: str, image_size: int | None, fixed: int, error: Exception) -> ConfigError:
    return ConfigError(
        f"backbone {name!r} has a fixed input size and cannot be built for "
        f"data.image_size={image_size} ({error}): set data.image_size={fixed} (the size it was "
        "made for) or a size that its patches and windows divide"
    )


class TappedBackbone(nn.Module):
    """A timm ``features_only`` backbone returning its last ``num_indices`` feature maps
    (timm's ``out_indices``; fgssl calls them the tapped stages).

    ``forward_until(x, tap)`` returns tapped stage ``tap`` and, for models that implement
    timm's ``forward_intermediates`` (ResNets, EfficientNets, ConvNeXts, ViTs, ...), runs no
    deeper stage than that one.

    Its "stages" are timm's feature indices: for a CNN the last ``num_indices`` resolution
    stages (strides 8, 16, 32 for three), for a plain ViT the last ``num_indices``
    transformer blocks, which all share one resolution (image_size / patch size); Swin and
    other hierarchical transformers have stages of decreasing resolution like a CNN.
    ``image_size`` builds a backbone with a fixed input size for that size, and ``stem``
    chooses its input stem (see :func:`create_timm_model`).
    """

    def __init__(
        self,
        name: str,
        num_indices: int = 3,
        *,
        pretrained: bool = False,
        pretrained_weights: str | None = None,
        image_size: int | None = None,
        stem: str = "imagenet",
    ):
        super().__init__()
        if num_indices < 1:
            raise ValueError(f"num_indices must be >= 1, got {num_indices}")
        out_indices = tuple(range(-num_indices, 0))
        common: dict[str, Any] = dict(
            pretrained=pretrained,
            pretrained_weights=pretrained_weights,
            image_size=image_size,
            stem=stem,
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
                f"backbone {name!r} has fewer feature stages than the {num_indices} "
                "tapped stages asked for (model.net.num_granularities, one per grid of "
                f"schedule.grids): {error}"
            ) from error
        self.channels: list[int] = list(self.features.feature_info.channels())
        self.num_indices = num_indices

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.features(x))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the backbone's activations in the backward pass (timm's checkpointing)."""
        model = self.features.model if self.can_stop_early else self.features
        model.set_grad_checkpointing(enable)

    def forward_until(self, x: torch.Tensor, tap: int) -> torch.Tensor:
        """Feature map of tapped stage ``tap`` (0 = shallowest tapped stage, i.e. timm's
        ``out_indices[tap]``)."""
        if not 0 <= tap < self.num_indices:
            raise IndexError(f"tap must be in [0, {self.num_indices}), got {tap}")
        if not self.can_stop_early:
            return self.forward(x)[tap]
        index = self.features.out_indices[tap]
        (feature,) = self.features.model.forward_intermediates(
            x, indices=[index], stop_early=True, intermediates_only=True
        )
        return feature
