"""Frozen features of a network, the input of the self-supervised evaluation protocols."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from fgssl.errors import ConfigError
from fgssl.models.base import StagedNet

__all__ = ["FEATURES", "extract_features"]

FEATURES = ("backbone", "embeddings")
"""What the SSL protocols evaluate: ``backbone``, the global-average-pooled last backbone
stage (the standard protocol's representation), or ``embeddings``, every head's embedding
of the whole image, concatenated (the vectors the Barlow Twins loss compares)."""


@torch.no_grad()
def extract_features(
    net: StagedNet,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str = "cpu",
    features: str = "backbone",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, D) and labels (N,) of every image, in eval mode, without gradients;
    ``features`` is one of :data:`FEATURES`."""
    if features not in FEATURES:
        raise ConfigError(f"features must be one of {list(FEATURES)}, got {features!r}")
    net.eval().to(device)
    rows, labels = [], []
    for batch in batches:
        images = batch["image"].to(device)
        if features == "backbone":
            rows.append(net.backbone_features(images).float().cpu())
        else:
            rows.append(torch.cat(net(images).embeddings, dim=1).float().cpu())
        labels.append(batch["label"].cpu())
    if not rows:
        raise ValueError("no images to extract features from: the data loader is empty")
    return torch.cat(rows), torch.cat(labels).long()
