"""Parameter groups and the learning-rate schedule of FGSSLModule."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from fgssl.models.base import StagedNet

__all__ = ["parameter_groups", "warmup_cosine"]


def parameter_groups(net: StagedNet, lr: float, backbone_lr_scale: float) -> list[dict[str, Any]]:
    """Two SGD groups: the new layers at ``lr``, the (pretrained) backbone at
    ``lr * backbone_lr_scale``. Empty groups are left out."""
    backbone_ids = {id(p) for p in net.backbone_parameters()}
    params: list[nn.Parameter] = list(net.parameters())
    groups = [
        {
            "params": [p for p in params if id(p) not in backbone_ids],
            "lr": lr,
            "name": "new_layers",
        },
        {
            "params": [p for p in params if id(p) in backbone_ids],
            "lr": lr * backbone_lr_scale,
            "name": "backbone",
        },
    ]
    return [group for group in groups if group["params"]]


def warmup_cosine(step: int, *, total: int, warmup: int, floor: float) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine down to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
