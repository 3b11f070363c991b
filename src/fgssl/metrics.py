"""Task metrics, computed over the whole epoch with torchmetrics (and so across DDP processes)."""

from __future__ import annotations

from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

__all__ = ["METRIC_DESCRIPTIONS", "classification_metrics"]

METRIC_DESCRIPTIONS = {
    "acc": "accuracy",
    "balanced_acc": "balanced accuracy (mean per-class recall)",
    "f1": "macro F1",
    "precision": "macro precision",
    "recall": "macro recall",
    "auroc": "macro one-vs-rest AUROC",
    "kappa": "quadratic weighted Cohen's kappa",
}


def classification_metrics(num_classes: int, *, ordinal: bool = False) -> MetricCollection:
    """Metrics of a single-label classification task, fed with (probabilities, labels).

    ``ordinal`` adds the quadratic weighted kappa, the metric of graded tasks (APTOS).
    """
    metrics: dict[str, Metric | MetricCollection] = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "balanced_acc": MulticlassRecall(num_classes, average="macro"),
        "f1": MulticlassF1Score(num_classes, average="macro"),
        "precision": MulticlassPrecision(num_classes, average="macro"),
        "recall": MulticlassRecall(num_classes, average="macro"),
        "auroc": MulticlassAUROC(num_classes, average="macro"),
    }
    if ordinal:
        metrics["kappa"] = MulticlassCohenKappa(num_classes, weights="quadratic")
    return MetricCollection(metrics)
