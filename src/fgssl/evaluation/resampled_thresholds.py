"""``kappa_thresholded`` (:mod:`fgssl.thresholds`) on the bootstrap's resamples: the
quadratic weighted kappa of each head's expected grade cut by its fitted thresholds, scored
on the same resamples as the other metrics (paired), from one confusion matrix per resample.
A head without thresholds, or whose thresholds cut other classes, gets NaN, as its
``kappa_thresholded`` is NaN (:func:`fgssl.thresholds.add_thresholded_kappa`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fgssl.thresholds import (
    FittedThresholds,
    cut_grades,
    expected_grade,
    quadratic_kappa,
    unusable_reason,
)

from .resampled_scores import confusion_matrices

__all__ = ["ThresholdedGrades"]


class ThresholdedGrades:
    """The (N,) thresholded grades of each head of ``heads`` ((N, C) probabilities) whose
    ``thresholds`` can cut ``class_names`` (:func:`fgssl.thresholds.unusable_reason`, the
    rule of the metric itself)."""

    def __init__(
        self,
        heads: Mapping[str, np.ndarray],
        thresholds: FittedThresholds,
        class_names: Sequence[str] | None,
    ) -> None:
        self.num_classes = {head: p.shape[1] for head, p in heads.items()}
        self.grades = {
            head: cut_grades(expected_grade(p), thresholds.heads[head].thresholds or ())
            for head, p in heads.items()
            if unusable_reason(thresholds, head, class_names) is None
        }

    def estimate(self, head: str, labels: np.ndarray) -> float:
        """QWK of ``head``'s thresholded grades on all N images (NaN where it has none)."""
        if head not in self.grades or not labels.size:
            return math.nan
        return float(self.resampled(head, labels, np.arange(labels.size)[None])[0])

    def resampled(self, head: str, labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """(B,) QWK of ``head``'s thresholded grades on each row of the (B, M) ``indices``."""
        if head not in self.grades:
            return np.full(len(indices), np.nan)
        counts = confusion_matrices(labels, self.grades[head], indices, self.num_classes[head])
        return quadratic_kappa(counts)
