"""The optimizer steps of a training batch in a LightningModule: the step mode over the
stage plan, and gradient accumulation over micro-batches (:mod:`fgssl.accumulation`).
:class:`fgssl.module.FGSSLModule` inherits them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch

from fgssl.accumulation import (
    MicroBackward,
    accumulated_fused_step,
    accumulated_progressive_step,
    ends_group,
)
from fgssl.errors import ConfigError
from fgssl.models.base import StagedNet
from fgssl.models.running_stats import frozen_running_stats
from fgssl.module_optim import OptimizedModule
from fgssl.ops.jigsaw import Permutation, jigsaw
from fgssl.stages import Stage
from fgssl.steps import StageLoss, fused_backward

__all__ = ["Batch", "SteppingModule"]

Batch = Mapping[str, torch.Tensor]


class SteppingModule(OptimizedModule):
    """Runs the steps of ``step_mode`` over micro-batches, and draws each batch's puzzles
    (and mixing) from its own seed; a subclass sets ``net``, ``stages``, ``step_mode``,
    ``bn_running_stats``, ``permutation`` and ``seed`` (and ``accumulate_grad_batches``
    through :meth:`_init_optimization`).

    With ``accumulate_grad_batches`` N > 1, :meth:`_collect` keeps the batches of a group of
    N (the last group of an epoch ends with it, and may be shorter) and hands them over at
    the group's last batch, where one step per stage (progressive) or one step (fused)
    takes the gradient of the group's large batch. The learning-rate schedule counts
    groups (:meth:`fgssl.module_optim.OptimizedModule.configure_optimizers`).
    """

    net: StagedNet
    stages: list[Stage]
    step_mode: str
    bn_running_stats: str
    permutation: Permutation
    seed: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[tuple[Batch, int]] = []

    def _collect(self, batch: Batch, batch_idx: int) -> list[tuple[Batch, int]] | None:
        """The micro-batches of the group that batch ``batch_idx`` completes, or None while
        the group is still open (the batch is kept until then)."""
        every = self.accumulate_grad_batches
        if every == 1:
            return [(batch, batch_idx)]
        if batch_idx == 0:
            self._pending = []  # a group never spans two epochs
        num_batches = self.trainer.num_training_batches
        if num_batches == float("inf"):
            raise ConfigError(
                f"optim.accumulate_grad_batches={every} needs a training loader of known "
                "length (the last group of an epoch ends with it)"
            )
        self._pending.append((batch, batch_idx))
        if not ends_group(batch_idx, every, num_batches):
            return None
        group, self._pending = self._pending, []
        return group

    def _stage_context(self, stage: Stage) -> AbstractContextManager[object]:
        """A puzzle stage's passes leave the batch-norm running statistics as they are
        (``bn_running_stats="whole_images"``); the whole-image stage updates them."""
        if stage.grid is None or self.bn_running_stats == "every_pass":
            return nullcontext()
        return frozen_running_stats(self.net)

    def _run_stages(self, micro_batches: Sequence[tuple[float, StageLoss]]) -> list[torch.Tensor]:
        """The step of ``step_mode`` over ``(share, stage_loss)`` micro-batches (see
        :mod:`fgssl.accumulation`); under DDP a fused step backpropagates each
        micro-batch's summed losses once."""
        if self.step_mode == "progressive":
            return accumulated_progressive_step(
                self.stages,
                micro_batches,
                self._optimizer(),
                self.manual_backward,
                zero_to_none=self.zero_grad_to_none,
                stage_context=self._stage_context,
            )
        return self._fused(
            [
                (
                    share,
                    functools.partial(
                        fused_backward,
                        self.stages,
                        stage_loss,
                        backward_once=self._distributed,
                        stage_context=self._stage_context,
                    ),
                )
                for share, stage_loss in micro_batches
            ]
        )

    def _fused(self, micro_batches: Sequence[tuple[float, MicroBackward]]) -> list[torch.Tensor]:
        """One fused step over ``(share, micro_backward)`` micro-batches."""
        return accumulated_fused_step(
            micro_batches,
            self._optimizer(),
            self.manual_backward,
            zero_to_none=self.zero_grad_to_none,
        )

    def _puzzle_source(
        self, images: torch.Tensor, batch_idx: int
    ) -> Callable[[Stage], torch.Tensor]:
        """The input of each stage for the batch ``batch_idx``: its jigsaw puzzle, made when
        first asked for (stages in order, each once: the draws of one generator), or the
        whole images."""
        generator = self._puzzle_generator(batch_idx)

        def puzzle(stage: Stage) -> torch.Tensor:
            if stage.grid is None:
                return images
            return jigsaw(images, stage.grid, generator=generator, permutation=self.permutation)

        return puzzle

    def _puzzle_generator(self, batch_idx: int) -> torch.Generator:
        """A CPU generator seeded from (seed, rank, epoch, batch): reproducible and resumable."""
        return torch.Generator().manual_seed(self._batch_seed(batch_idx))

    def _batch_seed(self, batch_idx: int, *, stream: int = 0, bits: int = 64) -> int:
        """A seed of (seed, rank, epoch, batch) for the random ``stream`` (0: the puzzles,
        1: the mixing), ``bits`` wide."""
        rank = self.global_rank if self._trainer is not None else 0
        entropy = [self.seed, rank, self.current_epoch, batch_idx]
        sequence = np.random.SeedSequence(entropy, spawn_key=(stream,) if stream else ())
        dtype = np.uint64 if bits == 64 else np.uint32
        return int(sequence.generate_state(1, dtype=dtype)[0])

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1
