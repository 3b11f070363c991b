"""Two sets of predictions on the same labelled images compared metric by metric: each
metric's difference (first minus second) with a **paired** bootstrap interval.

Both prediction tables (:mod:`.prediction_table`) are resampled with the same image indices
(stratified by class, as every interval of fgssl: :func:`.bootstrap.resample_indices`), so
the interval holds the test-sampling uncertainty of the difference itself: images both
methods get right or wrong alike cancel out, which two separate intervals cannot show
(Efron and Tibshirani, *An Introduction to the Bootstrap*, 1993). It says nothing of
the spread between training runs (seeds): compare several seeds for that.

Images are matched by id and classes by name (the second table's columns reordered to the
first's); tables of other images, other classes or other labels are refused with a
:class:`fgssl.errors.DataLayoutError` naming the files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fgssl.errors import DataLayoutError
from fgssl.metrics import compute_scores

from .bootstrap import BootstrapSettings, Interval, bootstrap_distributions, percentile_interval
from .prediction_table import ScoredTable
from .resampled_scores import resampled_scores, scored_rows

__all__ = ["PairedDifference", "align_tables", "paired_differences"]


@dataclass(frozen=True)
class PairedDifference:
    """One metric of both tables (None where undefined), their difference ``first -
    second`` and its paired bootstrap interval."""

    first: float | None
    second: float | None
    difference: float | None
    interval: Interval

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "difference": self.difference,
            "interval": self.interval.to_json(),
        }


def align_tables(first: ScoredTable, second: ScoredTable) -> tuple[np.ndarray, np.ndarray]:
    """``second``'s (N,) labels and (N, C) probabilities in ``first``'s row order (by id) and
    class order (by name). Raises DataLayoutError when the tables hold other images or
    classes, or label an image differently."""
    if sorted(first.class_names) != sorted(second.class_names):
        raise DataLayoutError(
            f"{str(second.path)!r} predicts the classes {second.class_names}, "
            f"{str(first.path)!r} {first.class_names}: classes are matched by name"
        )
    if set(first.ids) != set(second.ids):
        only = sorted(set(first.ids) ^ set(second.ids))
        raise DataLayoutError(
            f"{str(first.path)!r} ({len(first.ids)} images) and {str(second.path)!r} "
            f"({len(second.ids)}) do not hold the same images ({len(only)} in one only, e.g. "
            f"{only[:3]}): a paired comparison needs predictions of the same split"
        )
    row = {image: index for index, image in enumerate(second.ids)}
    rows = np.array([row[image] for image in first.ids], dtype=np.int64)
    columns = np.array([second.class_names.index(name) for name in first.class_names])
    remap = np.argsort(columns)  # second's class index -> first's
    labels = remap[second.labels[rows]] if len(rows) else second.labels[rows]
    differ = np.flatnonzero(labels != first.labels)
    if len(differ):
        raise DataLayoutError(
            f"{str(first.path)!r} and {str(second.path)!r} label {len(differ)} image(s) "
            f"differently, e.g. {first.ids[int(differ[0])]!r}"
        )
    return labels, second.probabilities[rows][:, columns]


def _defined(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def paired_differences(
    first: ScoredTable,
    second: ScoredTable,
    *,
    ordinal: bool = False,
    metrics: Sequence[str] | None = None,
    settings: BootstrapSettings | None = None,
) -> dict[str, PairedDifference]:
    """Metric -> :class:`PairedDifference` of ``first`` against ``second`` for the
    ``metrics`` (default: every one :func:`fgssl.metrics.compute_scores` gives both tables),
    both tables scored on the same ``settings.resamples`` stratified resamples of the images;
    the interval is the percentile interval of the resampled differences, null with its
    reason where the metric is undefined (in the data or on too many resamples). Raises
    DataLayoutError as :func:`align_tables`, ValueError for a metric neither table has."""
    settings = settings or BootstrapSettings()
    labels = first.labels
    second_probabilities = align_tables(first, second)[1]
    names = first.class_names
    tables = (first.probabilities, second_probabilities)
    scores = [compute_scores(p, labels, ordinal=ordinal, class_names=names) for p in tables]
    chosen = list(metrics) if metrics else [m for m in scores[0].values if m in scores[1].values]
    unknown = [m for m in chosen if m not in scores[0].values]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: known are {sorted(scores[0].values)}")
    if len(labels) == 0:
        nothing = Interval(None, None, settings.resamples, "no images")
        return {m: PairedDifference(None, None, None, nothing) for m in chosen}

    def statistic(indices: np.ndarray) -> dict[str, np.ndarray]:
        both = []
        for p in tables:
            fast = resampled_scores(p, labels, indices, ordinal=ordinal, class_names=names)
            both.append(
                {
                    m: fast[m] if m in fast else scored_rows(p, labels, indices, m, ordinal, names)
                    for m in chosen
                }
            )
        return {m: both[0][m] - both[1][m] for m in chosen}

    distributions = bootstrap_distributions(labels, statistic, settings)
    result = {}
    for metric in chosen:
        values = [_defined(s.values[metric]) for s in scores]
        difference = None if None in values else values[0] - values[1]  # type: ignore[operator]
        estimate = math.nan if difference is None else difference
        interval = percentile_interval(estimate, distributions[metric], settings)
        result[metric] = PairedDifference(values[0], values[1], difference, interval)
    return result
