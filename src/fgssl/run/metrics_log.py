"""A CSV metrics log that a resumed phase continues instead of overwriting."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from lightning_fabric.loggers.csv_logs import _ExperimentWriter as _FabricExperimentWriter
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from fgssl.atomic import write_text_atomically

__all__ = ["ContinuingCSVLogger", "trim_metrics_log"]


class _ContinuingWriter(ExperimentWriter):
    """Appends to an existing ``metrics.csv`` (Lightning's writer deletes it)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(csv.DictReader(file).fieldnames or [])


class ContinuingCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that it appends to the ``metrics.csv`` it finds, so
    that a resumed phase keeps the rows of the epochs it does not redo.

    A fresh run should start without that file, and a resumed one with the rows of its
    unfinished epoch removed: :func:`trim_metrics_log` does both.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> _FabricExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


def trim_metrics_log(path: str | os.PathLike[str], last_epoch: int | None) -> None:
    """Keep only the rows of ``path`` (a Lightning ``metrics.csv``) logged up to the end of
    epoch ``last_epoch``; with None, remove the file.

    Rows without an epoch (the learning rates, logged as an epoch starts) are kept up to
    the last step of the kept epochs.
    """
    path = Path(path)
    if last_epoch is None:
        path.unlink(missing_ok=True)
        return
    if not path.is_file():
        return
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        fieldnames = list(reader.fieldnames or [])
        rows = list(reader)

    def in_kept_epoch(row: dict[str, str]) -> bool:
        epoch = _number(row, "epoch")
        return epoch is not None and epoch <= last_epoch

    last_step = max((_number(row, "step") or 0 for row in rows if in_kept_epoch(row)), default=-1)
    kept = [
        row
        for row in rows
        if in_kept_epoch(row)
        or (_number(row, "epoch") is None and (_number(row, "step") or 0) <= last_step)
    ]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(kept)
    write_text_atomically(path, text.getvalue())


def _number(row: dict[str, str], column: str) -> int | None:
    value = (row.get(column) or "").strip()
    return int(float(value)) if value else None
