"""The task metrics of :func:`fgssl.metrics.compute_scores`, computed at once on many
resamples of one set of predictions (the bootstrap's inner loop).

A resample is a row of image indices (drawn with replacement). Each metric follows
compute_scores' rule exactly (the tests compare them on every resample), vectorised over the
resamples: the count metrics and the kappa come from one confusion matrix per resample, an
AUROC from the Mann-Whitney statistic with the images' multiplicities as weights (ties count
one half, as :func:`sklearn.metrics.roc_auc_score`'s trapezoidal rule). A metric undefined
on a resample is NaN there, by compute_scores' rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fgssl.metrics import ISIC2017_AUROC_CLASSES, compute_scores

__all__ = [
    "confusion_matrices",
    "multiplicities",
    "resampled_scores",
    "scored_rows",
    "weighted_auroc",
]


def confusion_matrices(
    labels: np.ndarray, predicted: np.ndarray, indices: np.ndarray, num_classes: int
) -> np.ndarray:
    """(B, C, C) counts, rows = true class, of the (N,) ``labels`` and ``predicted`` classes
    on each row of the (B, M) ``indices`` (M images drawn from the N)."""
    resamples = indices.shape[0]
    cells = num_classes * num_classes
    codes = (labels * num_classes + predicted)[indices]  # (B, M) cell of each drawn image
    codes = codes + cells * np.arange(resamples)[:, None]
    counts = np.bincount(codes.ravel(), minlength=resamples * cells)
    return counts.reshape(resamples, num_classes, num_classes).astype(np.float64)


def multiplicities(indices: np.ndarray, num_images: int) -> np.ndarray:
    """(B, N) how many times each of the N images is drawn in each row of (B, M) ``indices``."""
    resamples = indices.shape[0]
    flat = (indices + num_images * np.arange(resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=resamples * num_images)
    return counts.reshape(resamples, num_images).astype(np.float64)


def weighted_auroc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B,) AUROC of the (N,) ``score`` for the (N,) boolean ``positive`` targets, each image
    counted with its (B, N) weight (its multiplicity in a resample): the probability that a
    positive scores above a negative, ties counting one half (Mann-Whitney U / (P * N),
    equal to :func:`sklearn.metrics.roc_auc_score` on the repeated images). NaN where a row
    has no positive or no negative weight."""
    if score.size == 0:
        return np.full(weights.shape[0], np.nan)
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order]
    pos = positive[order]
    pos_groups = np.add.reduceat(w * pos, starts, axis=1)  # (B, G) per distinct score
    neg_groups = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(neg_groups, axis=1) - neg_groups  # negatives scoring strictly lower
    wins = (pos_groups * (below + 0.5 * neg_groups)).sum(axis=1)
    pairs = pos_groups.sum(axis=1) * neg_groups.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def _count_metrics(confusion: np.ndarray, ordinal: bool) -> dict[str, np.ndarray]:
    """acc, balanced_acc, macro precision/recall/F1 (zero_division=nan) and the quadratic
    kappa of (B, C, C) confusion matrices, by scikit-learn's rules."""
    true = confusion.sum(axis=2)  # (B, C) per true class
    pred = confusion.sum(axis=1)  # (B, C) per predicted class
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    total = true.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred > 0, tp / pred, np.nan)
        recall = np.where(true > 0, tp / true, np.nan)
        in_union = (true + pred) > 0  # sklearn's labels: present in targets or predictions
        f1 = np.where(in_union, 2 * tp / (true + pred), np.nan)
    values = {
        "acc": tp.sum(axis=1) / total,
        "balanced_acc": _nanmean(recall),
        "precision": _nanmean(precision),
        "recall": _nanmean(recall),
        "f1": _nanmean(f1),
    }
    if ordinal:
        grades = np.arange(confusion.shape[1])
        weights = (grades[:, None] - grades[None, :]) ** 2.0
        expected = true[:, :, None] * pred[:, None, :] / total[:, None, None]
        observed_cost = (weights * confusion).sum(axis=(1, 2))
        expected_cost = (weights * expected).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            kappa = 1 - observed_cost / np.where(expected_cost > 0, expected_cost, 1.0)
        values["kappa"] = np.where(expected_cost > 0, kappa, np.nan)
    return values


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the defined values; NaN where none is defined."""
    defined = ~np.isnan(values)
    count = defined.sum(axis=-1)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def resampled_scores(
    probabilities: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    *,
    ordinal: bool = False,
    class_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Metric name -> (B,) values of :func:`fgssl.metrics.compute_scores` (same names, same
    rules) on each row of the (B, M) ``indices`` into the (N, C) ``probabilities`` and (N,)
    integer ``labels``; NaN where a metric is undefined on a resample."""
    num_classes = probabilities.shape[1]
    labels = labels.astype(np.int64)
    predicted = probabilities.argmax(axis=1)
    confusion = confusion_matrices(labels, predicted, indices, num_classes)
    values = _count_metrics(confusion, ordinal)
    weights = multiplicities(indices, len(labels))
    present = np.unique(labels)
    resamples = indices.shape[0]
    ovr: dict[int, np.ndarray] = {}

    def one_vs_rest(index: int) -> np.ndarray:
        if index not in ovr:
            ovr[index] = weighted_auroc(labels == index, probabilities[:, index], weights)
        return ovr[index]

    if num_classes == 2:
        values["auroc"] = one_vs_rest(1)
    else:
        # A class present in some resample is present in each one drawn by class (stratified);
        # an unstratified resample can lose a class: its one-vs-rest AUROC then is NaN and is
        # left out of the mean, as compute_scores averages over the classes present.
        per_class = np.stack([one_vs_rest(int(c)) for c in present]) if len(present) else None
        values["auroc"] = np.full(resamples, np.nan) if per_class is None else _nanmean(per_class.T)
    # compute_scores: undefined with fewer than two classes among the targets
    classes_drawn = (confusion.sum(axis=2) > 0).sum(axis=1)
    values["auroc"] = np.where(classes_drawn >= 2, values["auroc"], np.nan)
    names = list(class_names or ())
    if all(name in names for name in ISIC2017_AUROC_CLASSES):
        parts = [one_vs_rest(names.index(name)) for name in ISIC2017_AUROC_CLASSES]
        for name, part in zip(ISIC2017_AUROC_CLASSES, parts, strict=True):
            values[f"auroc_{name}"] = part
        values["mean_auroc"] = np.mean(parts, axis=0)  # NaN if one is, as compute_scores
    return values


def scored_rows(
    probabilities: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    name: str,
    ordinal: bool,
    class_names: Sequence[str] | None,
) -> np.ndarray:
    """(B,) values of metric ``name`` by :func:`fgssl.metrics.compute_scores` on each row of
    the (B, M) ``indices``: the slow path, for a metric this module does not vectorise."""
    return np.array(
        [
            compute_scores(
                probabilities[row], labels[row], ordinal=ordinal, class_names=class_names
            ).values[name]
            for row in indices
        ]
    )
