"""Grades cut from the expected grade by thresholds fitted for the quadratic weighted kappa:
the "optimised rounder" of the APTOS 2019 solutions, on class probabilities.

**Rule.** The expected grade of (N, C) probabilities is ``e = sum_c c * p_c`` (in [0, C-1],
grades = class indices in the task's order). C-1 increasing thresholds ``t_1 < ... < t_C-1``
cut it into ``grade = #{k : t_k < e}`` (:func:`cut_grades`): an expected grade equal to a
threshold takes the lower grade, as the right-closed bins (``pandas.cut``) of the APTOS
kernels. ``t_k = k - 1/2`` is plain rounding of the expected grade.

**Fit** (:func:`fit_thresholds`): coordinate ascent with an exact line search. From
``t_k = k - 1/2``, each threshold in turn moves, the others fixed, to the position that
gives the highest QWK among *every* distinct split of the images lying between its two
neighbours (the candidates: midpoints between consecutive distinct expected grades there,
and between a neighbour and the nearest image), and sweeps repeat until none moves. A
threshold moves only for a gain above :data:`MIN_GAIN`, and among equally good positions to
the nearest one, so the search ends, is deterministic, keeps the thresholds strictly
increasing, never lowers the QWK, and ends where no single threshold can raise it. Why not
scipy's Nelder-Mead from the same start (the APTOS kernels): QWK of cut grades is piecewise
constant, so a simplex stalls on its plateaus and ends where its first steps happened to
land, and nothing keeps its thresholds sorted; an exhaustive search over all C-1 cut points
at once costs O(N^(C-1)) kappas (10^11 for APTOS's validation split). One line search here
costs O(N C^2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fgssl.metrics import Scores

__all__ = [
    "MIN_GAIN",
    "THRESHOLDED_KAPPA",
    "FittedThresholds",
    "HeadThresholds",
    "add_thresholded_kappa",
    "cut_grades",
    "expected_grade",
    "fit_thresholds",
    "quadratic_kappa",
    "unusable_reason",
]

THRESHOLDED_KAPPA = "kappa_thresholded"
"""The metric key of the QWK of the thresholded grades, beside ``kappa`` (the argmax's)."""

MIN_GAIN = 1e-12
"""A threshold moves only when the QWK rises by more than this (float noise is no gain)."""

_MAX_SWEEPS = 100  # every move raises the QWK, so the sweeps end anyway; a guard


def expected_grade(probabilities: np.ndarray) -> np.ndarray:
    """(N,) expected grade ``sum_c c * p_c`` of (N, C) class probabilities, float64."""
    p = np.asarray(probabilities, dtype=np.float64)
    return p @ np.arange(p.shape[1], dtype=np.float64)


def cut_grades(grades: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """(N,) int64 grades ``#{k : t_k < e}`` of (N,) expected grades ``e`` cut by increasing
    ``thresholds``."""
    return np.searchsorted(np.asarray(thresholds, np.float64), grades, side="left").astype(np.int64)


def quadratic_kappa(confusion: np.ndarray) -> np.ndarray:
    """Quadratic weighted kappa of (..., C, C) confusion counts (rows true, columns
    predicted), as ``sklearn.metrics.cohen_kappa_score(weights="quadratic")``: ``1 - sum(w O)
    / sum(w E)`` with ``w_ij = (i - j)^2`` and E the product of the margins over N; NaN
    where ``sum(w E)`` is 0 (no disagreement expected by chance)."""
    counts = np.asarray(confusion, dtype=np.float64)
    size = counts.shape[-1]
    index = np.arange(size, dtype=np.float64)
    weights = (index[:, None] - index[None, :]) ** 2
    total = counts.sum(axis=(-2, -1))
    rows, columns = counts.sum(axis=-1), counts.sum(axis=-2)
    observed = (weights * counts).sum(axis=(-2, -1))
    expected = np.einsum("...i,ij,...j->...", rows, weights, columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = 1.0 - observed * total / expected
    return np.where(expected > 0, kappa, np.nan)


@dataclass(frozen=True)
class HeadThresholds:
    """The thresholds of one head, or why there are none."""

    thresholds: tuple[float, ...] | None
    """C-1 strictly increasing thresholds; None when they cannot be fitted."""
    reason: str | None = None
    """Why ``thresholds`` is None."""
    kappa: float = math.nan
    """QWK of the thresholded grades on the images fitted on."""
    kappa_rounded: float = math.nan
    """QWK of the rounded expected grade (the starting thresholds) on those images."""

    def to_json(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "thresholds": None if self.thresholds is None else list(self.thresholds),
            **({"reason": self.reason} if self.reason else {}),
            "kappa": number(self.kappa),
            "kappa_rounded": number(self.kappa_rounded),
        }


@dataclass(frozen=True)
class FittedThresholds:
    """Each head's thresholds, with the grades (class names, in order) they cut into."""

    class_names: tuple[str, ...]
    heads: dict[str, HeadThresholds] = field(default_factory=dict)
    fitted_on: str = "val"
    images: int = 0

    def to_json(self) -> dict[str, Any]:
        """The record kept in the checkpoint and in results.json (None for undefined)."""
        return {
            "rule": "grade = number of thresholds below the expected grade sum_c c * p_c",
            "fitted_on": self.fitted_on,
            "images": self.images,
            "class_names": list(self.class_names),
            "heads": {head: fitted.to_json() for head, fitted in self.heads.items()},
        }

    @classmethod
    def from_json(cls, record: Any) -> FittedThresholds:
        """The inverse of :meth:`to_json`; ValueError naming what is malformed."""
        if not isinstance(record, Mapping) or not isinstance(record.get("heads"), Mapping):
            raise ValueError("the ordinal thresholds are not a mapping with 'heads'")
        names = tuple(str(name) for name in record.get("class_names") or ())
        heads = {}
        for head, entry in record["heads"].items():
            values = entry.get("thresholds") if isinstance(entry, Mapping) else "?"
            if values is None:
                heads[str(head)] = HeadThresholds(None, str(entry.get("reason") or "unknown"))
                continue
            if not isinstance(values, list) or len(values) != len(names) - 1:
                raise ValueError(f"head {head!r}: expected {len(names) - 1} thresholds")
            cuts = tuple(float(v) for v in values)
            if not all(math.isfinite(v) for v in cuts) or list(cuts) != sorted(set(cuts)):
                raise ValueError(f"head {head!r}: thresholds {list(cuts)} not increasing")
            heads[str(head)] = HeadThresholds(cuts, None, *_kappas(entry))
        return cls(names, heads, str(record.get("fitted_on", "?")), int(record.get("images", 0)))


def _kappas(entry: Mapping[str, Any]) -> tuple[float, float]:
    """The recorded ``kappa`` and ``kappa_rounded`` of a head (NaN where null)."""
    kappa, rounded = (entry.get(key) for key in ("kappa", "kappa_rounded"))
    return (
        math.nan if kappa is None else float(kappa),
        math.nan if rounded is None else float(rounded),
    )


def fit_thresholds(
    probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None
) -> HeadThresholds:
    """The thresholds of (N, C) probabilities against (N,) grades in [0, C), fitted for
    QWK (see the module's docstring); none, with the reason (naming the grade by
    ``class_names`` where given), when there are no images, a probability is not finite,
    or fewer than two grades are among the labels."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    size = p.shape[1]
    if len(y) == 0:
        return HeadThresholds(None, "no images to fit on")
    if not np.isfinite(p).all():
        return HeadThresholds(None, "some probabilities are not finite")
    if len(np.unique(y)) < 2:
        only = repr(class_names[y[0]]) if class_names else f"grade {int(y[0])}"
        return HeadThresholds(None, f"the labels are all {only} (QWK undefined)")
    grades = expected_grade(p)
    cuts = np.arange(size - 1, dtype=np.float64) + 0.5
    start = _kappa(y, cut_grades(grades, cuts), size)
    for _ in range(_MAX_SWEEPS):
        moved = False
        for k in range(size - 1):
            better = _line_search(grades, y, cuts, k, size)
            moved |= better != cuts[k]
            cuts[k] = better
        if not moved:
            break
    final = _kappa(y, cut_grades(grades, cuts), size)
    return HeadThresholds(tuple(float(c) for c in cuts), None, final, start)


def _kappa(labels: np.ndarray, predicted: np.ndarray, size: int) -> float:
    confusion = np.zeros((size, size))
    np.add.at(confusion, (labels, predicted), 1)
    return float(quadratic_kappa(confusion))


def _line_search(
    grades: np.ndarray, labels: np.ndarray, cuts: np.ndarray, k: int, size: int
) -> float:
    """The best position of threshold ``k`` (0-based) with the others fixed: every split of
    the images strictly between its neighbours (bounds -1/2 and C - 1/2 at the ends) into
    grades k and k+1, scored at once from cumulative label counts."""
    low = cuts[k - 1] if k > 0 else -0.5
    high = cuts[k + 1] if k < size - 2 else size - 0.5
    inside = (grades > low) & (grades <= high)
    outside = np.zeros((size, size))
    np.add.at(outside, (labels[~inside], cut_grades(grades[~inside], cuts)), 1)
    order = np.argsort(grades[inside], kind="stable")
    values, between = grades[inside][order], labels[inside][order]
    points = np.unique(np.concatenate([[low], values, [high]]))
    candidates = (points[:-1] + points[1:]) / 2
    below_count = np.searchsorted(values, candidates, side="right")
    cumulative = np.zeros((len(values) + 1, size))
    cumulative[1:] = np.cumsum(np.eye(size)[between], axis=0)
    below = cumulative[below_count]  # (M, C) label counts of grade k
    confusion = np.repeat(outside[None], len(candidates), axis=0)
    confusion[:, :, k] += below
    confusion[:, :, k + 1] += cumulative[-1] - below
    kappas = quadratic_kappa(confusion)
    # the candidate that splits the images as the threshold does now
    current = kappas[below_count == np.searchsorted(values, cuts[k], side="right")][0]
    best = np.nanmax(kappas) if not np.isnan(kappas).all() else math.nan
    if not best > current + MIN_GAIN:
        return float(cuts[k])
    tied = np.flatnonzero(kappas >= best - MIN_GAIN)
    return float(candidates[tied[np.argmin(np.abs(candidates[tied] - cuts[k]))]])


def unusable_reason(
    fitted: FittedThresholds, head: str, class_names: Sequence[str] | None
) -> str | None:
    """Why ``head``'s thresholds of ``fitted`` cannot cut predictions of ``class_names``:
    none were fitted, or they cut other classes (or the same in another order); None when
    they can."""
    entry = fitted.heads.get(head)
    if entry is None or entry.thresholds is None:
        return f"no thresholds were fitted: {entry.reason if entry else 'none for ' + head}"
    names = tuple(class_names or ())
    if names != fitted.class_names:
        return (
            f"the thresholds cut the grades {list(fitted.class_names)}, these predictions "
            f"have the classes {list(names)}"
        )
    return None


def add_thresholded_kappa(
    scores: Scores,
    probabilities: np.ndarray,
    labels: np.ndarray,
    fitted: FittedThresholds,
    head: str,
    class_names: Sequence[str] | None,
) -> None:
    """Add :data:`THRESHOLDED_KAPPA` to ``scores``: the QWK (``labels=range(C)``, as
    ``kappa``) of (N, C) ``probabilities``' expected grades cut by ``head``'s thresholds of
    ``fitted``; NaN with the reason in ``scores.undefined`` when the head has none, the
    classes of ``class_names`` are not the ones (in the order) they were fitted on, there
    are no images, or labels and grades are all one grade."""
    entry = fitted.heads.get(head)
    names = tuple(class_names or ())
    reason = unusable_reason(fitted, head, class_names)
    if reason is None and len(labels) == 0:
        reason = "no images"
    value = math.nan
    if reason is None and entry is not None and entry.thresholds is not None:
        predicted = cut_grades(expected_grade(probabilities), entry.thresholds)
        value = _kappa(np.asarray(labels).astype(np.int64), predicted, len(names))
        if math.isnan(value):
            reason = "the targets and thresholded grades are all one grade"
    scores.values[THRESHOLDED_KAPPA] = value
    if reason is not None:
        scores.undefined[THRESHOLDED_KAPPA] = reason
