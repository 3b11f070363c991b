"""Scoring predicted class probabilities: the task metrics, confusion matrix, per-class report."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torchmetrics.classification import MulticlassAUROC

from fgssl.metrics import classification_metrics, confusion_matrix_metric

__all__ = ["confusion_matrix", "per_class_report", "score"]


def score(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    *,
    ordinal: bool = False,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """The metrics of :func:`fgssl.metrics.classification_metrics` on (N, C) probabilities."""
    metrics = classification_metrics(
        probabilities.shape[1], ordinal=ordinal, class_names=class_names
    )
    values = metrics(probabilities.float(), labels.long())
    return {name: float(value) for name, value in sorted(values.items())}


def confusion_matrix(probabilities: torch.Tensor, labels: torch.Tensor) -> list[list[int]]:
    """Counts of (true class, predicted class = argmax) pairs, rows = true class."""
    metric = confusion_matrix_metric(probabilities.shape[1])
    matrix: list[list[int]] = metric(probabilities.float(), labels.long()).long().tolist()
    return matrix


def per_class_report(
    probabilities: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per class: precision, recall, F1, one-vs-rest AUROC and support (true count).

    Precision (recall) is 0 for a class never predicted (never present), as scikit-learn's
    ``zero_division=0``.
    """
    counts = torch.tensor(confusion_matrix(probabilities, labels), dtype=torch.float64)
    true_positives = counts.diagonal()
    predicted = counts.sum(dim=0)
    support = counts.sum(dim=1)
    precision = torch.where(predicted > 0, true_positives / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, true_positives / support.clamp(min=1), 0.0)
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-12), 0.0)
    auroc = MulticlassAUROC(probabilities.shape[1], average=None)(
        probabilities.float(), labels.long()
    )
    return pd.DataFrame(
        {
            "class": list(class_names),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "auroc": auroc.double().tolist(),
            "support": support.long().tolist(),
        }
    )
