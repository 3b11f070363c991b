"""The thresholded grade of each image, for the tables of fgssl-eval and fgssl-predict, from
the ordinal thresholds a checkpoint holds (:mod:`fgssl.thresholds`; fitted by fgssl-train)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from fgssl.thresholds import FittedThresholds, cut_grades, expected_grade

__all__ = ["THRESHOLDED_COLUMNS", "thresholded_columns"]

log = logging.getLogger(__name__)

THRESHOLDED_COLUMNS = ("expected_grade", "prediction_thresholded", "class_thresholded")
"""The columns :func:`thresholded_columns` adds: the expected grade ``sum_c c * p_c`` of the
combined prediction, its grade index cut by the checkpoint's thresholds, and its name."""


def thresholded_columns(
    probabilities: np.ndarray,
    fitted: FittedThresholds | None,
    class_names: Sequence[str],
    *,
    head: str = "combined",
) -> dict[str, list[float] | list[int] | list[str]]:
    """:data:`THRESHOLDED_COLUMNS` of (N, C) ``probabilities`` (columns named by
    ``class_names``) cut by ``head``'s thresholds of ``fitted``; empty (with a warning
    saying why) when ``fitted`` has none for that head or cuts other grades, or other
    grades' order; empty without a word when ``fitted`` is None (no thresholds kept)."""
    if fitted is None:
        return {}
    entry = fitted.heads.get(head)
    if entry is None or entry.thresholds is None:
        why = entry.reason if entry is not None else f"none for {head}"
        log.warning("the checkpoint's ordinal thresholds were not fitted (%s)", why)
        return {}
    if tuple(class_names) != fitted.class_names:
        log.warning(
            "the checkpoint's ordinal thresholds cut the grades %s, not %s: no thresholded grades",
            list(fitted.class_names),
            list(class_names),
        )
        return {}
    grades = expected_grade(np.asarray(probabilities, dtype=np.float64))
    cut = cut_grades(grades, entry.thresholds).tolist()
    return {
        "expected_grade": grades.tolist(),
        "prediction_thresholded": cut,
        "class_thresholded": [class_names[grade] for grade in cut],
    }
