"""The optimizer steps of one training batch over the stage plan, as plain functions
(no Lightning: any optimizer with ``zero_grad``/``step`` and any ``backward`` will do).

- :func:`progressive_step`: one optimizer step per stage (PMG, the paper): zero, loss,
  backward, step, K+1 times per batch, with one optimizer (shared momentum).
- :func:`fused_step`: the weighted stage losses stepped once.
- :func:`fused_view_step`: the fused self-supervised step with the second view run once
  (the "leaf trick": K+2 network passes instead of 2(K+1)).
- :func:`fused_backward`, :func:`fused_view_backward`: the backward passes of those two
  steps alone (no zeroing, no step), for gradient accumulation (:mod:`fgssl.accumulation`).

Each returns the detached loss of every stage, in stage order. ``stage_context`` wraps each
stage's forward and backward passes (e.g. :func:`fgssl.models.running_stats.frozen_running_stats`
for the puzzle stages).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

import torch

from fgssl.stages import Stage

__all__ = [
    "Backward",
    "Optimizer",
    "StageContext",
    "StageLoss",
    "fused_backward",
    "fused_step",
    "fused_view_backward",
    "fused_view_step",
    "progressive_step",
]

StageLoss = Callable[[Stage], torch.Tensor]
"""The (unweighted) loss of one stage of the batch."""
Backward = Callable[[torch.Tensor], None]
"""Backpropagates a loss: ``loss.backward()``, or Lightning's ``manual_backward`` (AMP
scaling, DDP)."""
StageContext = Callable[[Stage], AbstractContextManager[object]]
"""The context of one stage's passes (forward, and backward where it is the stage's own)."""


def no_context(stage: Stage) -> AbstractContextManager[object]:
    return nullcontext()


class Optimizer(Protocol):
    def zero_grad(self, set_to_none: bool = ...) -> None: ...

    def step(self) -> object: ...


def progressive_step(
    stages: Sequence[Stage],
    stage_loss: StageLoss,
    optimizer: Optimizer,
    backward: Backward,
    *,
    zero_to_none: bool = True,
    stage_context: StageContext = no_context,
) -> list[torch.Tensor]:
    """Zero, backward ``stage.weight * loss`` and step, stage by stage."""
    losses: list[torch.Tensor] = []
    for stage in stages:
        optimizer.zero_grad(set_to_none=zero_to_none)
        with stage_context(stage):
            loss = stage_loss(stage)
            backward(stage.weight * loss)
        optimizer.step()
        losses.append(loss.detach())
    return losses


def fused_step(
    stages: Sequence[Stage],
    stage_loss: StageLoss,
    optimizer: Optimizer,
    backward: Backward,
    *,
    zero_to_none: bool = True,
    backward_once: bool = False,
    stage_context: StageContext = no_context,
) -> list[torch.Tensor]:
    """One step on ``sum_k weight_k * loss_k``: zero, :func:`fused_backward`, step."""
    optimizer.zero_grad(set_to_none=zero_to_none)
    losses = fused_backward(
        stages, stage_loss, backward, backward_once=backward_once, stage_context=stage_context
    )
    optimizer.step()
    return losses


def fused_backward(
    stages: Sequence[Stage],
    stage_loss: StageLoss,
    backward: Backward,
    *,
    backward_once: bool = False,
    stage_context: StageContext = no_context,
) -> list[torch.Tensor]:
    """Backpropagate ``sum_k weight_k * loss_k`` (gradients add to those already there).

    Each stage is backpropagated as soon as its loss is known (gradients accumulate), so only
    one stage's graph is alive at a time; ``backward_once`` sums the weighted losses and
    backpropagates once instead (DDP: one gradient all-reduce per step); ``stage_context``
    then wraps the forward passes only.
    """
    if backward_once:
        stage_losses = []
        for stage in stages:
            with stage_context(stage):
                stage_losses.append(stage_loss(stage))
        weighted = [s.weight * loss for s, loss in zip(stages, stage_losses, strict=True)]
        backward(torch.stack(weighted).sum())
        return [loss.detach() for loss in stage_losses]
    losses = []
    for stage in stages:
        with stage_context(stage):
            loss = stage_loss(stage)
            backward(stage.weight * loss)
        losses.append(loss.detach())
    return losses


def fused_view_step(
    stages: Sequence[Stage],
    puzzle_embedding: Callable[[Stage], torch.Tensor],
    view_embeddings: Sequence[torch.Tensor],
    objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: Optimizer,
    backward: Backward,
    *,
    zero_to_none: bool = True,
    stage_context: StageContext = no_context,
) -> list[torch.Tensor]:
    """One self-supervised step for all stages with the second view run once: zero,
    :func:`fused_view_backward`, step."""
    optimizer.zero_grad(set_to_none=zero_to_none)
    losses = fused_view_backward(
        stages,
        puzzle_embedding,
        view_embeddings,
        objective,
        backward,
        stage_context=stage_context,
    )
    optimizer.step()
    return losses


def fused_view_backward(
    stages: Sequence[Stage],
    puzzle_embedding: Callable[[Stage], torch.Tensor],
    view_embeddings: Sequence[torch.Tensor],
    objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    backward: Backward,
    *,
    stage_context: StageContext = no_context,
) -> list[torch.Tensor]:
    """Backpropagate the self-supervised losses of all stages with the second view run once
    (gradients add to those already there).

    Args:
        puzzle_embedding: the (projected) embedding of the stage's puzzle, (N, D).
        view_embeddings: the second view's (projected) embedding of every tapped block
            (index ``stage.index``), from one full network pass.
        objective: the SSL loss of (puzzle embedding, view embedding).

    The view's embeddings are detached into leaves; each puzzle's loss is backpropagated as
    soon as it is known (its gradient piles up on those leaves), then the view is
    backpropagated once with the gradients gathered on its leaves. The gradients equal those
    of :func:`fused_backward` with the view recomputed per stage; a ``backward`` that scales
    its loss scales both parts alike.
    """
    leaves = [target.detach().requires_grad_() for target in view_embeddings]
    losses = []
    for stage in stages:
        with stage_context(stage):  # the puzzle's passes; the view's are whole images
            loss = objective(puzzle_embedding(stage), leaves[stage.index])
            backward(stage.weight * loss)
        losses.append(loss.detach())
    used = [
        (target, leaf.grad)
        for target, leaf in zip(view_embeddings, leaves, strict=True)
        if leaf.grad is not None
    ]
    # The leaf gradients already carry the AMP loss scale, so no second scaling here.
    torch.autograd.backward([t for t, _ in used], [g for _, g in used])
    return losses
