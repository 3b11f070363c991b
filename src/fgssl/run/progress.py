"""One log line per epoch that says where a run is: phase, epoch N of M, time left.

Lightning's progress bar shows the batches of the current epoch; it does not say how many
epochs a phase has, nor how long the phase still needs. :class:`PhaseProgress` logs, at INFO
on the first process only::

    pretrain: 5 epochs of 12 training batches
    pretrain epoch 3/5 · 12 s/epoch · about 24 s left in this phase
    finetune epoch 30/30 · 15 s/epoch · phase done in 7 min 30 s
    test: 2 batches

The progress bar (``trainer.enable_progress_bar``) shows the batches within an epoch.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytorch_lightning as pl

__all__ = ["PhaseProgress", "format_duration"]

log = logging.getLogger(__name__)


class PhaseProgress(pl.Callback):
    """Logs each finished epoch of ``phase`` as ``"<phase> epoch N/M · S s/epoch · about T
    left in this phase"``. S is the wall time since the phase started (or resumed) over the
    epochs run since, validation and checkpoint writing included; T is S times the epochs
    still to run (with early stopping the phase may end sooner). N counts the epochs of the
    whole phase, so a resumed phase goes on from where it stopped.
    """

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self._started = 0.0
        self._first_epoch = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.monotonic()
        self._first_epoch = trainer.current_epoch  # > 0 in a resumed phase
        if trainer.is_global_zero:
            epochs = trainer.max_epochs or 0
            batches = trainer.num_training_batches
            log.info(
                "%s: %d epoch%s%s",
                self.phase,
                epochs,
                "" if epochs == 1 else "s",
                f" of {batches} training batches" if math.isfinite(batches) else "",
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning (>= 2.0) calls this after the epoch's validation.
        if not trainer.is_global_zero:
            return
        epoch, epochs = trainer.current_epoch + 1, trainer.max_epochs or 0
        elapsed = time.monotonic() - self._started
        per_epoch = elapsed / max(1, epoch - self._first_epoch)
        left = max(0, epochs - epoch)
        if left:
            outlook = f"about {format_duration(per_epoch * left)} left in this phase"
        else:
            outlook = f"phase done in {format_duration(elapsed)}"
        log.info(
            "%s epoch %d/%d · %s/epoch · %s",
            self.phase,
            epoch,
            epochs,
            format_duration(per_epoch),
            outlook,
        )

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            batches = sum(_finite(n) for n in trainer.num_test_batches)
            log.info("test: %d batch%s", batches, "" if batches == 1 else "es")


def format_duration(seconds: float) -> str:
    """``seconds`` as a newcomer reads it: "0.4 s", "12 s", "7 min 05 s", "1 h 02 min"."""
    if round(seconds, 1) < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _finite(count: Any) -> int:
    return int(count) if math.isfinite(count) else 0
