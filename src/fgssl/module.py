"""FGSSLModule: the LightningModule that runs the stages of FG-SSL and PMG training."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from pytorch_lightning.core.optimizer import LightningOptimizer
from torch import nn
from torchmetrics import Metric

from fgssl.errors import ConfigError, NonFiniteLossError
from fgssl.losses import BarlowTwinsLoss
from fgssl.metrics import (
    ClassificationMetrics,
    classification_metrics,
    confusion_matrix_metric,
    undefined_messages,
)
from fgssl.models.base import EVAL_HEADS, NetOutput, StagedNet, StageOutput
from fgssl.nonfinite import NonFiniteWatch
from fgssl.ops.jigsaw import PERMUTATIONS, Permutation, jigsaw
from fgssl.optim import parameter_groups, warmup_cosine
from fgssl.stages import Stage, plan_stages

__all__ = ["FGSSLModule"]

log = logging.getLogger(__name__)

Phase = Literal["pretrain", "finetune"]
StepMode = Literal["progressive", "fused"]
OptimizerFactory = Callable[[Iterable[dict[str, Any]]], torch.optim.Optimizer]


def _default_optimizer(params: Iterable[dict[str, Any]]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=2e-3, momentum=0.9, weight_decay=5e-4)


class FGSSLModule(pl.LightningModule):
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
        zero_grad_to_none: False (as PMG) zeroes gradients, so parameters a stage does not
            use still receive momentum and weight decay at its step; True skips them.
        grad_clip: max gradient norm, applied to unscaled gradients before every step.
        barlow_lambda: off-diagonal weight of the Barlow Twins loss.
        barlow_scale: factor on every Barlow Twins loss (what is logged and optimised). The
            loss sums over the D embedding dimensions, so its gradients are about D times
            larger than a cross-entropy's; with plain SGD that inflates the weight norms of
            batch-normalised layers and slows finetuning down. 1/D is a sensible choice
            when the pretrain phase uses the finetune phase's learning rate.
        ordinal: the labels are grades (adds quadratic weighted kappa to the metrics).
        class_names: one name per class; ISIC 2017's ``melanoma`` and ``seborrheic_keratosis``
            add their one-vs-rest AUROCs and ``mean_auroc`` to the metrics.
        seed: seeds the jigsaw permutations (with epoch, batch and process rank).
        channels_last: run the network on channels-last tensors (faster convolutions on
            recent GPUs with mixed precision).
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
        lr: float = 2e-3,
        backbone_lr_scale: float = 0.1,
        warmup_epochs: float = 0.0,
        min_lr_scale: float = 0.0,
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
    ):
        super().__init__()
        if phase not in ("pretrain", "finetune"):
            raise ConfigError(f"phase must be 'pretrain' or 'finetune', got {phase!r}")
        if step_mode not in ("progressive", "fused"):
            raise ConfigError(f"step_mode must be 'progressive' or 'fused', got {step_mode!r}")
        if permutation not in PERMUTATIONS:
            raise ConfigError(
                f"schedule.permutation must be one of {list(PERMUTATIONS)}, got {permutation!r}"
            )
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
        self.optimizer_factory = optimizer or _default_optimizer
        self.lr = lr
        self.backbone_lr_scale = backbone_lr_scale
        self.warmup_epochs = warmup_epochs
        self.min_lr_scale = min_lr_scale
        self.zero_grad_to_none = zero_grad_to_none
        self.grad_clip = grad_clip
        self.label_smoothing = label_smoothing
        self.seed = seed
        self.channels_last = channels_last
        self.compile_options: dict[str, Any] | None = (
            dict(compile) if isinstance(compile, Mapping) else {} if compile else None
        )
        self._passes: dict[str, Callable[..., Any]] = {}
        self._nonfinite = NonFiniteWatch()
        self.barlow_twins = BarlowTwinsLoss(barlow_lambda)
        self.barlow_scale = barlow_scale
        self.class_weights: torch.Tensor | None
        weights = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self.num_classes: int = self.net.num_classes
        self.class_names = list(class_names) if class_names else None
        self.eval_metrics = nn.ModuleDict(
            {
                f"{split}_{head}": classification_metrics(
                    self.num_classes, ordinal=ordinal, class_names=self.class_names
                )
                for split in ("val", "test")
                for head in EVAL_HEADS
            }
        )
        self._undefined_warned: dict[str, set[str]] = {}
        """By split: what :func:`fgssl.metrics.undefined_messages` already warned about."""
        self.test_confusion = nn.ModuleDict(
            {head: confusion_matrix_metric(self.num_classes) for head in EVAL_HEADS}
        )
        self.test_confusion_matrices: dict[str, list[list[int]]] = {}
        """Confusion matrices (rows true, columns predicted) of the last test epoch, by head."""

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.net, self.lr, self.backbone_lr_scale)
        optimizer = self.optimizer_factory(groups)
        schedule = functools.partial(
            warmup_cosine,
            total=max(int(self.trainer.estimated_stepping_batches), 1),
            warmup=int(self.warmup_epochs * self._batches_per_epoch()),
            floor=self.min_lr_scale,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
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

    # ------------------------------------------------------------------ network passes
    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_options is not None and not self._passes:
            self._passes = {
                "stage": torch.compile(self.net.forward_stage, **self.compile_options),
                "full": torch.compile(self.net.forward, **self.compile_options),
            }

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _stage_pass(self, x: torch.Tensor, stage: int) -> StageOutput:
        """Head ``stage`` on ``x``, computing only what it needs (see StagedNet)."""
        forward = self._passes.get("stage", self.net.forward_stage)
        output: StageOutput = forward(self._prepare(x), stage)
        return output

    def _full_pass(self, x: torch.Tensor) -> NetOutput:
        """Every head on ``x``."""
        forward = self._passes.get("full", self.net.forward)
        output: NetOutput = forward(self._prepare(x))
        return output

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

    def _record_losses(self, losses: list[torch.Tensor], batch_idx: int) -> None:
        """Log the stage losses and watch them for NaN/inf (checked on the host only every
        ``log_every_n_steps`` batches and at the end of the epoch, to spare device syncs)."""
        stacked = torch.stack(losses)
        self._nonfinite.update(stacked, self.trainer.fit_loop.total_batch_idx)
        check_every = max(getattr(self.trainer, "log_every_n_steps", 1), 1)
        if (batch_idx + 1) % check_every == 0:
            self._raise_if_nonfinite()
        for stage, loss in zip(self.stages, losses, strict=True):
            # Step values are this process's; epoch means are averaged over all processes.
            self.log(f"{self.phase}/{stage.name}_loss_step", loss, on_step=True, on_epoch=False)
            self.log(
                f"{self.phase}/{stage.name}_loss_epoch",
                loss,
                on_step=False,
                on_epoch=True,
                sync_dist=True,
            )
        weights = stacked.new_tensor([stage.weight for stage in self.stages])
        total = (weights * stacked).sum()
        self.log(f"{self.phase}/loss", total, on_step=True, on_epoch=False, prog_bar=True)
        self.log(f"{self.phase}/loss_epoch", total, on_step=False, on_epoch=True, sync_dist=True)

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
            return self.barlow_scale * self.barlow_twins(z1, z2)

        return self._run_stages(stage_loss)

    def _run_stages(self, stage_loss: Callable[[Stage], torch.Tensor]) -> list[torch.Tensor]:
        """Progressive: zero, backward and step per stage. Fused: one step for all stages.

        Fused mode on one process backpropagates each stage as soon as its loss is known
        (gradients accumulate), so only one stage's graph is alive at a time. Under DDP the
        weighted losses are summed and backpropagated once.
        """
        optimizer = self._optimizer()
        zero_to_none = self.zero_grad_to_none
        losses: list[torch.Tensor] = []
        if self.step_mode == "progressive":
            for stage in self.stages:
                optimizer.zero_grad(set_to_none=zero_to_none)
                loss = stage_loss(stage)
                self.manual_backward(stage.weight * loss)
                optimizer.step()
                losses.append(loss.detach())
            return losses
        optimizer.zero_grad(set_to_none=zero_to_none)
        if self._distributed:
            stage_losses = [stage_loss(stage) for stage in self.stages]
            weighted = [s.weight * loss for s, loss in zip(self.stages, stage_losses, strict=True)]
            self.manual_backward(torch.stack(weighted).sum())
            losses = [loss.detach() for loss in stage_losses]
        else:
            for stage in self.stages:
                loss = stage_loss(stage)
                self.manual_backward(stage.weight * loss)
                losses.append(loss.detach())
        optimizer.step()
        return losses

    def _fused_pretrain_step(
        self, puzzles: list[torch.Tensor], view: torch.Tensor
    ) -> list[torch.Tensor]:
        """One step for all stages with the second view run once (K+2 network passes).

        The second view's embeddings are detached into leaves; each puzzle's loss is
        backpropagated as soon as it is known (its gradient piles up on those leaves), then
        the second view is backpropagated once with the gradients gathered on its leaves.
        """
        net = self.net
        optimizer = self._optimizer()
        optimizer.zero_grad(set_to_none=self.zero_grad_to_none)
        view_out = self._full_pass(view)
        targets = [net.project(e, k) for k, e in enumerate(view_out.embeddings)]
        leaves = [t.detach().requires_grad_() for t in targets]
        losses = []
        for stage in self.stages:
            k = stage.index
            z1 = net.project(self._stage_pass(puzzles[k], k).embedding, k)
            loss = self.barlow_scale * self.barlow_twins(z1, leaves[k])
            self.manual_backward(stage.weight * loss)
            losses.append(loss.detach())
        used = [
            (t, leaf.grad) for t, leaf in zip(targets, leaves, strict=True) if leaf.grad is not None
        ]
        # The leaf gradients already carry the AMP loss scale, so no second scaling here.
        torch.autograd.backward([t for t, _ in used], [g for _, g in used])
        optimizer.step()
        return losses

    def _optimizer(self) -> LightningOptimizer:
        optimizer = self.optimizers()
        assert isinstance(optimizer, LightningOptimizer), "FGSSLModule uses one optimizer"
        return optimizer

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def _puzzle_generator(self, batch_idx: int) -> torch.Generator:
        """A CPU generator seeded from (seed, rank, epoch, batch): reproducible and resumable."""
        rank = self.global_rank if self._trainer is not None else 0
        entropy = [self.seed, rank, self.current_epoch, batch_idx]
        seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])
        return torch.Generator().manual_seed(seed)

    def on_train_epoch_end(self) -> None:
        self._raise_if_nonfinite()

    def _raise_if_nonfinite(self) -> None:
        """Stop if any stage loss was NaN/inf since the last check (all processes agree)."""
        failure = self._nonfinite.first_failure()
        if not self.trainer.strategy.reduce_boolean_decision(failure is not None, all=False):
            return
        if failure is None:
            where = "in another process"
        else:
            stage = self.stages[failure[0]]
            kind = "whole image" if stage.grid is None else f"{stage.grid}x{stage.grid} puzzle"
            where = f"stage {stage.name} ({kind}), first at batch {failure[1]}"
        hint = "lower the learning rate (optim.lr), set optim.grad_clip, or check the input data"
        if self.compile_options is not None:
            # seen on an H200 (torch 2.11): compiled passes under bf16-mixed gave NaN at once
            hint += "; or train without perf.compile, which gave non-finite losses on CUDA"
        raise NonFiniteLossError(
            f"non-finite loss in the {self.phase} phase, {where}, epoch {self.current_epoch}: "
            + hint
        )

    # ------------------------------------------------------------------- evaluation
    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Mapping[str, torch.Tensor], split: str) -> None:
        output = self._full_pass(batch["image"])
        labels = batch["label"]
        for head, logits in output.eval_logits().items():
            probabilities = logits.float().softmax(dim=1)
            cast(Metric, self.eval_metrics[f"{split}_{head}"]).update(probabilities, labels)
            if split == "test":
                cast(Metric, self.test_confusion[head]).update(probabilities, labels)
        loss = F.cross_entropy(output.concat.float(), labels)
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, sync_dist=True)

    def _log_eval_metrics(self, split: str) -> None:
        """Log ``<split>/<head>/<metric>`` of the whole epoch and reset the metrics.

        compute() gathers every process's predictions (a collective: every rank runs it), so
        the values are equal on all ranks. Undefined values are logged as NaN, with one
        warning per split and metric (none during the sanity check).
        """
        scores = {}
        for head in EVAL_HEADS:
            metric = cast(ClassificationMetrics, self.eval_metrics[f"{split}_{head}"])
            if not metric.update_called:
                continue
            values = metric.compute()
            self.log_dict(
                {f"{split}/{head}/{name}": float(value) for name, value in values.items()},
                on_step=False,
                on_epoch=True,
                sync_dist=True,  # equal on every rank: the mean changes nothing
            )
            assert metric.scores is not None
            scores[f"{split}/{head}/"] = metric.scores
            metric.reset()
        if self._trainer is not None and self.trainer.sanity_checking:
            return
        warned = self._undefined_warned.setdefault(split, set())
        for message in undefined_messages(split, scores, warned):
            if self.global_rank == 0:
                log.warning("%s", message)

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_start(self) -> None:
        for metric in self.test_confusion.values():
            cast(Metric, metric).reset()

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")
        # compute() gathers the counts of every process (a collective: every rank runs it).
        self.test_confusion_matrices = {
            head: cast(Metric, metric).compute().long().tolist()
            for head, metric in self.test_confusion.items()
        }

    def predict_step(
        self, batch: Mapping[str, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """Class probabilities of the combined prediction and of the concat head."""
        output = self._full_pass(batch["image"])
        return {
            "probabilities": output.combined.float().softmax(dim=1),
            "concat_probabilities": output.concat.float().softmax(dim=1),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from fgssl import __version__

        checkpoint["fgssl"] = {
            "version": __version__,
            "phase": self.phase,
            "step_mode": self.step_mode,
        }
