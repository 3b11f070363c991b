"""Bootstrap confidence intervals of the task metrics (percentile method, stratified by class).

The rule, for a confidence level ``1 - 2a`` (95 %: a = 2.5 %) and B resamples (1000 by
default; Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13):

- **Resampling**, stratified by class: each resample draws, for each class in index order,
  as many images of that class as the split holds, with replacement, from a
  ``numpy.random.default_rng(seed)`` generator (``rng.integers(0, n_class, (b, n_class))``
  per chunk of b resamples). Every resample thus keeps the split's class counts, so a class
  present in the split is present in every resample. Every head is scored on the same
  resamples (paired).
- **Interval**: the a and 1 - a quantiles (``numpy.quantile``, linear interpolation, as
  ``scipy.stats.bootstrap(method="percentile")``) of the metric over the resamples.
- **Undefined metric**: where the metric is undefined on the predictions themselves, its
  interval is undefined (null). Where it is undefined (NaN, by
  :mod:`fgssl.metrics`' rules) on some resamples only, the interval is taken over the
  defined ones and their count is reported (``undefined_resamples``), as long as they are
  at most a * B (25 of 1000 at 95 %): more could all belong to one tail, and the interval's
  coverage would be unknown, so it is null, with the reason.
- **Too small a split**: a class with a single image is drawn once in every resample, so
  its part of a metric never varies; the intervals then carry a ``warning`` naming such
  classes (logged too). An interval of zero width (every resample gives the same value: a
  tiny or uniform split) carries a ``warning`` too: it understates the uncertainty.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fgssl.errors import ConfigError
from fgssl.metrics import compute_scores
from fgssl.thresholds import THRESHOLDED_KAPPA, FittedThresholds

from .calibration import expected_calibration_error, resampled_ece
from .resampled_scores import resampled_scores, scored_rows
from .resampled_thresholds import ThresholdedGrades

__all__ = [
    "BootstrapSettings",
    "Interval",
    "bootstrap_distributions",
    "bootstrap_intervals",
    "percentile_interval",
    "resample_indices",
    "single_image_classes",
]

log = logging.getLogger(__name__)

_CHUNK_ELEMENTS = 2**21
"""Drawn indices per chunk of resamples: bounds the memory (a few (b, N) arrays)."""


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are computed. Raises ConfigError on a value out of range, its message
    starting with the field's name (callers prefix it: ``intervals.resamples ...``)."""

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int):
            raise ConfigError(f"resamples must be an integer, got {self.resamples!r}")
        if self.resamples < 1:
            raise ConfigError(f"resamples must be at least 1, got {self.resamples}")
        number = isinstance(self.confidence, int | float) and not isinstance(self.confidence, bool)
        if not number or not 0 < self.confidence < 1:
            raise ConfigError(
                f"confidence must be a number in (0, 1) (0.95 for 95 %), got {self.confidence!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")

    @property
    def tail(self) -> float:
        """The probability a in each tail: (1 - confidence) / 2."""
        return (1 - self.confidence) / 2

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "percentile bootstrap, stratified by class",
            "resamples": self.resamples,
            "confidence": self.confidence,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Interval:
    """A metric's interval: ``low``/``high`` None where undefined, with the ``reason``;
    ``warning`` where it is defined but understates the uncertainty (too small a split)."""

    low: float | None
    high: float | None
    undefined_resamples: int
    reason: str | None = None
    warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        tree = {"low": self.low, "high": self.high, "undefined_resamples": self.undefined_resamples}
        optional = {"reason": self.reason, "warning": self.warning}
        return tree | {key: text for key, text in optional.items() if text}

    def warned(self, warning: str) -> Interval:
        """This interval with ``warning`` added (to any it has); undefined ones unchanged."""
        if self.low is None:
            return self
        text = f"{self.warning}; {warning}" if self.warning else warning
        return dataclasses.replace(self, warning=text)


def resample_indices(labels: np.ndarray, settings: BootstrapSettings) -> Iterator[np.ndarray]:
    """Chunks of (b, N) indices into the (N,) ``labels``, ``settings.resamples`` rows in all,
    each row a resample stratified by class (see the module's docstring for the draws)."""
    labels = np.asarray(labels).astype(np.int64)
    rng = np.random.default_rng(settings.seed)
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, len(labels)))
    for start in range(0, settings.resamples, chunk):
        size = min(chunk, settings.resamples - start)
        yield (
            np.concatenate(
                [rows[rng.integers(0, len(rows), (size, len(rows)))] for rows in members], axis=1
            )
            if members
            else np.zeros((size, 0), np.int64)
        )


def bootstrap_distributions(
    labels: np.ndarray,
    statistic: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    settings: BootstrapSettings,
) -> dict[str, np.ndarray]:
    """Name -> (B,) values of ``statistic`` (which maps (b, N) resample indices to name ->
    (b,) values) over the resamples of :func:`resample_indices`."""
    parts: dict[str, list[np.ndarray]] = {}
    for indices in resample_indices(labels, settings):
        for name, values in statistic(indices).items():
            parts.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


ZERO_WIDTH = (
    "every resample gives the same value: the split is too small or too uniform for its "
    "resamples to vary this metric, so the interval understates the uncertainty"
)


def single_image_classes(labels: np.ndarray, class_names: Sequence[str] | None) -> list[str]:
    """The names (else indices) of the classes with exactly one image among the (N,)
    ``labels``: a stratified resample always draws that image once."""
    values, counts = np.unique(np.asarray(labels).astype(np.int64), return_counts=True)
    names = list(class_names or ())
    return [names[v] if v < len(names) else str(v) for v in values[counts == 1].tolist()]


def percentile_interval(
    estimate: float, distribution: np.ndarray, settings: BootstrapSettings
) -> Interval:
    """The percentile interval of a metric whose value on the data is ``estimate`` (NaN if
    undefined) from its (B,) ``distribution`` over the resamples, by the module's rule."""
    undefined = int(np.isnan(distribution).sum())
    if math.isnan(estimate):
        return Interval(None, None, undefined, "the metric is undefined on the predictions")
    allowed = math.floor(settings.tail * len(distribution) + 1e-9)
    if undefined > allowed:
        return Interval(
            None,
            None,
            undefined,
            f"undefined on {undefined} of {len(distribution)} resamples (more than the "
            f"{allowed} of one tail: the interval's coverage would be unknown)",
        )
    defined = distribution[~np.isnan(distribution)]
    low, high = np.quantile(defined, [settings.tail, 1 - settings.tail])
    if low == high:
        return Interval(float(low), float(high), undefined, warning=ZERO_WIDTH)
    return Interval(float(low), float(high), undefined)


def bootstrap_intervals(
    heads: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    ordinal: bool = False,
    class_names: Sequence[str] | None = None,
    settings: BootstrapSettings | None = None,
    ece: bool = False,
    split: str = "the split",
    thresholds: FittedThresholds | None = None,
) -> dict[str, dict[str, Interval]]:
    """Head -> metric -> interval of every metric :func:`fgssl.metrics.compute_scores` gives
    for each head's (N, C) probabilities against the (N,) integer labels, all heads on the
    same resamples; ``ece`` adds the expected calibration error
    (:mod:`fgssl.evaluation.calibration`) as metric ``ece``. Metrics are computed vectorised
    (:mod:`.resampled_scores`); one it does not know is computed with compute_scores on each
    resample. Classes with a single image are warned about (naming ``split``) and noted
    in every defined interval's ``warning``. With a graded run's ``thresholds``
    (:class:`fgssl.thresholds.FittedThresholds`), each head also gets the interval of
    ``kappa_thresholded``: the QWK of its expected grades cut by its thresholds, on the same
    resamples (null where the head has none, as the metric is)."""
    settings = settings or BootstrapSettings()
    labels = np.asarray(labels).astype(np.int64)
    graded = None if thresholds is None else ThresholdedGrades(heads, thresholds, class_names)
    estimates = _estimates(heads, labels, ordinal, class_names, ece, graded)
    if labels.size == 0:
        nothing = Interval(None, None, settings.resamples, "no images")
        return {head: dict.fromkeys(values, nothing) for head, values in estimates.items()}

    def statistic(indices: np.ndarray) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}
        for head, p in heads.items():
            fast = resampled_scores(p, labels, indices, ordinal=ordinal, class_names=class_names)
            if ece:
                fast["ece"] = resampled_ece(p, labels, indices)
            if graded is not None:
                fast[THRESHOLDED_KAPPA] = graded.resampled(head, labels, indices)
            for name in estimates[head]:
                values[f"{head}/{name}"] = (
                    fast[name]
                    if name in fast
                    else scored_rows(p, labels, indices, name, ordinal, class_names)
                )
        return values

    distributions = bootstrap_distributions(labels, statistic, settings)
    intervals = {
        head: {
            name: percentile_interval(value, distributions[f"{head}/{name}"], settings)
            for name, value in estimates[head].items()
        }
        for head in heads
    }
    return _warn_small(intervals, single_image_classes(labels, class_names), split)


def _estimates(
    heads: Mapping[str, np.ndarray],
    labels: np.ndarray,
    ordinal: bool,
    class_names: Sequence[str] | None,
    ece: bool,
    graded: ThresholdedGrades | None,
) -> dict[str, dict[str, float]]:
    """Head -> metric -> value on the predictions themselves (the intervals' estimates)."""
    estimates = {
        head: compute_scores(p, labels, ordinal=ordinal, class_names=class_names).values
        for head, p in heads.items()
    }
    for head, p in heads.items():
        if ece:
            estimates[head]["ece"] = expected_calibration_error(p, labels)
        if graded is not None:
            estimates[head][THRESHOLDED_KAPPA] = graded.estimate(head, labels)
    return estimates


def _warn_small(
    intervals: dict[str, dict[str, Interval]], single: list[str], split: str
) -> dict[str, dict[str, Interval]]:
    """``intervals`` with the warning of the ``single``-image classes, logged with the
    metrics whose intervals have zero width."""
    zero = [
        f"{head}/{name}"
        for head, metrics in intervals.items()
        for name, interval in metrics.items()
        if interval.warning == ZERO_WIDTH
    ]
    if single:
        warning = (
            f"class(es) {single} have a single image in {split}: a stratified resample "
            "always draws it once, so its part never varies and the intervals understate "
            "the uncertainty"
        )
        log.warning("bootstrap intervals: %s", warning)
        intervals = {h: {n: i.warned(warning) for n, i in m.items()} for h, m in intervals.items()}
    if zero:
        log.warning(
            "bootstrap intervals of %s have zero width for %s: %s",
            split,
            ", ".join(zero[:6]) + (" ..." if len(zero) > 6 else ""),
            ZERO_WIDTH,
        )
    return intervals
