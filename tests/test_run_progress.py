"""PhaseProgress: one line per epoch with the phase, epoch N of M and the time left."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from fgssl.run.progress import PhaseProgress, format_duration

EPOCH_LINE = re.compile(
    r"^(?P<phase>\w+) epoch (?P<epoch>\d+)/(?P<epochs>\d+) · [\d.]+ s/epoch · "
    r"(about \S+( min \S+)? s left in this phase|phase done in \S+( min \S+)? s)$"
)


class Tiny(pl.LightningModule):
    """A linear model on 8 random points: batches of 4, so 2 training batches."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        data = TensorDataset(torch.randn(8, 2), torch.randn(8, 1))
        self.loader = DataLoader(data, batch_size=4)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logging.getLogger("fgssl.run.progress").info("validation batch")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader[Any]:
        return self.loader

    def val_dataloader(self) -> DataLoader[Any]:
        return self.loader

    def test_dataloader(self) -> DataLoader[Any]:
        return self.loader


def tiny_trainer(epochs: int, root: Path, **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
        **kwargs,
    )


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fgssl.run.progress"]


def test_one_line_per_epoch_with_epoch_of_total_and_time_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fgssl.run.progress")
    trainer = tiny_trainer(3, tmp_path, callbacks=[PhaseProgress("finetune")])
    trainer.fit(Tiny())
    trainer.test(Tiny(), verbose=False)
    lines = progress_lines(caplog)
    assert lines[0] == "finetune: 3 epochs of 2 training batches"
    epoch_lines = [line for line in lines if " epoch " in line]
    assert len(epoch_lines) == 3
    for number, line in enumerate(epoch_lines, start=1):
        match = EPOCH_LINE.match(line)
        assert match, line
        assert (match["phase"], match["epoch"], match["epochs"]) == ("finetune", str(number), "3")
    assert "left in this phase" in epoch_lines[0] and "left in this phase" in epoch_lines[1]
    assert "phase done in" in epoch_lines[2]
    # each epoch's line comes after its validation (2 validation batches per epoch), so
    # the time per epoch includes validation
    validation = ["validation batch"] * 2
    assert lines[1:10] == [
        *validation,
        epoch_lines[0],
        *validation,
        epoch_lines[1],
        *validation,
        epoch_lines[2],
    ]
    assert lines[-1] == "test: 2 batches"


def test_a_resumed_phase_counts_epochs_of_the_whole_phase(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = tiny_trainer(2, tmp_path)
    first.fit(Tiny())
    checkpoint = tmp_path / "two-epochs.ckpt"
    first.save_checkpoint(checkpoint)
    caplog.set_level(logging.INFO, logger="fgssl.run.progress")
    resumed = tiny_trainer(4, tmp_path, callbacks=[PhaseProgress("pretrain")])
    resumed.fit(Tiny(), ckpt_path=str(checkpoint), weights_only=False)
    epochs = [line.split(" · ")[0] for line in progress_lines(caplog) if " epoch " in line]
    assert epochs == ["pretrain epoch 3/4", "pretrain epoch 4/4"]


def test_only_the_first_process_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fgssl.run.progress")
    progress = PhaseProgress("pretrain")
    other_rank: Any = SimpleNamespace(
        is_global_zero=False,
        max_epochs=5,
        current_epoch=0,
        num_training_batches=3,
        num_test_batches=[2],
    )
    progress.on_train_start(other_rank, None)
    progress.on_train_epoch_end(other_rank, None)
    progress.on_test_start(other_rank, None)
    assert progress_lines(caplog) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.04, "0.0 s"),
        (9.94, "9.9 s"),
        (9.96, "10 s"),
        (59.4, "59 s"),
        (59.6, "1 min 00 s"),
        (425, "7 min 05 s"),
        (3599.6, "1 h 00 min"),
        (3720, "1 h 02 min"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
