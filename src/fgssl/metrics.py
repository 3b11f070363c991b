"""Task metrics, computed over the whole epoch with torchmetrics (and so across DDP processes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCohenKappa,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

__all__ = [
    "ISIC2017_AUROC_CLASSES",
    "METRIC_DESCRIPTIONS",
    "ClassAUROC",
    "classification_metrics",
    "confusion_matrix_metric",
]

METRIC_DESCRIPTIONS = {
    "acc": "accuracy",
    "balanced_acc": "balanced accuracy (mean per-class recall)",
    "f1": "macro F1",
    "precision": "macro precision",
    "recall": "macro recall",
    "auroc": "macro one-vs-rest AUROC",
    "kappa": "quadratic weighted Cohen's kappa",
    "auroc_melanoma": "AUROC of melanoma vs rest (ISIC 2017 task 3a)",
    "auroc_seborrheic_keratosis": "AUROC of seborrheic keratosis vs rest (ISIC 2017 task 3b)",
    "mean_auroc": "mean of the two ISIC 2017 AUROCs (the official ranking)",
}

ISIC2017_AUROC_CLASSES = ("melanoma", "seborrheic_keratosis")
"""Classes of the ISIC 2017 Part 3 task whose one-vs-rest AUROCs are scored."""


class ClassAUROC(MulticlassAUROC):
    """One-vs-rest AUROC of chosen classes of a multiclass task, from class probabilities.

    With one class it is that class's AUROC; with several, the mean of their AUROCs (ISIC
    2017's official score is the mean over melanoma and seborrheic keratosis).
    """

    def __init__(self, num_classes: int, classes: Sequence[int], **kwargs: Any):
        super().__init__(num_classes, average=None, **kwargs)
        if not classes or not all(0 <= c < num_classes for c in classes):
            raise ValueError(f"classes must be indices in [0, {num_classes}), got {classes}")
        self.classes = list(classes)

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        per_class = super().compute()
        return per_class[self.classes].mean()


def classification_metrics(
    num_classes: int, *, ordinal: bool = False, class_names: Sequence[str] | None = None
) -> MetricCollection:
    """Metrics of a single-label classification task, fed with (probabilities, labels).

    ``ordinal`` adds the quadratic weighted kappa, the metric of graded tasks (APTOS).
    When ``class_names`` include ``melanoma`` and ``seborrheic_keratosis`` (ISIC 2017 Part 3
    as one three-class task), the AUROC of each against the rest (``auroc_melanoma``,
    ``auroc_seborrheic_keratosis``) and their mean (``mean_auroc``) are added.
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
    names = list(class_names or ())
    if names and len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes: {names}")
    if all(name in names for name in ISIC2017_AUROC_CLASSES):
        indices = [names.index(name) for name in ISIC2017_AUROC_CLASSES]
        for name, index in zip(ISIC2017_AUROC_CLASSES, indices, strict=True):
            metrics[f"auroc_{name}"] = ClassAUROC(num_classes, [index])
        metrics["mean_auroc"] = ClassAUROC(num_classes, indices)
    return MetricCollection(metrics)


def confusion_matrix_metric(num_classes: int) -> MulticlassConfusionMatrix:
    """Counts, rows = true class, columns = predicted class (fed with probabilities, labels)."""
    return MulticlassConfusionMatrix(num_classes)
