"""A metric of a Hydra multirun against one swept key (``fgssl-report --plot-against``).

Each point is the mean of the metric over the runs (seeds) of one value of the key within one
group of the other overrides (e.g. one line per ``+method``), with the sample standard
deviation (ddof=1) as error bar. Runs where the metric is undefined (null in results.json,
NaN in :func:`fgssl.run.report.collect_runs`) are left out of their point, and ``n`` says how
many runs the point holds; a point without any defined run is not drawn (a warning names it).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fgssl.atomic import atomic_path, write_csv_atomically
from fgssl.errors import ConfigError

__all__ = [
    "X_SCALES",
    "SweepPlot",
    "SweptKey",
    "metric_label",
    "plot_file_stem",
    "plot_metric_against",
    "sweep_points",
    "swept_key",
    "write_sweep_plots",
]

log = logging.getLogger(__name__)

X_SCALES = ("auto", "linear", "log")
"""``auto``: a log axis when the key is numeric, every value is > 0 and the largest is at
least :data:`LOG_SPAN` times the smallest; else linear. Non-numeric keys are categories."""

LOG_SPAN = 10.0
"""The ratio of the largest to the smallest value from which ``auto`` draws a log axis."""

ALL_RUNS = "(all runs)"
"""The group label when no override other than the key and the seed differs."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _value(overrides: Sequence[str], key: str) -> str | None:
    return next((o.split("=", 1)[1] for o in overrides if "=" in o and _key(o) == key), None)


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
    """Each run's group: its overrides other than ``key`` (the seed is not among them) and
    those every run shares."""
    rest = [[o for o in overrides if _key(o) != key] for overrides in runs["overrides"]]
    common = set.intersection(*(set(r) for r in rest)) if rest else set()
    return [" ".join(o for o in r if o not in common) or ALL_RUNS for r in rest]


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


def metric_label(metric: str) -> str:
    """The axis label of a results.json column (``test/`` dropped, seconds marked)."""
    if metric.startswith("timings/"):
        return metric.removeprefix("timings/").replace("_seconds", " time") + " (s)"
    return metric.removeprefix("test/")


def plot_file_stem(metric: str, key: str) -> str:
    """A filesystem-safe name: ``test/combined/kappa`` against ``data.label_fraction`` ->
    ``combined_kappa_vs_data.label_fraction``."""
    name = metric.removeprefix("test/").replace("/", "_")
    return _UNSAFE.sub("_", f"{name}_vs_{key.lstrip('+~')}").strip("_")


def _positions(key: SweptKey, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The x of each value and the sideways shift of each group (so that error bars at the
    same value do not hide each other): in axis units, multiplicative on a log axis."""
    if key.numbers is None:
        x = np.arange(len(key.values), dtype=float)
        step = 1.0
    elif key.log_x:
        x = np.log10(key.numbers)
        step = float(np.diff(x).min()) if len(x) > 1 else 1.0
    else:
        x = np.asarray(key.numbers)
        step = float(np.diff(x).min()) if len(x) > 1 else 1.0
    # neighbouring groups 8 % of the closest two values apart, all of them within 30 %
    spacing = min(0.08, 0.3 / max(groups - 1, 1)) * step
    shifts = (np.arange(groups) - (groups - 1) / 2) * spacing
    return x, shifts


def plot_metric_against(
    points: pd.DataFrame, key: SweptKey, metric: str, path: str | os.PathLike[str]
) -> Figure:
    """Draw ``points`` (of :func:`sweep_points`): per group its means, joined by a line for
    a numeric key (broken where a value has no point), with error bars of ± the sample
    standard deviation (none where n = 1), and n beside each point unless every point has the
    same n (then it is in the title). Points with n = 0 are not drawn. The groups are shifted
    slightly sideways so that their error bars at one value stay apart. Saved as a PNG at
    ``path``; returns the figure."""
    groups = list(dict.fromkeys(points["group"]))
    x, shifts = _positions(key, len(groups))
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = figure.subplots()
    drawn = points[points["n"] > 0]
    same_n = drawn["n"].nunique() == 1
    for shift, group in zip(shifts, groups, strict=True):
        # NaN where a value has no point: the line breaks there instead of bridging it
        mean, std = np.full(len(x), np.nan), np.full(len(x), np.nan)
        rows = drawn[drawn["group"] == group]
        at = np.array([key.values.index(v) for v in rows[key.name]], dtype=int)
        mean[at], std[at] = rows["mean"].to_numpy(float), rows["std"].to_numpy(float)
        gx = 10 ** (x + shift) if key.log_x else x + shift
        bars = ax.errorbar(
            gx, mean, yerr=std, marker="o", capsize=3, linewidth=1.2, label=group,
            linestyle="-" if key.numeric else "none",  # categories have no order to join
        )  # fmt: skip
        if not same_n:
            color = bars.lines[0].get_color()
            for px, py, n in zip(gx[at], mean[at], rows["n"], strict=True):
                ax.annotate(f"n={n}", (px, py), xytext=(4, 4), textcoords="offset points",
                            fontsize=7, color=color)  # fmt: skip
    if key.log_x:
        ax.set_xscale("log")
        ax.set_xticks(list(key.numbers or ()), labels=list(key.values))
        ax.minorticks_off()
    elif key.numeric:
        ax.set_xticks(list(key.numbers or ()), labels=list(key.values))
    else:
        ax.set_xticks(range(len(key.values)), labels=list(key.values))
    scale = " (log scale)" if key.log_x else ""
    ax.set_xlabel(f"{key.name}{scale}")
    label = metric_label(metric)
    ax.set_ylabel(f"{label}, mean over seeds")
    runs = (
        f"n = {int(drawn['n'].iloc[0])} runs per point"
        if same_n and len(drawn)
        else "n = runs per point, beside it"
    )
    ax.set_title(f"{label} against {key.name} ({runs})", fontsize=9)
    ax.legend(
        title="error bars: ± sample sd (ddof=1) over seeds; none where n = 1",
        title_fontsize=7, fontsize=7,
    )  # fmt: skip
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=120, format="png")
    return figure


@dataclass(frozen=True)
class SweepPlot:
    """The files of one metric's plot: ``png`` is ``None`` when no point could be drawn."""

    metric: str
    png: Path | None
    csv: Path


def write_sweep_plots(
    runs: pd.DataFrame,
    key: SweptKey,
    metrics: Sequence[str],
    output_dir: str | os.PathLike[str],
) -> list[SweepPlot]:
    """For each metric (a column of ``runs``), ``<stem>.png`` (:func:`plot_metric_against`)
    and ``<stem>.csv`` (the points, :func:`sweep_points`, those not drawn included) in
    ``output_dir``, ``<stem>`` from :func:`plot_file_stem`. A metric undefined in every run
    gets only its CSV, and a warning."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for metric in metrics:
        points = sweep_points(runs, key, metric)
        stem = plot_file_stem(metric, key.name)
        csv = write_csv_atomically(out / f"{stem}.csv", points)
        png: Path | None = out / f"{stem}.png"
        if (points["n"] > 0).any():
            plot_metric_against(points, key, metric, out / f"{stem}.png")
        else:
            log.warning(
                "%s is undefined in every run: %s.png not drawn (%s.csv lists the points)",
                metric,
                stem,
                stem,
            )
            png = None
        written.append(SweepPlot(metric, png, csv))
    return written
