"""The reference point: a timm backbone with one linear classifier, trained on whole images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fgssl.models.backbone import create_timm_model
from fgssl.models.base import NetOutput, StagedNet, StageOutput
from fgssl.models.heads import make_projector

__all__ = ["BaselineNet"]


class BaselineNet(StagedNet):
    """Backbone + global pooling + linear classifier: one stage, the whole image.

    ``image_size`` (px) builds a backbone with a fixed input size (ViT, Swin, ...) for
    that size; CNNs ignore it. ``stem="cifar"`` keeps small images at full resolution
    before the first block (see :func:`fgssl.models.backbone.create_timm_model`).
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        *,
        pretrained: bool = False,
        pretrained_weights: str | None = None,
        projector: Sequence[int] = (),
        activation_checkpointing: bool = False,
        image_size: int | None = None,
        stem: str = "imagenet",
    ):
        super().__init__()
        model: Any = self._init_backbone(
            num_classes,
            create_timm_model,
            activation_checkpointing=activation_checkpointing,
            name=backbone,
            pretrained=pretrained,
            pretrained_weights=pretrained_weights,
            image_size=image_size,
            stem=stem,
            num_classes=num_classes,
        )
        self.model = model
        self.projectors = nn.ModuleList([make_projector(model.num_features, projector)])

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("whole",)

    def class_layers(self) -> list[nn.Module]:
        return [self.model.get_classifier()]

    def backbone_parameters(self) -> list[nn.Parameter]:
        classifier = set(map(id, self.model.get_classifier().parameters()))
        return [p for p in self.model.parameters() if id(p) not in classifier]

    def forward_stage(self, x: torch.Tensor, stage: int = 0) -> StageOutput:
        if stage != 0:
            raise IndexError(f"BaselineNet has one stage (0), got {stage}")
        embedding = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return StageOutput(logits=self.model.get_classifier()(embedding), embedding=embedding)

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.model.forward_head(
            self.model.forward_features(x), pre_logits=True
        )
        return pooled

    def forward(self, x: torch.Tensor) -> NetOutput:
        out = self.forward_stage(x)
        return NetOutput(logits=[out.logits], embeddings=[out.embedding])
