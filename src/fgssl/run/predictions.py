"""The per-image predictions a finished run writes beside ``results.json``:
``predictions/test.csv``, the test epoch's probabilities exactly as its metrics scored them
(every process's, gathered, named by image id), and ``predictions/val.csv``, the best
checkpoint's on the validation split (with the run's test-time augmentation): a fold's
out-of-fold predictions, which a fold sweep's report joins (:mod:`fgssl.run.fold_report`).
The first process writes them, after training; nothing here is a collective."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fgssl.atomic import write_csv_atomically
from fgssl.data.base import ImageClassificationDataModule
from fgssl.evaluation.inference import predict_probabilities
from fgssl.evaluation.prediction_table import prediction_table
from fgssl.module import FGSSLModule
from fgssl.rundir import RunDir

__all__ = ["write_run_predictions"]

log = logging.getLogger(__name__)


def write_run_predictions(
    run: RunDir,
    module: FGSSLModule,
    datamodule: ImageClassificationDataModule,
    *,
    device: torch.device,
    precision: str,
    views: Sequence[str],
) -> list[Path]:
    """Write ``predictions/test.csv`` and ``predictions/val.csv`` of the combined prediction
    (see the module docstring; ``precision`` and ``views``: those of the run's test).
    Returns the files written; what cannot be written is logged, not raised."""
    class_names = [str(name) for name in datamodule.class_names]
    written = []
    try:
        written.append(_write_test(run, module, datamodule, class_names))
    except Exception:
        log.exception("could not write %s (the results are saved)", run.predictions("test"))
    try:
        outputs = predict_probabilities(
            module.net,
            datamodule.eval_dataloader("val"),
            device=device,
            tta=list(views),
            precision=precision,
        )
        ids = datamodule.table("val")["id"].astype(str).to_numpy()[outputs["index"].numpy()]
        table = prediction_table(
            ids.tolist(),
            outputs["label"].numpy(),
            outputs["combined"].double().numpy(),
            class_names,
        )
        written.append(_write(run.predictions("val"), table))
    except Exception:
        log.exception("could not write %s (the results are saved)", run.predictions("val"))
    return written


def _write_test(
    run: RunDir,
    module: FGSSLModule,
    datamodule: ImageClassificationDataModule,
    class_names: list[str],
) -> Path:
    """The test epoch's combined probabilities with the ids of their images, in the order of
    the test split; ValueError when the epoch kept none or their indices do not match."""
    if "combined" not in module.test_predictions or module.test_indices is None:
        raise ValueError("the test epoch kept no per-image predictions")
    probabilities, labels = module.test_predictions["combined"]
    indices = module.test_indices
    if len(indices) != len(labels) or len(np.unique(indices)) != len(indices):
        raise ValueError(
            f"{len(indices)} image indices ({len(np.unique(indices))} distinct) for "
            f"{len(labels)} test predictions"
        )
    order = np.argsort(indices, kind="stable")
    ids = datamodule.table("test")["id"].astype(str).to_numpy()[indices[order]]
    table = prediction_table(ids.tolist(), labels[order], probabilities[order], class_names)
    return _write(run.predictions("test"), table)


def _write(path: Path, table: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv_atomically(path, table, exact=True)
