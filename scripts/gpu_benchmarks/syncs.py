"""(e) Host-device syncs per training batch, counted by CUDA itself
(``torch.cuda.set_sync_debug_mode("warn")``: a warning at every synchronising call, blocking
copies from the host included): the GPU side of tests/test_host_syncs.py. Batches 1-3 of 5
with a non-finite check every 2 batches (batch 0 is left out: Lightning builds its logging
accumulators there). On a CPU there is nothing to count: the runs go through (a smoke test
of this section) and the counts are null."""

from __future__ import annotations

import collections
import sys
import warnings
from typing import Any

import pytorch_lightning as pl
import torch

from gpu_benchmarks.harness import (
    Config,
    batch_loader,
    fixed_batch,
    module_for,
    reset_device,
    trainer_for,
)
from gpu_benchmarks.settings import Settings

NAME = "syncs"
SYNC_WARNING = "synchronizing CUDA operation"
CASES = (  # (step mode, precision, optim.implementation)
    ("progressive", "32-true", "auto"),
    ("progressive", "16-mixed", "auto"),
    ("progressive", "16-mixed", "fused"),
    ("fused", "32-true", "auto"),
)


class SyncWindows(pl.Callback):
    """Counts CUDA's sync warnings from each batch's start to the next one's."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.per_batch: list[int] = []
        self.where: collections.Counter[str] = collections.Counter()
        self.recorder: Any = None
        self.records: list[warnings.WarningMessage] = []

    def _close(self) -> None:
        if self.recorder is not None:
            if self.cuda:
                torch.cuda.set_sync_debug_mode("default")
            self.recorder.__exit__(None, None, None)
            syncs = [w for w in self.records if SYNC_WARNING in str(w.message)]
            self.per_batch.append(len(syncs))
            self.where.update(f"{w.filename}:{w.lineno}" for w in syncs)
            self.recorder = None

    def on_train_batch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        self._close()
        self.recorder = warnings.catch_warnings(record=True)
        self.records = self.recorder.__enter__()
        warnings.simplefilter("always")
        if self.cuda:
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_epoch_end(self, *_: Any) -> None:
        self._close()


def count(config: Config, phase: str, step_mode: str) -> dict[str, Any]:
    reset_device()
    module = module_for(config, phase, step_mode)
    # 5 batches in one epoch (the same batch five times), a check every 2
    loader = batch_loader(fixed_batch(config), 5)
    windows = SyncWindows(config.device.startswith("cuda"))
    trainer = trainer_for(config, 1, [windows], log_every_n_steps=2)
    trainer.fit(module, train_dataloaders=loader)
    counted = windows.cuda
    return {
        "syncs_per_batch_1_to_3": windows.per_batch[1:4] if counted else None,
        "checks_at_batches": [1, 3],
        "where": dict(windows.where.most_common(8)),
    }


def run(settings: Settings) -> dict[str, Any]:
    cuda = settings.device.startswith("cuda")
    if not cuda:
        print(
            "warning: syncs: CUDA's sync debug mode needs a GPU; counts are null", file=sys.stderr
        )
    rows = []
    for phase in ("finetune", "pretrain"):
        for step_mode, precision, implementation in CASES:
            if not cuda and precision == "16-mixed":
                continue  # no float16 autocast with a gradient scaler on the CPU
            config = Config(
                backbone=settings.sync_backbone,
                batch=settings.sync_batch,
                size=settings.sync_size,
                device=settings.device,
                schedule=settings.schedule,
                feat_dim=settings.feat_dim,
                hidden_dim=settings.hidden_dim,
                precision=precision,
                implementation=implementation,
            )
            row = {
                "phase": phase,
                "step_mode": step_mode,
                "precision": precision,
                "implementation": implementation,
            }
            row.update(count(config, phase, step_mode))
            rows.append(row)
            print(
                f"  {phase} {step_mode} {precision} {implementation}: "
                f"{row['syncs_per_batch_1_to_3']}",
                file=sys.stderr,
                flush=True,
            )
    return {"counted": cuda, "rows": rows}
