"""Task metrics of single-label classification, by scikit-learn's definitions.

Predictions are accumulated over a whole epoch in torchmetrics states (so every DDP process's
predictions are gathered before scoring) and scored with scikit-learn. A metric that is
undefined on the predictions (e.g. an AUROC whose class has no positive) is NaN, with the
reason in :attr:`Scores.undefined`; it is never replaced by 0. The rule of each metric:

- ``acc``: :func:`sklearn.metrics.accuracy_score`.
- ``balanced_acc``: :func:`sklearn.metrics.balanced_accuracy_score`, the mean recall over the
  classes present in the targets.
- ``precision``, ``recall``, ``f1``: :func:`sklearn.metrics.precision_recall_fscore_support`
  with ``average="macro"`` and ``zero_division=nan``: the mean over the classes present in the
  targets or the predictions of the values that are defined (a never-predicted class has no
  precision, a class absent from the targets no recall), so ``recall`` equals ``balanced_acc``.
- ``auroc``: the mean one-vs-rest :func:`sklearn.metrics.roc_auc_score` over the classes
  present in the targets (a binary task: the AUROC of class 1's probability); undefined with
  fewer than two classes in the targets.
- ``kappa``: :func:`sklearn.metrics.cohen_kappa_score` with quadratic weights on the grade
  indices (``labels=range(C)``); undefined when the targets and predictions all hold one same
  class (no disagreement is expected by chance).
- ``auroc_<class>`` (ISIC 2017): ``roc_auc_score(y == class, p[:, class])``, undefined when no
  target, or every target, is that class; ``mean_auroc``: their mean, undefined if one is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn import metrics as skm
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "ISIC2017_AUROC_CLASSES",
    "METRIC_DESCRIPTIONS",
    "ClassificationMetrics",
    "Scores",
    "classification_metrics",
    "compute_scores",
    "confusion_matrix_metric",
    "metric_names",
    "one_vs_rest_auroc",
]

METRIC_DESCRIPTIONS = {
    "acc": "accuracy",
    "balanced_acc": "balanced accuracy (mean recall over the classes in the targets)",
    "f1": "macro F1",
    "precision": "macro precision",
    "recall": "macro recall",
    "auroc": "macro one-vs-rest AUROC (over the classes in the targets)",
    "kappa": "quadratic weighted Cohen's kappa",
    "kappa_thresholded": "kappa of the expected grade cut by thresholds fitted on val",
    "auroc_melanoma": "AUROC of melanoma vs rest (ISIC 2017 task 3a)",
    "auroc_seborrheic_keratosis": "AUROC of seborrheic keratosis vs rest (ISIC 2017 task 3b)",
    "mean_auroc": "mean of the two ISIC 2017 AUROCs (the official ranking)",
}

ISIC2017_AUROC_CLASSES = ("melanoma", "seborrheic_keratosis")
"""Classes of the ISIC 2017 Part 3 task whose one-vs-rest AUROCs are scored."""

_COUNT_METRICS = ("acc", "balanced_acc", "precision", "recall", "f1")


@dataclass
class Scores:
    """The metrics of one set of predictions."""

    values: dict[str, float]
    """Metric name -> value; NaN where undefined."""
    undefined: dict[str, str] = field(default_factory=dict)
    """Metric name -> why it is undefined (names the classes concerned)."""
    absent: list[str] = field(default_factory=list)
    """Classes (names, or ``class <index>``) without any image among the targets."""


def _class_label(index: int, class_names: Sequence[str] | None) -> str:
    return repr(class_names[index]) if class_names else f"class {index}"


def one_vs_rest_auroc(labels: np.ndarray, probabilities: np.ndarray, index: int) -> float:
    """AUROC of class ``index`` against the rest: ``roc_auc_score(labels == index,
    probabilities[:, index])`` for (N,) labels and (N, C) probabilities; NaN when no target,
    or every target, is that class."""
    positive = labels == index
    if positive.all() or not positive.any():
        return math.nan
    return float(skm.roc_auc_score(positive, probabilities[:, index]))


def compute_scores(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    ordinal: bool = False,
    class_names: Sequence[str] | None = None,
) -> Scores:
    """The task metrics (see the module's docstring for their rules) of (N, C) class
    probabilities against (N,) integer labels in [0, C); predictions are the argmax (the
    first of tied maxima). ``ordinal`` adds ``kappa``; ``class_names`` with ISIC 2017's
    ``melanoma`` and ``seborrheic_keratosis`` add their AUROCs and ``mean_auroc``."""
    num_classes = probabilities.shape[1]
    names = _metric_names(num_classes, ordinal, class_names)
    labels = labels.astype(np.int64)
    if labels.size == 0:
        return Scores({name: math.nan for name in names}, {name: "no images" for name in names}, [])
    predicted = probabilities.argmax(axis=1)
    support = np.bincount(labels, minlength=num_classes)
    present = np.flatnonzero(support)
    values: dict[str, float] = {}
    undefined: dict[str, str] = {}
    with warnings.catch_warnings():
        # scikit-learn warns about the undefined values we report ourselves
        warnings.simplefilter("ignore")
        values["acc"] = float(skm.accuracy_score(labels, predicted))
        values["balanced_acc"] = float(skm.balanced_accuracy_score(labels, predicted))
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            labels, predicted, average="macro", zero_division=np.nan
        )
        values.update(precision=float(precision), recall=float(recall), f1=float(f1))
        if ordinal:
            values["kappa"] = float(
                skm.cohen_kappa_score(
                    labels, predicted, weights="quadratic", labels=list(range(num_classes))
                )
            )
    only = _class_label(int(present[0]), class_names)
    if len(present) < 2:
        values["auroc"] = math.nan
        undefined["auroc"] = (
            f"the targets hold only {only} (a one-vs-rest AUROC needs positives and negatives)"
        )
    elif num_classes == 2:
        values["auroc"] = float(skm.roc_auc_score(labels, probabilities[:, 1]))
    else:
        values["auroc"] = float(
            np.mean([one_vs_rest_auroc(labels, probabilities, int(c)) for c in present])
        )
    if ordinal and math.isnan(values["kappa"]):
        undefined["kappa"] = (
            f"the targets and predictions are all {only} (no disagreement expected by chance)"
        )
    for name in _COUNT_METRICS:  # defined on any non-empty split; a guard against NaN
        if math.isnan(values[name]):
            undefined[name] = "no class has a defined value"
    _add_isic2017_aurocs(values, undefined, labels, probabilities, class_names)
    absent = [_class_label(int(c), class_names) for c in np.flatnonzero(support == 0)]
    return Scores({name: values[name] for name in names}, undefined, absent)


def _add_isic2017_aurocs(
    values: dict[str, float],
    undefined: dict[str, str],
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str] | None,
) -> None:
    indices = _isic2017_indices(class_names)
    if not indices:
        return
    for name, index in zip(ISIC2017_AUROC_CLASSES, indices, strict=True):
        key = f"auroc_{name}"
        values[key] = one_vs_rest_auroc(labels, probabilities, index)
        if math.isnan(values[key]):
            count = int((labels == index).sum())
            undefined[key] = f"{'no' if count == 0 else 'every'} target is {name!r}"
    parts = [f"auroc_{name}" for name in ISIC2017_AUROC_CLASSES]
    values["mean_auroc"] = float(np.mean([values[part] for part in parts]))
    missing = [part for part in parts if part in undefined]
    if missing:
        undefined["mean_auroc"] = "; ".join(f"{part}: {undefined[part]}" for part in missing)


def _isic2017_indices(class_names: Sequence[str] | None) -> list[int]:
    names = list(class_names or ())
    if not all(name in names for name in ISIC2017_AUROC_CLASSES):
        return []
    return [names.index(name) for name in ISIC2017_AUROC_CLASSES]


def _metric_names(num_classes: int, ordinal: bool, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"{len(class_names)} class names for {num_classes} classes: {list(class_names)}"
        )
    return metric_names(ordinal=ordinal, class_names=class_names)


def metric_names(*, ordinal: bool, class_names: Sequence[str] | None) -> list[str]:
    """The names of the metrics :func:`compute_scores` returns for a task, in that order:
    the count metrics and ``auroc``, ``kappa`` when ``ordinal``, the ISIC 2017 AUROCs and
    ``mean_auroc`` when ``class_names`` hold both of :data:`ISIC2017_AUROC_CLASSES`."""
    names = [*_COUNT_METRICS, "auroc", *(["kappa"] if ordinal else [])]
    if _isic2017_indices(class_names):
        names += [f"auroc_{name}" for name in ISIC2017_AUROC_CLASSES] + ["mean_auroc"]
    return names


class ClassificationMetrics(Metric):
    """Accumulates (N, C) class probabilities and (N,) labels over an epoch (gathered from
    every process when computed) and computes :func:`compute_scores` on them.

    :meth:`compute` returns metric name -> 0-dim float64 tensor (NaN where undefined); the
    reasons are in :attr:`scores` afterwards.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    probabilities: list[torch.Tensor]
    labels: list[torch.Tensor]

    def __init__(
        self,
        num_classes: int,
        *,
        ordinal: bool = False,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ordinal = ordinal
        self.class_names = list(class_names) if class_names else None
        self.names = _metric_names(num_classes, ordinal, self.class_names)
        """The names of the metrics :meth:`compute` returns."""
        self.scores: Scores | None = None
        """What the last :meth:`compute` found, with the reasons of undefined values."""
        self.scored: tuple[np.ndarray, np.ndarray] | None = None
        """The (N, C) probabilities and (N,) labels the last :meth:`compute` scored (every
        process's, gathered): what the bootstrap intervals resample."""
        self.add_state("probabilities", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, probabilities: torch.Tensor, labels: torch.Tensor) -> None:
        if probabilities.ndim != 2 or probabilities.shape[1] != self.num_classes:
            raise ValueError(
                f"expected (N, {self.num_classes}) probabilities, got {tuple(probabilities.shape)}"
            )
        self.probabilities.append(probabilities.detach().float())
        self.labels.append(labels.detach().long())

    def compute(self) -> dict[str, torch.Tensor]:
        if isinstance(self.labels, list) and not self.labels:
            probabilities, labels = np.zeros((0, self.num_classes)), np.zeros(0, np.int64)
        else:
            probabilities = dim_zero_cat(self.probabilities).double().cpu().numpy()
            labels = dim_zero_cat(self.labels).cpu().numpy()
        self.scored = (probabilities, labels)
        self.scores = compute_scores(
            probabilities, labels, ordinal=self.ordinal, class_names=self.class_names
        )
        return {
            name: torch.tensor(value, dtype=torch.float64)
            for name, value in self.scores.values.items()
        }


def classification_metrics(
    num_classes: int, *, ordinal: bool = False, class_names: Sequence[str] | None = None
) -> ClassificationMetrics:
    """The metrics of a single-label classification task, fed with (probabilities, labels).

    ``ordinal`` adds the quadratic weighted kappa, the metric of graded tasks (APTOS).
    When ``class_names`` include ``melanoma`` and ``seborrheic_keratosis`` (ISIC 2017 Part 3
    as one three-class task), the AUROC of each against the rest (``auroc_melanoma``,
    ``auroc_seborrheic_keratosis``) and their mean (``mean_auroc``) are added.

    Raises ValueError if ``class_names`` do not number ``num_classes``.
    """
    return ClassificationMetrics(num_classes, ordinal=ordinal, class_names=class_names)


def confusion_matrix_metric(num_classes: int) -> MulticlassConfusionMatrix:
    """Counts, rows = true class, columns = predicted class (fed with probabilities, labels)."""
    return MulticlassConfusionMatrix(num_classes)
