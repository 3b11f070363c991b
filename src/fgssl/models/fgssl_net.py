"""FGSSLNet: a timm backbone, one granularity block per tapped stage, and a concat branch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fgssl.models.backbone import TappedBackbone
from fgssl.models.base import NetOutput, StagedNet, StageOutput
from fgssl.models.heads import EmbeddingHead, GranularityBlock, make_projector

__all__ = ["FGSSLNet"]


class FGSSLNet(StagedNet):
    """The FG-SSL / PMG network.

    Stages ``0..K-1`` are the granularity heads (stage ``k`` uses tapped backbone stage ``k``,
    the shallowest first); stage ``K`` is the concat head over all K pooled vectors.

    Args:
        backbone: timm model name (any model that supports ``features_only``).
        num_classes: classifier outputs.
        num_granularities: K, the number of tapped stages.
        feat_dim: embedding size; hidden_dim: width of the 3x3 convolutions.
        pretrained: ImageNet weights for the backbone; ``pretrained_weights`` a local file.
        projector: hidden/output sizes of an optional Barlow Twins projector per stage.
        activation_checkpointing: recompute the backbone's activations during the backward
            pass instead of storing them (less memory for large images, ~30% more compute).
        image_size: side (px) of the input images. Backbones with a fixed input size (ViT,
            Swin, ...) are built for it; CNNs take any size and ignore it (see
            :func:`fgssl.models.backbone.create_timm_model`). None: timm's default size.
        stem: ``imagenet`` (timm's stem) or ``cifar`` (no downsampling before the first
            block, for 28-64 px images; :func:`fgssl.models.stems.apply_stem`).
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        *,
        num_granularities: int = 3,
        feat_dim: int = 512,
        hidden_dim: int = 1024,
        pretrained: bool = False,
        pretrained_weights: str | None = None,
        projector: Sequence[int] = (),
        activation_checkpointing: bool = False,
        image_size: int | None = None,
        stem: str = "imagenet",
    ):
        super().__init__()
        self.num_granularities = num_granularities
        self.backbone = self._init_backbone(
            num_classes,
            TappedBackbone,
            activation_checkpointing=activation_checkpointing,
            name=backbone,
            num_indices=num_granularities,
            pretrained=pretrained,
            pretrained_weights=pretrained_weights,
            image_size=image_size,
            stem=stem,
        )
        self.blocks = nn.ModuleList(
            GranularityBlock(channels, feat_dim, hidden_dim) for channels in self.backbone.channels
        )
        head_inputs = [hidden_dim] * num_granularities + [hidden_dim * num_granularities]
        self.heads = nn.ModuleList(EmbeddingHead(dim, feat_dim) for dim in head_inputs)
        self.classifiers = nn.ModuleList(nn.Linear(feat_dim, num_classes) for _ in head_inputs)
        self.projectors = nn.ModuleList(make_projector(feat_dim, projector) for _ in head_inputs)

    @property
    def stage_names(self) -> list[str]:
        """stage1..stageK (the granularity heads, finest puzzle first), then concat."""
        return [f"stage{k + 1}" for k in range(self.num_granularities)] + ["concat"]

    def class_layers(self) -> list[nn.Module]:
        return list(self.classifiers)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_until(x, self.num_granularities - 1).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> NetOutput:
        """All K+1 heads on ``x``, with the backbone run once."""
        pooled = [block(f) for block, f in zip(self.blocks, self.backbone(x), strict=True)]
        inputs = [*pooled, torch.cat(pooled, dim=1)]
        embeddings = [head(v) for head, v in zip(self.heads, inputs, strict=True)]
        logits = [clf(e) for clf, e in zip(self.classifiers, embeddings, strict=True)]
        return NetOutput(logits=logits, embeddings=embeddings)

    def forward_stage(self, x: torch.Tensor, stage: int) -> StageOutput:
        """Only what stage ``stage`` needs: the backbone up to its tapped stage and its own head.

        The concat stage (``stage == K``) runs the whole backbone and every block.
        """
        if stage == self.num_granularities:
            features = self.backbone(x)
            pooled = torch.cat([b(f) for b, f in zip(self.blocks, features, strict=True)], dim=1)
        elif 0 <= stage < self.num_granularities:
            pooled = self.blocks[stage](self.backbone.forward_until(x, stage))
        else:
            raise IndexError(f"stage must be in [0, {self.num_stages}), got {stage}")
        embedding = self.heads[stage](pooled)
        return StageOutput(logits=self.classifiers[stage](embedding), embedding=embedding)
