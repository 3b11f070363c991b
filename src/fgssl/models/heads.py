"""Building blocks of FGSSLNet: granularity blocks, embedding heads, projectors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["EmbeddingHead", "GranularityBlock", "make_projector"]


class GranularityBlock(nn.Sequential):
    """conv1x1 -> BN -> ReLU -> conv3x3 -> BN -> ReLU, then global max pooling to (B, hidden)."""

    def __init__(self, in_channels: int, feat_dim: int, hidden_dim: int):
        super().__init__(
            nn.Conv2d(in_channels, feat_dim, kernel_size=1, bias=False),
            nn.BatchNorm2d(feat_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(feat_dim, hidden_dim, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return super().forward(input).amax(dim=(2, 3))


class EmbeddingHead(nn.Sequential):
    """BN1d(in) -> Linear(in -> out) -> BN1d(out) -> ELU: the embedding Barlow Twins compares."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(
            nn.BatchNorm1d(in_dim),
            nn.Linear(in_dim, out_dim),
            nn.BatchNorm1d(out_dim),
            nn.ELU(inplace=True),
        )


def make_projector(in_dim: int, dims: Sequence[int]) -> nn.Module:
    """Barlow Twins projector MLP: (Linear -> BN -> ReLU) for all but the last layer.

    An empty ``dims`` gives the identity (no projector).
    """
    if not dims:
        return nn.Identity()
    layers: list[nn.Module] = []
    previous = in_dim
    for index, dim in enumerate(dims):
        layers.append(nn.Linear(previous, dim, bias=index == len(dims) - 1))
        if index < len(dims) - 1:
            layers += [nn.BatchNorm1d(dim), nn.ReLU(inplace=True)]
        previous = dim
    return nn.Sequential(*layers)
