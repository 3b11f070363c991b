"""The numbers of ``fgssl-report --plot-against``: the swept key a metric is plotted against
(checked, with its axis) and the points, one per group of the other overrides and value of the
key: the mean over seeds and the sample standard deviation (ddof=1). Runs where the metric is
undefined (null in results.json, NaN in :func:`fgssl.run.report.collect_runs`) are left out of
their point, and ``n`` says how many runs the point holds."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pandas as pd

from fgssl.errors import ConfigError
from fgssl.overrides import following_keys
from fgssl.overrides import override_key as _key
from fgssl.overrides import override_value as _value

__all__ = ["ALL_RUNS", "LOG_SPAN", "X_SCALES", "SweptKey", "sweep_points", "swept_key"]

log = logging.getLogger(__name__)

X_SCALES = ("auto", "linear", "log")
"""``auto``: a log axis when the key is numeric, every value is > 0 and the largest is at
least :data:`LOG_SPAN` times the smallest; else linear. Non-numeric keys are categories."""

LOG_SPAN = 10.0
"""The ratio of the largest to the smallest value from which ``auto`` draws a log axis."""

ALL_RUNS = "(all runs)"
"""The group label when no override other than the key and the seed differs."""


def _as_number(value: str) -> float | None:
    if value.strip().lower() in ("true", "false"):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class SweptKey:
    """The key a sweep's metrics are plotted against, as checked by :func:`swept_key`.

    ``name`` is the override's key without Hydra's ``+``/``~`` prefixes; ``values`` its
    distinct values in sweep order (the jobs' order); ``numbers`` their numeric values
    (``None`` when one of them is not a finite number: the key is then categorical);
    ``log_x`` whether the x axis is logarithmic."""

    name: str
    values: tuple[str, ...]
    numbers: tuple[float, ...] | None
    log_x: bool

    @property
    def numeric(self) -> bool:
        return self.numbers is not None


def _swept(runs: pd.DataFrame) -> dict[str, set[str | None]]:
    keys: dict[str, set[str | None]] = {}
    for overrides in runs["overrides"]:
        for override in overrides:
            keys.setdefault(_key(override), set())
    for key, values in keys.items():
        values.update(_value(o, key) for o in runs["overrides"])
    return keys


def swept_key(runs: pd.DataFrame, key: str, *, x_scale: str = "auto") -> SweptKey:
    """Check that ``key`` (``data.label_fraction``, ``+method`` or ``method``) takes at least
    two values among the jobs of ``runs`` (a table of :func:`fgssl.run.report.collect_runs`)
    and choose its axis.

    Raises :class:`~fgssl.errors.ConfigError` (one line) when the key is the seed, is not an
    override of the jobs (naming the keys that are swept), has a single value, or when
    ``x_scale`` is unknown, or ``log`` for a non-numeric key or values <= 0."""
    if x_scale not in X_SCALES:
        raise ConfigError(f"--x-scale {x_scale!r} is not one of {list(X_SCALES)}")
    name = key.lstrip("+~")
    keys = _swept(runs)
    swept = sorted(k for k, values in keys.items() if len(values) > 1)
    if name == "seed":
        raise ConfigError(
            f"--plot-against {key}: each point is a mean over seeds; plot against one of the "
            f"swept keys {swept}"
        )
    if name not in keys:
        raise ConfigError(
            f"--plot-against {key}: no job of the sweep sets {name!r}; the swept keys are "
            f"{swept or '(none: every job has the same overrides but the seed)'}"
        )
    values = list(dict.fromkeys(_value(o, name) for o in runs["overrides"]))
    missing = runs.loc[[_value(o, name) is None for o in runs["overrides"]], "job"].tolist()
    if missing:
        log.warning(
            "--plot-against %s: job(s) %s do not set %s and are left out of the plots",
            key,
            missing,
            name,
        )
    present = [v for v in values if v is not None]
    if len(present) < 2:
        raise ConfigError(
            f"--plot-against {key}: every job sets {name}={present[0]}, a single value; a plot "
            f"needs at least two; the swept keys are {swept or '(none)'}"
        )
    numbers = [_as_number(v) for v in present]
    # two spellings of one number (1 and 1.0) would share an x: they stay categories then
    numeric = all(n is not None for n in numbers) and len(set(numbers)) == len(numbers)
    if x_scale == "log" and (not numeric or min(n or 0.0 for n in numbers) <= 0):
        raise ConfigError(
            f"--x-scale log: {name} takes the values {present}; a log axis needs distinct "
            "numbers > 0"
        )
    if numeric:
        order = sorted(range(len(present)), key=lambda i: numbers[i] or 0.0)
        ordered = tuple(present[i] for i in order)
        floats = tuple(float(numbers[i] or 0.0) for i in order)
        positive = floats[0] > 0
        log_x = x_scale == "log" or (
            x_scale == "auto" and positive and floats[-1] / floats[0] >= LOG_SPAN
        )
        return SweptKey(name, ordered, floats, log_x)
    return SweptKey(name, tuple(present), None, log_x=False)


def _groups(runs: pd.DataFrame, key: str) -> list[str]:
    """Each run's group: its overrides other than ``key`` (the seed is not among them),
    those every run shares, and those that follow ``key`` or the seed
    (:func:`fgssl.overrides.following_keys`): such a key is part of the point."""
    overrides = runs["overrides"].tolist()  # one spelling each already (collect_runs)
    rest = [[o for o in r if _key(o) != key] for r in overrides]
    common = set.intersection(*(set(r) for r in rest)) if rest else set()
    seeds = runs["seed"].tolist() if "seed" in runs else [None] * len(rest)
    x = [_value(r, key) for r in overrides]
    following = following_keys(rest, x) | following_keys(rest, seeds)
    return [
        " ".join(o for o in r if o not in common and _key(o) not in following) or ALL_RUNS
        for r in rest
    ]


def sweep_points(runs: pd.DataFrame, key: SweptKey, metric: str) -> pd.DataFrame:
    """One row per group (in sweep order) and value of ``key`` (in axis order):
    ``group``, ``<key>`` (the override's value as written), ``runs`` (the jobs at that point),
    ``n`` (those where ``metric`` is defined), ``mean``, ``std`` (sample standard
    deviation, ddof=1; NaN when n < 2), ``min`` and ``max`` of the defined values, and
    ``jobs`` (their folder names). A point with n = 0 has NaN statistics and is logged as a
    warning naming the group, the key's value and the metric."""
    values = [_value(o, key.name) for o in runs["overrides"]]
    groups = _groups(runs, key.name)
    table = pd.DataFrame(
        {"group": groups, "value": values, "job": runs["job"], "y": runs[metric].astype(float)}
    )
    table = table[table["value"].notna()]
    rows = []
    for group in dict.fromkeys(table["group"]):
        for value in key.values:
            point = table[(table["group"] == group) & (table["value"] == value)]
            if point.empty:
                continue  # the sweep never ran this combination: nothing to report
            defined = point["y"].dropna()
            if defined.empty:
                log.warning(
                    "%s=%s, group %s: %s is undefined (null) in all %d run(s); point not drawn",
                    key.name,
                    value,
                    group,
                    metric,
                    len(point),
                )
            rows.append(
                {
                    "group": group,
                    key.name: value,
                    "runs": len(point),
                    "n": len(defined),
                    "mean": defined.mean() if len(defined) else math.nan,
                    "std": defined.std(ddof=1) if len(defined) > 1 else math.nan,
                    "min": defined.min() if len(defined) else math.nan,
                    "max": defined.max() if len(defined) else math.nan,
                    "jobs": " ".join(point["job"].astype(str)),
                }
            )
    return pd.DataFrame(rows)
