"""Watching stage losses for NaN/inf without a host-device sync at every step."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fgssl.errors import NonFiniteLossError
from fgssl.stages import Stage

__all__ = ["NonFiniteWatch", "nonfinite_error"]


def nonfinite_error(
    failure: tuple[int, int] | None,
    stages: Sequence[Stage],
    *,
    phase: str,
    epoch: int,
    compiled: bool = False,
) -> NonFiniteLossError:
    """The error that stops a run after a non-finite loss: where it happened (``failure``:
    (stage index, batch) from :meth:`NonFiniteWatch.first_failure`; None: in another
    process) and what to try."""
    if failure is None:
        where = "in another process"
    else:
        stage = stages[failure[0]]
        kind = "whole image" if stage.grid is None else f"{stage.grid}x{stage.grid} puzzle"
        where = f"stage {stage.name} ({kind}), first at batch {failure[1]}"
    hint = "lower the learning rate (optim.lr), set optim.grad_clip, or check the input data"
    if compiled:
        # seen on an H200 (torch 2.11): compiled passes under bf16-mixed gave NaN at once
        hint += "; or train without perf.compile, which gave non-finite losses on CUDA"
    return NonFiniteLossError(
        f"non-finite loss in the {phase} phase, {where}, epoch {epoch}: " + hint
    )


class NonFiniteWatch:
    """Remembers, on the losses' device, the first batch at which each stage's loss was not
    finite. :meth:`first_failure` reads it on the host, so callers can check every few
    batches instead of synchronising after every step."""

    def __init__(self) -> None:
        self.first_bad_batch: torch.Tensor | None = None

    def update(self, losses: torch.Tensor, batch: int) -> None:
        """Record a (num_stages,) tensor of detached stage losses of batch number ``batch``."""
        if self.first_bad_batch is None or self.first_bad_batch.device != losses.device:
            self.first_bad_batch = torch.full(
                losses.shape, -1, dtype=torch.long, device=losses.device
            )
        newly_bad = ~torch.isfinite(losses) & (self.first_bad_batch < 0)
        self.first_bad_batch = torch.where(newly_bad, batch, self.first_bad_batch)

    def first_failure(self) -> tuple[int, int] | None:
        """(stage index, batch) of the earliest non-finite loss seen, or None (syncs)."""
        if self.first_bad_batch is None:
            return None
        first = self.first_bad_batch.tolist()
        bad = [(batch, stage) for stage, batch in enumerate(first) if batch >= 0]
        if not bad:
            return None
        batch, stage = min(bad)
        return stage, batch

    def reset(self) -> None:
        self.first_bad_batch = None
