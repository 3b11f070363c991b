"""What every fgssl network provides, and what it returns."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["EVAL_HEADS", "NetOutput", "StageOutput", "StagedNet"]

EVAL_HEADS = ("combined", "concat")
"""The predictions evaluated: the sum of all heads' logits (``NetOutput.combined``), and
the concat head alone (``NetOutput.concat``)."""


@dataclass
class StageOutput:
    """One training stage's head: its logits (B, num_classes) and embedding (B, D)."""

    logits: torch.Tensor
    embedding: torch.Tensor


@dataclass
class NetOutput:
    """Every head of a network on one input; the last head is the whole-image (concat) head."""

    logits: list[torch.Tensor]
    embeddings: list[torch.Tensor]

    @property
    def combined(self) -> torch.Tensor:
        """Sum of the logits of all heads: the prediction the method reports."""
        return torch.stack(self.logits).sum(dim=0)

    @property
    def concat(self) -> torch.Tensor:
        """Logits of the concat head alone."""
        return self.logits[-1]

    def eval_logits(self) -> dict[str, torch.Tensor]:
        """The logits of each evaluated prediction, by name (:data:`EVAL_HEADS`)."""
        return {"combined": self.combined, "concat": self.concat}


BackboneT = TypeVar("BackboneT", bound=nn.Module)


class StagedNet(nn.Module, abc.ABC):
    """A network trained in stages: head ``k`` is trained by stage ``k``; the last head sees
    whole images. :class:`fgssl.FGSSLModule` trains any subclass."""

    num_classes: int
    projectors: nn.ModuleList

    @property
    @abc.abstractmethod
    def stage_names(self) -> Sequence[str]:
        """One name per head (and stage); the last is the whole-image head."""

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> NetOutput:
        """Every head on ``x``."""

    @abc.abstractmethod
    def forward_stage(self, x: torch.Tensor, stage: int) -> StageOutput:
        """Only what head ``stage`` needs to produce its logits and embedding."""

    @abc.abstractmethod
    def backbone_parameters(self) -> list[nn.Parameter]:
        """The pretrained part (trained at a lower learning rate)."""

    @abc.abstractmethod
    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) global-average-pooled features of the backbone's last stage: the
        representation that the standard linear-probe and k-NN protocols evaluate."""

    def _init_backbone(
        self,
        num_classes: int,
        build: Callable[..., BackboneT],
        /,
        *,
        activation_checkpointing: bool,
        **build_kwargs: Any,
    ) -> BackboneT:
        """The set-up every subclass shares: check and keep ``num_classes``, build the
        backbone with ``build(**build_kwargs)`` and turn on its activation checkpointing
        (timm's ``set_grad_checkpointing``) when asked.

        Raises:
            ValueError: ``num_classes`` < 2.
        """
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        backbone = build(**build_kwargs)
        if activation_checkpointing:
            timm_model: Any = backbone  # timm models and TappedBackbone have the method
            timm_model.set_grad_checkpointing(True)
        return backbone

    def class_layers(self) -> list[nn.Module]:
        """The layers whose outputs are the classes (row ``c`` of their weight and entry
        ``c`` of their bias belong to class ``c``): what depends on the label set, and what
        ``init_from`` reorders by class name or leaves out. A subclass that does not say
        cannot be started from another run's network."""
        raise NotImplementedError(f"{type(self).__name__} does not name its class layers")

    @property
    def num_stages(self) -> int:
        return len(self.stage_names)

    def project(self, embedding: torch.Tensor, stage: int) -> torch.Tensor:
        """Stage ``stage``'s Barlow Twins projector (the identity unless configured)."""
        projected: torch.Tensor = self.projectors[stage](embedding)
        return projected
