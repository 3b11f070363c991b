"""Watching stage losses for NaN/inf without a host-device sync at every step."""

from __future__ import annotations

import torch

__all__ = ["NonFiniteWatch"]


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
