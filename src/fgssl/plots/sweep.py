"""A metric of a Hydra multirun against one swept key (``fgssl-report --plot-against``).

Each point is the mean of the metric over the runs (seeds) of one value of the key within one
group of the other overrides (e.g. one line per ``+method``), with the sample standard
deviation (ddof=1) as error bar. Runs where the metric is undefined (null in results.json,
NaN in :func:`fgssl.run.report.collect_runs`) are left out of their point, and ``n`` says how
many runs the point holds; a point without any defined run is not drawn (a warning names it).
"""

from __future__ import annotations

import logging
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fgssl.atomic import atomic_path, write_csv_atomically
from fgssl.plots.sweep_points import (
    ALL_RUNS,
    LOG_SPAN,
    X_SCALES,
    SweptKey,
    sweep_points,
    swept_key,
)

__all__ = [
    "ALL_RUNS",
    "LOG_SPAN",
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

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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
    figure = Figure(figsize=(7.2, 4.2 + 0.25 * len(groups)), layout="constrained")
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
    _legend_below(figure, ax)
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=120, format="png")
    return figure


def _legend_below(figure: Figure, ax: Axes) -> None:
    """The groups' legend below the axes, labels wrapped: a group's overrides can be longer
    than the figure is wide."""
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(
        handles, [textwrap.fill(text, 110) for text in labels], loc="outside lower center",
        title="error bars: ± sample sd (ddof=1) over seeds; none where n = 1",
        title_fontsize=7, fontsize=7,
    )  # fmt: skip


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
