"""FGSSLModule: the LightningModule that runs the stages of FG-SSL and PMG training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from fgssl._version import __version__
from fgssl.accumulation import MicroBackward, loss_shares
from fgssl.errors import ConfigError
from fgssl.losses import build_objective
from fgssl.models.base import StagedNet
from fgssl.models.running_stats import BN_RUNNING_STATS
from fgssl.module_losses import LossRecordingModule
from fgssl.module_optim import OPTIMIZATION_OPTIONS, OptimizerFactory
from fgssl.module_passes import PassesModule
from fgssl.module_steps import Batch, SteppingModule
from fgssl.ops.jigsaw import PERMUTATIONS, Permutation
from fgssl.ops.mixup import build_mixup, mix_batch
from fgssl.stages import Stage, plan_stages
from fgssl.steps import Backward, StageLoss, fused_view_backward

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


class FGSSLModule(SteppingModule, LossRecordingModule, PassesModule):
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
        accumulate_grad_batches: N > 1 steps once per group of N batches, with the gradient
            of their large batch (per stage in progressive mode; :mod:`fgssl.accumulation`).
        mixup: options of timm's Mixup/CutMix (:func:`fgssl.ops.mixup.build_mixup`) for the
            finetune phase: its stages train on the mixed images with soft targets
            (``label_smoothing`` goes into them); validation and test are never mixed.
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
        accumulate_grad_batches: int = 1,
        mixup: Mapping[str, Any] | None = None,
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
            **{key: self.hparams[key] for key in OPTIMIZATION_OPTIONS},
            implementation=optimizer_implementation,
        )
        self.seed = seed
        self._init_passes(channels_last=channels_last, compile=compile)
        self.ssl_loss = build_objective(objective, lambd=barlow_lambda, scale=barlow_scale)
        self._init_supervision(label_smoothing, class_weights, mixup)
        self._init_evaluation(self.net.num_classes, ordinal=ordinal, class_names=class_names)

    def _init_supervision(
        self,
        label_smoothing: float,
        class_weights: Sequence[float] | None,
        mixup: Mapping[str, Any] | None,
    ) -> None:
        """The finetune phase's targets: label smoothing, class weights, mixing."""
        self.label_smoothing = label_smoothing
        self.class_weights: torch.Tensor | None
        weights = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self.mixup = (
            build_mixup(mixup, num_classes=self.net.num_classes, label_smoothing=label_smoothing)
            if mixup is not None and self.phase == "finetune"
            else None
        )

    # --------------------------------------------------------------------- training
    def training_step(self, batch: Batch, batch_idx: int) -> None:
        group = self._collect(batch, batch_idx)
        if group is None:
            return  # kept for the step at the end of its accumulation group
        if self.phase == "pretrain":
            losses = self._pretrain_step(group)
        else:
            losses = self._finetune_step(group)
        self.lr_schedulers().step()  # type: ignore[union-attr]
        self._record_losses(losses, batch_idx)

    def _finetune_step(self, group: Sequence[tuple[Batch, int]]) -> list[torch.Tensor]:
        micro = [self._finetune_loss(batch, batch_idx) for batch, batch_idx in group]
        shares = loss_shares([n for n, _ in micro]) if len(micro) > 1 else [1.0]
        return self._run_stages([(s, loss) for s, (_, loss) in zip(shares, micro, strict=True)])

    def _finetune_loss(self, batch: Batch, batch_idx: int) -> tuple[float, StageLoss]:
        """The cross-entropy of each stage on one (micro-)batch, and what the loss is a mean
        over: its images, or the sum of their labels' class weights (only read when
        accumulating: a host sync)."""
        images, labels = batch["image"], batch["label"]
        targets, smoothing = labels, self.label_smoothing
        if self.mixup is not None:  # soft targets, label smoothing included
            seed = self._batch_seed(batch_idx, stream=1, bits=32)
            images, targets = mix_batch(self.mixup, images, labels, seed=seed)
            smoothing = 0.0
        puzzle = self._puzzle_source(images, batch_idx)

        def stage_loss(stage: Stage) -> torch.Tensor:
            logits = self._stage_pass(puzzle(stage), stage.index).logits
            return F.cross_entropy(
                logits.float(), targets, weight=self.class_weights, label_smoothing=smoothing
            )

        normaliser = float(len(labels))
        if (
            self.accumulate_grad_batches > 1
            and self.mixup is None
            and self.class_weights is not None
        ):
            normaliser = float(self.class_weights[labels].sum())  # PyTorch's weighted mean
        return normaliser, stage_loss

    def _pretrain_step(self, group: Sequence[tuple[Batch, int]]) -> list[torch.Tensor]:
        for batch, _ in group:
            if "view" not in batch:
                raise KeyError(
                    "the pretrain phase needs a second view: the data module's batches must "
                    "hold a 'view' key (set the data module's phase to 'pretrain')"
                )
        sizes = [float(len(batch["image"])) for batch, _ in group]
        shares = loss_shares(sizes) if len(group) > 1 else [1.0]
        if self.step_mode == "fused" and not self._distributed:
            return self._fused(
                [(s, self._view_backward(b, i)) for s, (b, i) in zip(shares, group, strict=True)]
            )
        return self._run_stages(
            [(s, self._ssl_loss(b, i)) for s, (b, i) in zip(shares, group, strict=True)]
        )

    def _ssl_loss(self, batch: Batch, batch_idx: int) -> StageLoss:
        """The self-supervised loss of each stage on one (micro-)batch: its puzzle's
        embedding against the same head's embedding of the second view."""
        net, view = self.net, batch["view"]
        puzzle = self._puzzle_source(batch["image"], batch_idx)

        def stage_loss(stage: Stage) -> torch.Tensor:
            k = stage.index
            z1 = net.project(self._stage_pass(puzzle(stage), k).embedding, k)
            z2 = net.project(self._stage_pass(view, k).embedding, k)
            return self.ssl_loss(z1, z2)

        return stage_loss

    def _view_backward(self, batch: Batch, batch_idx: int) -> MicroBackward:
        """The fused self-supervised backward of one (micro-)batch with the second view run
        once (K+2 network passes; see :func:`fgssl.steps.fused_view_backward`)."""
        net = self.net

        def run(backward: Backward) -> list[torch.Tensor]:
            puzzle = self._puzzle_source(batch["image"], batch_idx)
            view_out = self._full_pass(batch["view"])
            return fused_view_backward(
                self.stages,
                lambda stage: net.project(
                    self._stage_pass(puzzle(stage), stage.index).embedding, stage.index
                ),
                [net.project(e, k) for k, e in enumerate(view_out.embeddings)],
                self.ssl_loss,
                backward,
                stage_context=self._stage_context,
            )

        return run

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fgssl"] = {
            "version": __version__,
            "phase": self.phase,
            "step_mode": self.step_mode,
        }
