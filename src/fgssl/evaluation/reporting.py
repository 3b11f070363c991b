"""What a paper reports beside the point metrics, from per-image test predictions: the
bootstrap intervals of every metric, the calibration, and the referable-DR view of graded
DR data, as the JSON trees ``results.json`` holds under ``intervals``, ``calibration`` and
``screening``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fgssl.thresholds import FittedThresholds

from .bootstrap import BootstrapSettings, bootstrap_intervals
from .calibration import ECE_BINS, expected_calibration_error
from .screening import is_icdr_graded, referable_dr

__all__ = ["BINNING", "paper_report"]

BINNING = (
    f"expected calibration error over {ECE_BINS} equal-width bins ((m-1)/{ECE_BINS}, "
    f"m/{ECE_BINS}] of the confidence (the largest class probability), Guo et al. 2017"
)


def paper_report(
    heads: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    ordinal: bool,
    class_names: Sequence[str],
    settings: BootstrapSettings | None = None,
    split: str = "test",
    thresholds: FittedThresholds | None = None,
) -> dict[str, Any]:
    """``{"intervals": {"settings": ..., <split>: {head: {metric: interval}}},
    "calibration": {"binning": ..., "heads": {head: {"ece": x}}}}`` for each head's (N, C)
    probabilities against (N,) labels, plus ``"screening"`` (referable DR of the
    ``combined`` head, or the first) for an ICDR-graded task; with a graded run's
    ``thresholds``, the intervals include ``kappa_thresholded``. Undefined values are
    None."""
    settings = settings or BootstrapSettings()
    labels = np.asarray(labels).astype(np.int64)
    intervals = bootstrap_intervals(
        heads,
        labels,
        ordinal=ordinal,
        class_names=class_names,
        settings=settings,
        ece=True,
        split=f"the {split} split",
        thresholds=thresholds,
    )
    calibration = {}
    for head, p in heads.items():
        ece = expected_calibration_error(p, labels)
        calibration[head] = {"ece": None if np.isnan(ece) else ece}
    report: dict[str, Any] = {
        "intervals": {
            "settings": settings.to_json(),
            split: {
                head: {name: interval.to_json() for name, interval in metrics.items()}
                for head, metrics in intervals.items()
            },
        },
        "calibration": {"binning": BINNING, "heads": calibration},
    }
    if is_icdr_graded(class_names, ordinal) and heads:
        head = "combined" if "combined" in heads else next(iter(heads))
        report["screening"] = {
            "head": head,
            **referable_dr(heads[head], labels, settings).to_json(),
        }
    return report
