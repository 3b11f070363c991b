"""An interrupted and resumed run ends exactly where an uninterrupted one does (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

import fgssl.pipeline
from conftest import TINY_TRAINING
from fgssl.checkpointing import read_checkpoint
from fgssl.pipeline import run_training


class InterruptAt(pl.Callback):
    """Ctrl-C in finetune epoch ``epoch``, before its batch ``batch``."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if (pl_module.phase, trainer.current_epoch, batch_idx) == (
            "finetune",
            self.epoch,
            self.batch,
        ):
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize(
    ("epoch", "batch", "step_mode"),
    [(2, 0, "progressive"), (1, 1, "progressive"), (1, 1, "fused")],
    ids=["at-an-epoch-start", "mid-epoch", "mid-epoch-fused"],
)
def test_resumed_run_matches_the_uninterrupted_run(
    compose_config,
    aptos_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    epoch: int,
    batch: int,
    step_mode: str,
) -> None:
    overrides = [
        "+experiment=aptos",
        *TINY_TRAINING,
        f"data.root={aptos_root}",
        "pretrain_epochs=1",
        "finetune_epochs=3",
        "trainer.deterministic=true",
        f"step_mode={step_mode}",
    ]
    whole = run_training(compose_config(*overrides), tmp_path / "whole")

    build_trainer = fgssl.pipeline._build_trainer

    def interrupting_trainer(*args, **kwargs):  # type: ignore[no-untyped-def]
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.insert(0, InterruptAt(epoch, batch))
        return trainer

    monkeypatch.setattr(fgssl.pipeline, "_build_trainer", interrupting_trainer)
    with pytest.raises(SystemExit):  # Lightning exits after a graceful Ctrl-C shutdown
        run_training(compose_config(*overrides), tmp_path / "parts")
    last = Path("finetune", "checkpoints", "last.ckpt")
    interrupted = read_checkpoint(tmp_path / "parts" / last)
    # the end of the epoch before the interrupted one; that epoch is redone
    assert interrupted["epoch"] == epoch - 1
    assert not (tmp_path / "parts" / "results.json").exists()

    monkeypatch.setattr(fgssl.pipeline, "_build_trainer", build_trainer)
    resumed = run_training(
        compose_config(*overrides, f"resume={tmp_path / 'parts'}"), tmp_path / "parts"
    )
    final = [read_checkpoint(path / last) for path in (tmp_path / "whole", tmp_path / "parts")]
    whole_steps = final[0]["global_step"]
    steps_per_epoch = whole_steps // 3
    assert interrupted["global_step"] == epoch * steps_per_epoch
    assert final[1]["epoch"] == final[0]["epoch"] == 2
    assert final[1]["global_step"] == whole_steps
    for name, value in final[0]["state_dict"].items():
        assert torch.equal(value, final[1]["state_dict"][name]), name
    assert resumed["test"] == whole["test"]
    assert resumed["best_val_score"] == whole["best_val_score"]
    saved = json.loads((tmp_path / "parts" / "results.json").read_text())
    assert saved["test"] == whole["test"]
    # the resumed run's log holds each epoch once, as the uninterrupted run logged it
    for phase in ("pretrain", "finetune"):
        logs = [
            pd.read_csv(path / phase / "metrics.csv")
            for path in (tmp_path / "whole", tmp_path / "parts")
        ]
        pd.testing.assert_frame_equal(*(_sorted(log) for log in logs))
    # the SSL evaluation of the pretrained weights, read back from the pretrain checkpoint
    for protocol in ("linear_probe", "knn"):
        assert saved["ssl_eval"][protocol] == whole["ssl_eval"][protocol]


def _sorted(log: pd.DataFrame) -> pd.DataFrame:
    """Rows by (epoch, step), then by their values (several rows share a step)."""
    log = log[sorted(log.columns)]
    return log.sort_values(["epoch", "step", *log.columns], na_position="first").reset_index(
        drop=True
    )
