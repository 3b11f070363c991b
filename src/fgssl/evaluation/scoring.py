"""Scoring predicted class probabilities: the task metrics, confusion matrix, per-class report."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm

from fgssl.metrics import Scores, compute_scores, confusion_matrix_metric, one_vs_rest_auroc
from fgssl.thresholds import FittedThresholds, add_thresholded_kappa
from fgssl.undefined import undefined_messages

__all__ = ["confusion_matrix", "per_class_report", "score", "score_heads"]

log = logging.getLogger(__name__)


def score_heads(
    probabilities: dict[str, torch.Tensor],
    labels: torch.Tensor,
    *,
    split: str,
    ordinal: bool = False,
    class_names: Sequence[str] | None = None,
    thresholds: FittedThresholds | None = None,
) -> dict[str, dict[str, float]]:
    """The metrics of :func:`fgssl.metrics.compute_scores` of each (N, C) probability tensor
    of ``probabilities`` (by name, e.g. head or protocol) against (N,) ``labels``: name ->
    metric -> value, NaN where undefined; with ``thresholds`` (of ordinal data), each head's
    ``kappa_thresholded`` (:func:`fgssl.thresholds.add_thresholded_kappa`). Logs one
    warning per undefined metric naming the ``split``, the names concerned and why, and one
    naming the classes absent from it."""
    y = labels.long().cpu().numpy()
    scores: dict[str, Scores] = {}
    for name, tensor in probabilities.items():
        p = tensor.double().cpu().numpy()
        scores[name] = compute_scores(p, y, ordinal=ordinal, class_names=class_names)
        if thresholds is not None:
            add_thresholded_kappa(scores[name], p, y, thresholds, name, class_names)
    for message in undefined_messages(
        split, {f"{name}/" if name else "": s for name, s in scores.items()}
    ):
        log.warning("%s", message)
    return {name: dict(sorted(s.values.items())) for name, s in scores.items()}


def score(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    *,
    ordinal: bool = False,
    class_names: Sequence[str] | None = None,
    split: str = "scored",
) -> dict[str, float]:
    """The metrics of :func:`fgssl.metrics.compute_scores` of (N, C) probabilities against
    (N,) labels, NaN where undefined (with a warning naming ``split``, see
    :func:`score_heads`)."""
    return score_heads(
        {"": probabilities}, labels, split=split, ordinal=ordinal, class_names=class_names
    )[""]


def confusion_matrix(probabilities: torch.Tensor, labels: torch.Tensor) -> list[list[int]]:
    """Counts of (true class, predicted class = argmax) pairs, rows = true class."""
    metric = confusion_matrix_metric(probabilities.shape[1])
    matrix: list[list[int]] = metric(probabilities.float(), labels.long()).long().tolist()
    return matrix


def per_class_report(
    probabilities: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per class: precision, recall, F1, one-vs-rest AUROC and support (true count).

    Undefined values are NaN (empty cells in a CSV): precision of a class never predicted,
    recall of a class absent from the targets, F1 of a class in neither (scikit-learn's
    ``precision_recall_fscore_support(zero_division=nan)``), and the AUROC of a class that
    no target, or every target, is (:func:`fgssl.metrics.one_vs_rest_auroc`).
    """
    p = probabilities.double().cpu().numpy()
    y = labels.long().cpu().numpy()
    classes = list(range(p.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined values are NaN by design
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            y, p.argmax(axis=1), labels=classes, zero_division=np.nan
        )
    auroc = [one_vs_rest_auroc(y, p, c) if len(y) else math.nan for c in classes]
    return pd.DataFrame(
        {
            "class": list(class_names),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "auroc": auroc,
            "support": support.astype(np.int64),
        }
    )
