"""The diabetic-retinopathy screening view of a graded prediction: referable DR.

On the ICDR scale (grades 0 No DR, 1 Mild, 2 Moderate, 3 Severe, 4 Proliferative DR),
**referable DR** is grade >= 2 (moderate non-proliferative DR or worse; Gulshan et al.,
JAMA 2016, and the DR screening papers after it). From the (N, 5) grade probabilities:

- the referable **prediction** is the predicted grade (argmax) >= 2;
- the referable **score** is the probability of grade >= 2, the sum of the probabilities of
  grades 2, 3 and 4 (ranked by the AUROC);
- ``sensitivity`` = referable images predicted referable / referable images (undefined with
  no referable image); ``specificity`` = non-referable images predicted non-referable /
  non-referable images (undefined with none); ``auroc``: the AUROC of the score (undefined
  unless both kinds are present).

Their intervals are bootstrap intervals by :mod:`fgssl.evaluation.bootstrap`'s rule,
stratified by grade (so every resample keeps the referable and non-referable counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fgssl.data.icdr import ICDR_GRADES

from .bootstrap import BootstrapSettings, Interval, bootstrap_distributions, percentile_interval
from .resampled_scores import multiplicities, weighted_auroc

__all__ = ["ICDR_GRADES", "REFERABLE_GRADE", "Screening", "is_icdr_graded", "referable_dr"]

REFERABLE_GRADE = 2
"""The lowest referable ICDR grade (moderate NPDR)."""


def is_icdr_graded(class_names: Sequence[str], ordinal: bool) -> bool:
    """Whether a task is ICDR DR grading: ordinal, with the five ICDR grades as classes."""
    return ordinal and tuple(class_names) == ICDR_GRADES


@dataclass(frozen=True)
class Screening:
    """The referable-DR numbers of one prediction."""

    metrics: dict[str, float]
    """``sensitivity``, ``specificity``, ``auroc``: NaN where undefined."""
    intervals: dict[str, Interval]
    referable_images: int
    non_referable_images: int
    undefined: dict[str, str] = field(default_factory=dict)
    """Metric -> why it is undefined."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``null`` where undefined)."""
        return {
            "definition": f"referable DR: ICDR grade >= {REFERABLE_GRADE}",
            "prediction": f"predicted grade (argmax) >= {REFERABLE_GRADE}",
            "score": f"sum of the probabilities of grades >= {REFERABLE_GRADE}",
            "referable_images": self.referable_images,
            "non_referable_images": self.non_referable_images,
            "metrics": {k: None if math.isnan(v) else v for k, v in self.metrics.items()},
            "intervals": {k: v.to_json() for k, v in self.intervals.items()},
            **({"undefined": self.undefined} if self.undefined else {}),
        }


def _rates(
    referable: np.ndarray, predicted: np.ndarray, score: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """(B,) sensitivity, specificity and AUROC with each image counted by its (B, N) weight."""
    positives = weights @ referable.astype(np.float64)
    negatives = weights @ (~referable).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = (weights @ (referable & predicted).astype(np.float64)) / positives
        specificity = (weights @ (~referable & ~predicted).astype(np.float64)) / negatives
    return {
        "sensitivity": np.where(positives > 0, sensitivity, np.nan),
        "specificity": np.where(negatives > 0, specificity, np.nan),
        "auroc": weighted_auroc(referable, score, weights),
    }


def referable_dr(
    probabilities: np.ndarray, grades: np.ndarray, settings: BootstrapSettings | None = None
) -> Screening:
    """The referable-DR sensitivity, specificity and AUROC (module docstring) of (N, 5) ICDR
    grade probabilities against (N,) integer grades, with their bootstrap intervals.

    Raises ValueError if the probabilities do not have 5 columns.
    """
    if probabilities.ndim != 2 or probabilities.shape[1] != len(ICDR_GRADES):
        raise ValueError(f"expected (N, 5) ICDR grade probabilities, got {probabilities.shape}")
    settings = settings or BootstrapSettings()
    grades = np.asarray(grades).astype(np.int64)
    referable = grades >= REFERABLE_GRADE
    predicted = probabilities.argmax(axis=1) >= REFERABLE_GRADE
    score = probabilities[:, REFERABLE_GRADE:].sum(axis=1)
    everyone = np.ones((1, len(grades)))
    estimates = {k: float(v[0]) for k, v in _rates(referable, predicted, score, everyone).items()}
    undefined = {}
    if not referable.any():
        undefined["sensitivity"] = "no referable image (grade >= 2)"
    if referable.all():
        undefined["specificity"] = "no non-referable image (grade < 2)"
    if "sensitivity" in undefined or "specificity" in undefined:
        undefined["auroc"] = "needs referable and non-referable images"
    distributions = bootstrap_distributions(
        grades,
        lambda indices: _rates(referable, predicted, score, multiplicities(indices, len(grades))),
        settings,
    )
    intervals = {
        name: percentile_interval(value, distributions[name], settings)
        for name, value in estimates.items()
    }
    return Screening(estimates, intervals, int(referable.sum()), int((~referable).sum()), undefined)
