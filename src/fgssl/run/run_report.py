"""What a finished run adds for a paper and for people: results.json's intervals,
calibration and referable-DR view (from the test epoch's gathered predictions), the
reliability diagram, report.html, and the files attached to an MLflow run. Training is over:
a failure here is logged, never raised (results.json is written already or next)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fgssl.evaluation.calibration import reliability_bins
from fgssl.evaluation.reporting import paper_report
from fgssl.run.factory import bootstrap_settings
from fgssl.run.html_report import write_run_html
from fgssl.run.tracking import attach_run_files
from fgssl.rundir import RELIABILITY_DIAGRAM, RunDir
from fgssl.thresholds import FittedThresholds
from fgssl.undefined import undefined_to_null

__all__ = ["add_paper_report", "publish_run", "write_reliability_diagram"]

log = logging.getLogger(__name__)


def add_paper_report(
    cfg: DictConfig,
    results: dict[str, Any],
    test_predictions: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    ordinal: bool,
    class_names: list[str],
    thresholds: FittedThresholds | None = None,
) -> None:
    """Add ``intervals``, ``calibration`` (and ``screening``) to ``results`` from each
    head's (probabilities, labels) of the test epoch (with the run's ordinal ``thresholds``,
    the interval of ``kappa_thresholded`` too); logs the official metric's interval."""
    if not test_predictions:
        log.warning("no test predictions were kept: results.json has no intervals")
        return
    try:
        labels = next(iter(test_predictions.values()))[1]
        heads = {head: probabilities for head, (probabilities, _) in test_predictions.items()}
        report = paper_report(
            heads,
            labels,
            ordinal=ordinal,
            class_names=class_names,
            settings=bootstrap_settings(cfg),
            thresholds=thresholds,
        )
    except Exception:
        log.exception("the bootstrap intervals and calibration failed (results are saved)")
        return
    results.update(undefined_to_null(report))


def write_reliability_diagram(
    run: RunDir, test_predictions: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    """The combined prediction's reliability diagram (a failure is logged)."""
    from fgssl.plots.calibration import plot_reliability_diagram

    if "combined" not in test_predictions:
        return
    probabilities, labels = test_predictions["combined"]
    try:
        bins = reliability_bins(probabilities, labels)
        plot_reliability_diagram(bins, run.root / RELIABILITY_DIAGRAM, title="combined, test split")
    except Exception:
        log.exception("could not draw %s", RELIABILITY_DIAGRAM)


def publish_run(cfg: DictConfig, run: RunDir) -> None:
    """Write report.html, then attach the run's files to its MLflow run (logger=mlflow);
    failures are logged."""
    files = [run.config, run.results]
    try:
        files.append(write_run_html(run.root))
    except Exception:
        log.exception("could not write the report.html of %s", run.root)
    files += sorted(run.root.glob("*.png"))
    try:
        attach_run_files(cfg.get("logger") or {}, run.root, files)
    except Exception:
        log.exception("could not attach the run's files to its MLflow run")
