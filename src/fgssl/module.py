"""FGSSLModule: the LightningModule that runs the stages of FG-SSL and PMG training."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from fgssl._version import __version__
from fgssl.errors import ConfigError
from fgssl.losses import build_objective
from fgssl.models.base import StagedNet
from fgssl.models.running_stats import BN_RUNNING_STATS, frozen_running_stats
from fgssl.module_losses import LossRecordingModule
from fgssl.module_optim import OptimizedModule, OptimizerFactory
from fgssl.module_passes import PassesModule
from fgssl.ops.jigsaw import PERMUTATIONS, Permutation, jigsaw
from fgssl.stages import Stage, plan_stages
from fgssl.steps import fused_step, fused_view_step, progressive_step

__all__ = ["FGSSLModule"]

Phase = Literal["pretrain", "finetune"]
StepMode = Literal["progressive", "fused"]


def _check_choices(phase: str, step_mode: str, permutation: str, bn_running_stats: str) -> None:
    """One-line errors for the options that take one of a few names."""
    if bn_running_stats not in BN_RUNNING_STATS:
        raise ConfigError(
            f"bn_running_stats must be one of {list(BN_RUNNING_STATS)}, got {bn_running_stats!r}"
        )
    if phase not in ("pretrain", "finetune"):
        raise ConfigError(f"phase must be 'pretrain' or 'finetune', got {phase!r}")
    if step_mode not in ("progressive", "fused"):
        raise ConfigError(f"step_mode must be 'progressive' or 'fused', got {step_mode!r}")
    if permutation not in PERMUTATIONS:
        raise ConfigError(
            f"schedule.permutation must be one of {list(PERMUTATIONS)}, got {permutation!r}"
        )


class FGSSLModule(OptimizedModule, LossRecordingModule, PassesModule):
    """Trains an FGSSLNet (or BaselineNet) in one phase with manual optimisation.

    A batch walks ``net.num_stages`` stages; stage k feeds ``jigsaw(image, schedule[k])`` to
    head k and the last stage feeds the whole image to the concat head (weight
    ``whole_image_weight``). In the ``pretrain`` phase a stage's loss is Barlow Twins between
    the puzzle's embedding and the same head's embedding of ``batch["view"]``; in
    ``finetune`` it is cross-entropy of the head's logits. ``permutation`` is how the
    puzzles shuffle their tiles (:func:`fgssl.ops.jigsaw.random_permutations`; by default
    every tile moves).

    ``step_mode="progressive"`` takes one optimizer step per stage (the paper, PMG);
    ``"fused"`` sums the stage losses and steps once per batch.

    Args:
        net: the network, or a Hydra config (mapping with ``_target_``) that builds it, which
            is then saved in the checkpoint's hyper-parameters.
        optimizer: a factory taking parameter groups (Hydra ``_partial_``); default SGD with
            momentum 0.9, weight decay 5e-4. New layers use ``lr``, the backbone
            ``lr * backbone_lr_scale``; a cosine schedule (after ``warmup_epochs`` of linear
            warm-up) decays both to ``min_lr_scale`` of their start, stepped once per batch.
        lr_schedule: ``cosine`` (above) or ``multistep``: the rates times ``lr_gamma`` at
            each of ``lr_milestones`` (fractions of the phase's steps), after the warm-up
            (:func:`fgssl.optim.multistep`).
        optimizer_implementation: ``auto``, ``foreach``, ``fused`` or ``for_loop``: the
            optimizer's ``foreach``/``fused`` arguments (:mod:`fgssl.optim`).
        zero_grad_to_none: False (as PMG) zeroes gradients, so parameters a stage does not
            use still receive momentum and weight decay at its step; True skips them.
        grad_clip: max gradient norm, applied to unscaled gradients before every step.
        barlow_lambda: off-diagonal weight of the Barlow Twins loss.
        barlow_scale: factor on every Barlow Twins loss (what is logged and optimised). The
            loss sums over the D embedding dimensions, so its gradients are about D times
            larger than a cross-entropy's; with plain SGD that inflates the weight norms of
            batch-normalised layers and slows finetuning down. 1/D is a sensible choice
            when the pretrain phase uses the finetune phase's learning rate.
        objective: the self-supervised loss of the pretrain phase, a config with a
            ``_target_`` (e.g. ``fgssl.losses.VICRegLoss``) called with two (N, D) embedding
            batches; None: Barlow Twins with ``barlow_lambda`` and ``barlow_scale``.
        ordinal: the labels are grades (adds quadratic weighted kappa to the metrics).
        class_names: one name per class; ISIC 2017's ``melanoma`` and ``seborrheic_keratosis``
            add their one-vs-rest AUROCs and ``mean_auroc`` to the metrics.
        seed: seeds the jigsaw permutations (with epoch, batch and process rank).
        channels_last: run the network on channels-last tensors (faster convolutions on
            recent GPUs with mixed precision).
        bn_running_stats: ``whole_images``: the puzzle passes leave the batch-norm running
            statistics (what evaluation normalises with) to the whole-image passes;
            ``every_pass``: every pass updates them, as the reference code does
            (:mod:`fgssl.models.running_stats`).
        compile: ``torch.compile`` the network's passes (True, or a mapping of
            ``torch.compile`` options such as ``{"mode": "max-autotune"}``).
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        *,
        phase: Phase = "finetune",
        step_mode: StepMode = "progressive",
        schedule: Sequence[int] = (8, 4, 2),
        permutation: Permutation = "derangement",
        whole_image_weight: float = 2.0,
        optimizer: OptimizerFactory | None = None,
        optimizer_implementation: str = "auto",
        lr: float = 2e-3,
        backbone_lr_scale: float = 0.1,
        warmup_epochs: float = 0.0,
        min_lr_scale: float = 0.0,
        lr_schedule: str = "cosine",
        lr_milestones: Sequence[float] = (0.5, 0.75),
        lr_gamma: float = 0.1,
        zero_grad_to_none: bool = False,
        grad_clip: float | None = None,
        barlow_lambda: float = 5.1e-3,
        barlow_scale: float = 1.0,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
        ordinal: bool = False,
        class_names: Sequence[str] | None = None,
        seed: int = 0,
        channels_last: bool = False,
        compile: bool | Mapping[str, Any] = False,
        objective: Mapping[str, Any] | None = None,
        bn_running_stats: str = "whole_images",
    ):
        super().__init__()
        _check_choices(phase, step_mode, permutation, bn_running_stats)
        ignored = ["optimizer"] + (["net"] if isinstance(net, nn.Module) else [])
        self.save_hyperparameters(ignore=ignored)
        self.automatic_optimization = False
        self.net: StagedNet = net if isinstance(net, StagedNet) else instantiate(net)
        self.phase: Phase = phase
        self.step_mode: StepMode = step_mode
        self.stages: list[Stage] = plan_stages(
            self.net.stage_names, list(schedule), whole_image_weight=whole_image_weight
        )
        self.permutation: Permutation = permutation
        self.bn_running_stats = bn_running_stats
        self._init_optimization(
            optimizer,
            lr=lr,
            backbone_lr_scale=backbone_lr_scale,
            warmup_epochs=warmup_epochs,
            min_lr_scale=min_lr_scale,
            zero_grad_to_none=zero_grad_to_none,
            grad_clip=grad_clip,
            implementation=optimizer_implementation,
            lr_schedule=lr_schedule,
            lr_milestones=lr_milestones,
            lr_gamma=lr_gamma,
        )
        self.label_smoothing = label_smoothing
        self.seed = seed
        self._init_passes(channels_last=channels_last, compile=compile)
        self.ssl_loss = build_objective(objective, lambd=barlow_lambda, scale=barlow_scale)
        self.class_weights: torch.Tensor | None
        weights = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self._init_evaluation(self.net.num_classes, ordinal=ordinal, class_names=class_names)

    # --------------------------------------------------------------------- training
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        images = batch["image"]
        generator = self._puzzle_generator(batch_idx)
        puzzles = [
            images
            if stage.grid is None
            else jigsaw(images, stage.grid, generator=generator, permutation=self.permutation)
            for stage in self.stages
        ]
        if self.phase == "pretrain":
            if "view" not in batch:
                raise KeyError(
                    "the pretrain phase needs a second view: the data module's batches must "
                    "hold a 'view' key (set the data module's phase to 'pretrain')"
                )
            losses = self._pretrain_step(puzzles, batch["view"])
        else:
            losses = self._finetune_step(puzzles, batch["label"])
        self.lr_schedulers().step()  # type: ignore[union-attr]
        self._record_losses(losses, batch_idx)

    def _finetune_step(
        self, puzzles: list[torch.Tensor], labels: torch.Tensor
    ) -> list[torch.Tensor]:
        def stage_loss(stage: Stage) -> torch.Tensor:
            logits = self._stage_pass(puzzles[stage.index], stage.index).logits
            return F.cross_entropy(
                logits.float(),
                labels,
                weight=self.class_weights,
                label_smoothing=self.label_smoothing,
            )

        return self._run_stages(stage_loss)

    def _pretrain_step(self, puzzles: list[torch.Tensor], view: torch.Tensor) -> list[torch.Tensor]:
        net = self.net
        if self.step_mode == "fused" and not self._distributed:
            return self._fused_pretrain_step(puzzles, view)

        def stage_loss(stage: Stage) -> torch.Tensor:
            k = stage.index
            z1 = net.project(self._stage_pass(puzzles[k], k).embedding, k)
            z2 = net.project(self._stage_pass(view, k).embedding, k)
            return self.ssl_loss(z1, z2)

        return self._run_stages(stage_loss)

    def _stage_context(self, stage: Stage) -> AbstractContextManager[object]:
        """A puzzle stage's passes leave the batch-norm running statistics as they are
        (``bn_running_stats="whole_images"``); the whole-image stage updates them."""
        if stage.grid is None or self.bn_running_stats == "every_pass":
            return nullcontext()
        return frozen_running_stats(self.net)

    def _run_stages(self, stage_loss: Callable[[Stage], torch.Tensor]) -> list[torch.Tensor]:
        """The step of ``step_mode`` (see :mod:`fgssl.steps`); under DDP a fused step
        backpropagates the summed losses once."""
        step = progressive_step if self.step_mode == "progressive" else fused_step
        extra = {} if self.step_mode == "progressive" else {"backward_once": self._distributed}
        return step(
            self.stages,
            stage_loss,
            self._optimizer(),
            self.manual_backward,
            zero_to_none=self.zero_grad_to_none,
            stage_context=self._stage_context,
            **extra,
        )

    def _fused_pretrain_step(
        self, puzzles: list[torch.Tensor], view: torch.Tensor
    ) -> list[torch.Tensor]:
        """One step for all stages with the second view run once (K+2 network passes; see
        :func:`fgssl.steps.fused_view_step`)."""
        net = self.net
        view_out = self._full_pass(view)
        return fused_view_step(
            self.stages,
            lambda stage: net.project(
                self._stage_pass(puzzles[stage.index], stage.index).embedding, stage.index
            ),
            [net.project(e, k) for k, e in enumerate(view_out.embeddings)],
            self.ssl_loss,
            self._optimizer(),
            self.manual_backward,
            zero_to_none=self.zero_grad_to_none,
            stage_context=self._stage_context,
        )

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def _puzzle_generator(self, batch_idx: int) -> torch.Generator:
        """A CPU generator seeded from (seed, rank, epoch, batch): reproducible and resumable."""
        rank = self.global_rank if self._trainer is not None else 0
        entropy = [self.seed, rank, self.current_epoch, batch_idx]
        seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])
        return torch.Generator().manual_seed(seed)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fgssl"] = {
            "version": __version__,
            "phase": self.phase,
            "step_mode": self.step_mode,
        }
