"""An interrupted and resumed run ends exactly where an uninterrupted one does (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import fgssl.pipeline
from conftest import TINY_TRAINING
from fgssl.checkpointing import read_checkpoint
from fgssl.pipeline import run_training


class InterruptAtEpoch(pl.Callback):
    """Ctrl-C at the start of finetune epoch ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.phase == "finetune" and trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resumed_run_matches_the_uninterrupted_run(
    compose_config, aptos_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [
        "+experiment=aptos",
        *TINY_TRAINING,
        f"data.root={aptos_root}",
        "pretrain_epochs=1",
        "finetune_epochs=3",
        "trainer.deterministic=true",
    ]
    whole = run_training(compose_config(*overrides), tmp_path / "whole")

    build_trainer = fgssl.pipeline._build_trainer

    def interrupting_trainer(*args, **kwargs):  # type: ignore[no-untyped-def]
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.insert(0, InterruptAtEpoch(2))
        return trainer

    monkeypatch.setattr(fgssl.pipeline, "_build_trainer", interrupting_trainer)
    with pytest.raises(SystemExit):  # Lightning exits after a graceful Ctrl-C shutdown
        run_training(compose_config(*overrides), tmp_path / "parts")
    interrupted = read_checkpoint(tmp_path / "parts" / "finetune" / "checkpoints" / "last.ckpt")
    assert interrupted["epoch"] == 2 and not (tmp_path / "parts" / "results.json").exists()

    monkeypatch.setattr(fgssl.pipeline, "_build_trainer", build_trainer)
    resumed = run_training(
        compose_config(*overrides, f"resume={tmp_path / 'parts'}"), tmp_path / "parts"
    )
    assert resumed["test"] == whole["test"]
    assert resumed["best_val_score"] == whole["best_val_score"]
    final = [
        read_checkpoint(path / "finetune" / "checkpoints" / "last.ckpt")
        for path in (tmp_path / "whole", tmp_path / "parts")
    ]
    assert final[0]["global_step"] == final[1]["global_step"]
    for name, value in final[0]["state_dict"].items():
        assert torch.equal(value, final[1]["state_dict"][name]), name
    saved = json.loads((tmp_path / "parts" / "results.json").read_text())
    assert saved["test"] == whole["test"]
    # the SSL evaluation of the pretrained weights, read back from the pretrain checkpoint
    for protocol in ("linear_probe", "knn"):
        assert saved["ssl_eval"][protocol] == whole["ssl_eval"][protocol]
