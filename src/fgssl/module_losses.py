"""The stage losses of a training step in a LightningModule: logged and watched for NaN/inf
without a host-device sync at every step. :class:`fgssl.module.FGSSLModule` inherits them."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from fgssl.nonfinite import NonFiniteWatch, nonfinite_error
from fgssl.stages import Stage

__all__ = ["LossRecordingModule"]


class LossRecordingModule(pl.LightningModule):
    """Logs the stage losses of each batch and stops on a non-finite one; a subclass sets
    ``stages``, ``phase`` and ``compile_options``.

    A host read of a device tensor (``.item()``, ``float()``, a progress-bar value) waits for
    all queued GPU work. The losses are read only every ``log_every_n_steps`` batches (the
    non-finite check, Lightning's logging) and at the end of the epoch, and by Lightning at
    every batch when a progress bar shows the loss.
    """

    stages: list[Stage]
    phase: str
    compile_options: dict[str, Any] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._nonfinite = NonFiniteWatch()

    def _record_losses(self, losses: list[torch.Tensor], batch_idx: int) -> None:
        """Log the detached stage losses of batch ``batch_idx`` (one per stage) and their
        weighted sum; raise NonFiniteLossError at a check that finds a NaN/inf loss."""
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
        # Python-float weights: a tensor of them made on the host would be copied to the
        # device at every batch (a sync). Lightning reads a progress-bar value on the host
        # at every batch, so the loss goes to the bar only when there is one.
        weighted = [stage.weight * loss for stage, loss in zip(self.stages, losses, strict=True)]
        total = torch.stack(weighted).sum()
        bar = self.trainer.progress_bar_callback is not None
        self.log(f"{self.phase}/loss", total, on_step=True, on_epoch=False, prog_bar=bar)
        self.log(f"{self.phase}/loss_epoch", total, on_step=False, on_epoch=True, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._raise_if_nonfinite()

    def _raise_if_nonfinite(self) -> None:
        """Stop if any stage loss was NaN/inf since the last check (all processes agree)."""
        failure = self._nonfinite.first_failure()
        if not self.trainer.strategy.reduce_boolean_decision(failure is not None, all=False):
            return
        raise nonfinite_error(
            failure,
            self.stages,
            phase=self.phase,
            epoch=self.current_epoch,
            compiled=self.compile_options is not None,
        )
