"""The optimizer and learning-rate schedule of a staged network in a LightningModule with
manual optimisation. :class:`fgssl.module.FGSSLModule` inherits them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.core.optimizer import LightningOptimizer

from fgssl.accumulation import groups_per_epoch
from fgssl.errors import ConfigError
from fgssl.models.base import StagedNet
from fgssl.optim import (
    build_optimizer,
    check_fused_support,
    implementation_options,
    lr_multiplier,
    parameter_groups,
    start_fused_momentum,
)

__all__ = ["OPTIMIZATION_OPTIONS", "OptimizedModule", "OptimizerFactory"]

OPTIMIZATION_OPTIONS = (
    "lr",
    "backbone_lr_scale",
    "warmup_epochs",
    "min_lr_scale",
    "zero_grad_to_none",
    "grad_clip",
    "lr_schedule",
    "lr_milestones",
    "lr_gamma",
    "accumulate_grad_batches",
)
"""The keyword arguments of :meth:`OptimizedModule._init_optimization` that FGSSLModule
takes under the same names (and saves as hyper-parameters)."""

OptimizerFactory = Callable[..., torch.optim.Optimizer]
"""Builds the optimizer from parameter groups, e.g. a ``functools.partial`` of a torch.optim
class; with an ``implementation`` other than auto it is also given ``foreach`` and ``fused``."""


def default_optimizer(
    params: Iterable[dict[str, Any]], **implementation: Any
) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 5e-4 (PMG's optimizer)."""
    return torch.optim.SGD(params, lr=2e-3, momentum=0.9, weight_decay=5e-4, **implementation)


class OptimizedModule(pl.LightningModule):
    """One optimizer over :func:`fgssl.optim.parameter_groups` with a per-batch warm-up +
    cosine (or step-decay) schedule and optional gradient clipping; a subclass sets
    ``self.net`` and calls :meth:`_init_optimization` in its ``__init__`` (the arguments
    are FGSSLModule's).
    ``implementation`` (:data:`fgssl.optim.OPTIMIZER_IMPLEMENTATIONS`) also holds for an
    optimizer restored from a checkpoint saved with another one."""

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
        implementation: str = "auto",
        lr_schedule: str = "cosine",
        lr_milestones: Sequence[float] = (0.5, 0.75),
        lr_gamma: float = 0.1,
        accumulate_grad_batches: int = 1,
    ) -> None:
        implementation_options(implementation)  # ConfigError for an unknown name
        lr_multiplier(  # ConfigError for an unknown schedule or bad milestones, now
            lr_schedule, total=1, warmup=0, floor=0.0, milestones=lr_milestones, gamma=lr_gamma
        )
        self.lr_schedule = lr_schedule
        self.lr_milestones = tuple(lr_milestones)
        self.lr_gamma = lr_gamma
        self.optimizer_factory = optimizer or default_optimizer
        self.optimizer_implementation = implementation
        self.lr = lr
        self.backbone_lr_scale = backbone_lr_scale
        self.warmup_epochs = warmup_epochs
        self.min_lr_scale = min_lr_scale
        self.zero_grad_to_none = zero_grad_to_none
        self.grad_clip = grad_clip
        if (
            isinstance(accumulate_grad_batches, bool)
            or not isinstance(accumulate_grad_batches, int)
            or accumulate_grad_batches < 1
        ):
            raise ConfigError(
                f"optim.accumulate_grad_batches={accumulate_grad_batches!r}: expected a whole "
                "number >= 1 (1: no accumulation)"
            )
        self.accumulate_grad_batches = accumulate_grad_batches
        """Batches whose gradients make one optimizer step (per stage in progressive mode)."""

    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.net, self.lr, self.backbone_lr_scale)
        if self.optimizer_implementation == "fused":
            self._check_fused()
        optimizer = build_optimizer(self.optimizer_factory, groups, self.optimizer_implementation)
        lr_lambda = lr_multiplier(  # the LR schedule (not the patch schedule)
            self.lr_schedule,
            total=self._schedule_steps(),
            warmup=int(self.warmup_epochs * self._steps_per_epoch()),
            floor=self.min_lr_scale,
            milestones=self.lr_milestones,
            gamma=self.lr_gamma,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _check_fused(self) -> None:
        """Refuse, before the first step, a fused optimizer that cannot run here."""
        check_fused_support(self.net.parameters())
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if self.grad_clip and scaler is not None:
            raise ConfigError(
                "optim.implementation=fused with optim.grad_clip under a 16-bit gradient "
                "scaler (trainer.precision=16-mixed): a fused optimizer unscales the "
                "gradients inside its step, so they cannot be clipped before it; use "
                "optim.implementation=foreach, or trainer.precision=bf16-mixed"
            )

    def on_train_start(self) -> None:
        super().on_train_start()
        # after a checkpoint's optimizer state was restored, before the first step
        start_fused_momentum(self._optimizer().optimizer)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The saved optimizer state keeps the implementation it was saved with (torch.optim
        restores every group setting); make it this module's, before it is restored."""
        super().on_load_checkpoint(checkpoint)
        options = implementation_options(self.optimizer_implementation)
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                group.update({key: value for key, value in options.items() if key in group})

    def _batches_per_epoch(self) -> int:
        total = self.trainer.estimated_stepping_batches
        epochs = max(self.trainer.max_epochs or 1, 1)
        return max(int(total) // epochs, 1)

    def _steps_per_epoch(self) -> int:
        """Learning-rate steps per epoch: one per batch, or per group of
        ``accumulate_grad_batches`` (the last group of an epoch may be shorter)."""
        return groups_per_epoch(self._batches_per_epoch(), self.accumulate_grad_batches)

    def _schedule_steps(self) -> int:
        """Learning-rate steps of the whole phase (at least 1)."""
        total = int(self.trainer.estimated_stepping_batches)
        every = self.accumulate_grad_batches
        if every == 1:
            return max(total, 1)
        per_epoch = self._batches_per_epoch()
        full, rest = divmod(total, per_epoch)
        return max(full * self._steps_per_epoch() + math.ceil(rest / every), 1)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.grad_clip:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm"
            )

    def _optimizer(self) -> LightningOptimizer:
        optimizer = self.optimizers()
        assert isinstance(optimizer, LightningOptimizer), "FGSSLModule uses one optimizer"
        return optimizer
