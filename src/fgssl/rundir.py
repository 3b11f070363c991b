"""The run directory of ``fgssl-train``, defined once.

Part of the foundation, so that every layer may read the names: the run package writes and
reads run directories, fgssl-eval writes ``results.json`` and ``reliability_diagram.png``
into its own folder, the training-curves figure reads the phases' ``metrics.csv``. (It was
``fgssl.run.layout``, which evaluation and plots imported against the layer rule; that
name still imports it.)

Layout::

    config.yaml                      the resolved config of the run
    split.csv                        id, label, split of every image
    pretrain/metrics.csv             per-step and per-epoch losses of the pretrain phase
    pretrain/checkpoints/last.ckpt
    finetune/metrics.csv             losses and validation metrics per epoch
    finetune/checkpoints/best.ckpt   best validation score (``monitor``)
    finetune/checkpoints/last.ckpt
    results.json                     test metrics of the best checkpoint, and run facts
    predictions/test.csv             per-image probabilities of the test (as scored)
    predictions/val.csv              the best checkpoint's on the validation split (a fold's
                                     out-of-fold predictions)
    failed.json                      a sweep job that stopped with fgssl's error, and why
    .fgssl-run                       who started the run and when: made exclusively when the
                                     run starts, so that no other run uses the folder
    eval/                            fgssl-eval's default output folder
    training_curves.png, jigsaw_schedule.png, gradcam.png, confusion_matrix.png,
    reliability_diagram.png
    report.html                      the run on one self-contained page
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "BEST_CHECKPOINT",
    "CONFIG",
    "EVAL_DIR",
    "FAILED",
    "LAST_CHECKPOINT",
    "METRICS",
    "PHASES",
    "PREDICTIONS_DIR",
    "RELIABILITY_DIAGRAM",
    "REPORT_HTML",
    "RESULTS",
    "RUN_MARKER",
    "SPLIT",
    "SWEEP_MARKER",
    "Phase",
    "RunDir",
]

Phase = Literal["pretrain", "finetune"]
PHASES: tuple[Phase, Phase] = ("pretrain", "finetune")
"""The training phases, in the order a run trains them; each has a folder of that name."""

CONFIG = "config.yaml"
SPLIT = "split.csv"
RESULTS = "results.json"
FAILED = "failed.json"
METRICS = "metrics.csv"
RUN_MARKER = ".fgssl-run"
"""Made (exclusively) by the run that starts in a folder: the folder holds that run."""
SWEEP_MARKER = ".fgssl-sweep"
"""Made (exclusively) in a sweep directory by the sweep that starts in it."""
EVAL_DIR = "eval"
PREDICTIONS_DIR = "predictions"
"""Per-image predictions of the run's labelled splits (:meth:`RunDir.predictions`)."""
REPORT_HTML = "report.html"
"""The run's (or a sweep's) self-contained page."""
RELIABILITY_DIAGRAM = "reliability_diagram.png"
LAST_CHECKPOINT = Path("checkpoints", "last.ckpt")
"""Saved after every epoch (relative to a phase folder): what a resumed run continues from."""
BEST_CHECKPOINT = Path("checkpoints", "best.ckpt")
"""The finetune phase's best validation epoch (relative to the phase folder)."""


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (``root``); nothing is created or read."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def split(self) -> Path:
        return self.root / SPLIT

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    @property
    def failed(self) -> Path:
        return self.root / FAILED

    @property
    def marker(self) -> Path:
        return self.root / RUN_MARKER

    @property
    def eval_dir(self) -> Path:
        return self.root / EVAL_DIR

    def predictions(self, split: str) -> Path:
        """The per-image predictions of ``split`` (``test``, ``val``), as
        :mod:`fgssl.evaluation.prediction_table` writes them."""
        return self.root / PREDICTIONS_DIR / f"{split}.csv"

    def phase(self, phase: Phase) -> Path:
        """The folder of ``phase`` (its metrics log and checkpoints)."""
        return self.root / phase

    def metrics(self, phase: Phase) -> Path:
        return self.phase(phase) / METRICS

    def last_checkpoint(self, phase: Phase) -> Path:
        return self.phase(phase) / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        """The finetune phase's best checkpoint (the pretrain phase has no validation)."""
        return self.phase("finetune") / BEST_CHECKPOINT

    def checkpoints(self, phase: Phase) -> tuple[Path, ...]:
        """The checkpoints of ``phase`` to load, in order of preference."""
        if phase == "finetune":
            return (self.best_checkpoint, self.last_checkpoint(phase))
        return (self.last_checkpoint(phase),)
