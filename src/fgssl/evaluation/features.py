"""Frozen features of a network, the input of the self-supervised evaluation protocols."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from fgssl.models.base import StagedNet

__all__ = ["extract_features"]


@torch.no_grad()
def extract_features(
    net: StagedNet,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, D) and labels (N,) of every image, in eval mode, without gradients.

    The features are the embeddings of all heads on the whole image, concatenated: the
    vectors the pretrain phase trains with Barlow Twins (for a BaselineNet, its pooled
    backbone features).
    """
    net.eval().to(device)
    features, labels = [], []
    for batch in batches:
        output = net(batch["image"].to(device))
        features.append(torch.cat(output.embeddings, dim=1).float().cpu())
        labels.append(batch["label"].cpu())
    if not features:
        raise ValueError("no images to extract features from: the data loader is empty")
    return torch.cat(features), torch.cat(labels).long()
