"""The optimizer and learning-rate schedule of a staged network in a LightningModule with
manual optimisation. :class:`fgssl.module.FGSSLModule` inherits them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.core.optimizer import LightningOptimizer

from fgssl.models.base import StagedNet
from fgssl.optim import parameter_groups, warmup_cosine

__all__ = ["OptimizedModule", "OptimizerFactory"]

OptimizerFactory = Callable[[Iterable[dict[str, Any]]], torch.optim.Optimizer]


def default_optimizer(params: Iterable[dict[str, Any]]) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 5e-4 (PMG's optimizer)."""
    return torch.optim.SGD(params, lr=2e-3, momentum=0.9, weight_decay=5e-4)


class OptimizedModule(pl.LightningModule):
    """One optimizer over :func:`fgssl.optim.parameter_groups` with a per-batch warm-up +
    cosine schedule and optional gradient clipping; a subclass sets ``self.net`` and calls
    :meth:`_init_optimization` in its ``__init__`` (the arguments are FGSSLModule's)."""

    net: StagedNet

    def _init_optimization(
        self,
        optimizer: OptimizerFactory | None,
        *,
        lr: float,
        backbone_lr_scale: float,
        warmup_epochs: float,
        min_lr_scale: float,
        zero_grad_to_none: bool,
        grad_clip: float | None,
    ) -> None:
        self.optimizer_factory = optimizer or default_optimizer
        self.lr = lr
        self.backbone_lr_scale = backbone_lr_scale
        self.warmup_epochs = warmup_epochs
        self.min_lr_scale = min_lr_scale
        self.zero_grad_to_none = zero_grad_to_none
        self.grad_clip = grad_clip

    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.net, self.lr, self.backbone_lr_scale)
        optimizer = self.optimizer_factory(groups)
        lr_lambda = functools.partial(  # the LR schedule (not the patch schedule)
            warmup_cosine,
            total=max(int(self.trainer.estimated_stepping_batches), 1),
            warmup=int(self.warmup_epochs * self._batches_per_epoch()),
            floor=self.min_lr_scale,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _batches_per_epoch(self) -> int:
        total = self.trainer.estimated_stepping_batches
        epochs = max(self.trainer.max_epochs or 1, 1)
        return max(int(total) // epochs, 1)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.grad_clip:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm"
            )

    def _optimizer(self) -> LightningOptimizer:
        optimizer = self.optimizers()
        assert isinstance(optimizer, LightningOptimizer), "FGSSLModule uses one optimizer"
        return optimizer
