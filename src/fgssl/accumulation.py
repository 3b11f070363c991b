"""Gradient accumulation over micro-batches, as plain functions like :mod:`fgssl.steps` (no
Lightning): the optimizer steps of a group of micro-batches that give the gradients of the
one large batch they make up.

A micro-batch enters with its **share** of the large batch's loss: a loss that is a mean
over images (cross-entropy) has ``loss(large) = sum_i share_i * loss(micro_i)`` with
``share_i`` the micro-batch's images over the group's (class-weighted cross-entropy: its
sum of the label weights over the group's, as PyTorch normalises). Backpropagating
``share_i * loss_i`` for every micro-batch therefore adds up to the large batch's gradient.
A loss with statistics over the batch (batch normalisation in training mode, Barlow Twins'
per-dimension normalisation and cross-correlation) is computed per micro-batch: its
accumulated gradient is that of the mean of the micro-batches' losses, not of the large
batch's.

- :func:`accumulated_progressive_step`: per stage, zero, backpropagate that stage's loss on
  every micro-batch, step: K+1 steps per group, each with the gradient that stage would
  have on the large batch (the stages after the first see the weights the earlier stages'
  steps left, as they would with the large batch), so the micro-batches are run together
  at the end of their group.
- :func:`accumulated_fused_step`: zero, backpropagate every micro-batch's fused loss, step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from fgssl.stages import Stage
from fgssl.steps import Backward, Optimizer, StageContext, StageLoss, no_context

__all__ = [
    "MicroBackward",
    "accumulated_fused_step",
    "accumulated_progressive_step",
    "ends_group",
    "groups_per_epoch",
    "loss_shares",
]

MicroBackward = Callable[[Backward], list[torch.Tensor]]
"""Backpropagates one micro-batch's fused loss with the ``backward`` it is given (e.g.
:func:`fgssl.steps.fused_backward` bound to the micro-batch); returns its stage losses."""


def loss_shares(normalisers: Sequence[float]) -> list[float]:
    """Each micro-batch's share of the large batch's mean loss: its normaliser (its number
    of images, or its sum of the label weights of a class-weighted loss) over their sum."""
    total = math.fsum(normalisers)
    if not total > 0:
        raise ValueError(f"the micro-batches' loss normalisers sum to {total}: nothing to mean")
    return [n / total for n in normalisers]


def ends_group(batch_idx: int, every: int, num_batches: float) -> bool:
    """Whether batch ``batch_idx`` (0-based, in an epoch of ``num_batches``) is the last of
    its group of ``every`` micro-batches. The last group of an epoch may be shorter: it ends
    with the epoch, so that no group spans two epochs (and an end-of-epoch checkpoint holds
    no half-accumulated group)."""
    return (batch_idx + 1) % every == 0 or batch_idx + 1 >= num_batches


def groups_per_epoch(num_batches: int, every: int) -> int:
    """Optimizer steps (of each stage) in an epoch of ``num_batches`` micro-batches."""
    return max(math.ceil(num_batches / every), 1)


def _scaled(backward: Backward, share: float) -> Backward:
    if share == 1.0:
        return backward  # one micro-batch: exactly the step without accumulation
    return lambda loss: backward(share * loss)


def _share_sum(parts: Sequence[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """``sum_i share_i * loss_i`` of detached losses (one micro-batch: its loss unchanged)."""
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    return torch.stack([share * loss for share, loss in parts]).sum()


def accumulated_progressive_step(
    stages: Sequence[Stage],
    micro_batches: Sequence[tuple[float, StageLoss]],
    optimizer: Optimizer,
    backward: Backward,
    *,
    zero_to_none: bool = True,
    stage_context: StageContext = no_context,
) -> list[torch.Tensor]:
    """Stage by stage: zero, backpropagate ``share * stage.weight * loss`` of every
    ``(share, stage_loss)`` micro-batch, step. Returns each stage's detached large-batch
    loss ``sum_i share_i * loss_i``. One micro-batch of share 1 is
    :func:`fgssl.steps.progressive_step`."""
    losses: list[torch.Tensor] = []
    for stage in stages:
        optimizer.zero_grad(set_to_none=zero_to_none)
        parts = []
        for share, stage_loss in micro_batches:
            with stage_context(stage):
                loss = stage_loss(stage)
                _scaled(backward, share)(stage.weight * loss)
            parts.append((share, loss.detach()))
        optimizer.step()
        losses.append(_share_sum(parts))
    return losses


def accumulated_fused_step(
    micro_batches: Sequence[tuple[float, MicroBackward]],
    optimizer: Optimizer,
    backward: Backward,
    *,
    zero_to_none: bool = True,
) -> list[torch.Tensor]:
    """Zero, backpropagate every ``(share, micro_backward)`` micro-batch with its losses
    scaled by ``share``, step once. Returns each stage's detached large-batch loss."""
    optimizer.zero_grad(set_to_none=zero_to_none)
    per_micro = [
        (share, micro_backward(_scaled(backward, share))) for share, micro_backward in micro_batches
    ]
    optimizer.step()
    num_stages = len(per_micro[0][1])
    return [
        _share_sum([(share, losses[k]) for share, losses in per_micro]) for k in range(num_stages)
    ]
