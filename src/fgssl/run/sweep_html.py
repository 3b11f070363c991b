"""``report.html`` of a sweep (a Hydra multirun): one self-contained page
(:mod:`fgssl.plots.html`) with the results table and each metric against each swept key."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from fgssl.overrides import override_key, override_value
from fgssl.plots.html import HtmlPage, figure_png

__all__ = ["write_sweep_html"]


def _swept_keys(runs: pd.DataFrame) -> dict[str, list[str]]:
    """Override key -> its value in each run, for the keys whose value differs."""
    values: dict[str, list[str]] = {}
    for overrides in runs["overrides"]:
        for override in overrides:
            values.setdefault(override_key(override), [])
    for key in values:
        values[key] = [override_value(overrides, key) or "" for overrides in runs["overrides"]]
    return {key: v for key, v in values.items() if len(set(v)) > 1}


def _metric_plot(runs: pd.DataFrame, key: str, values: list[str], metric: str) -> bytes:
    """Each run's ``metric`` against its value of ``key`` (categories in first-seen order),
    with the mean of each value; undefined values are left out."""
    order = list(dict.fromkeys(values))
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    ax = figure.subplots()
    position = [order.index(v) for v in values]
    y = runs[metric].to_numpy(dtype=float)
    ax.scatter(position, y, color="tab:blue", alpha=0.6, label="runs")
    means = [
        float(pd.Series(y[[i for i, v in enumerate(values) if v == value]]).mean())
        for value in order
    ]
    ax.plot(range(len(order)), means, color="tab:red", marker="o", label="mean")
    ax.set_xticks(range(len(order)), labels=order, rotation=20, ha="right", fontsize=8)
    ax.set_xlabel(key)
    ax.set_ylabel(metric.removeprefix("test/"))
    ax.legend(fontsize=7)
    return figure_png(figure)


def write_sweep_html(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    metrics: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str,
    notes: Sequence[str] = (),
) -> Path:
    """A sweep's page: the results table (``summary`` of :func:`fgssl.run.report.summarize`,
    mean ± std over seeds, with each run's bootstrap interval of a metric when a
    configuration has one run), one plot of each metric against each swept key, and
    ``notes`` (e.g. the failed jobs)."""
    page = HtmlPage(title)
    table = page.section("Results", "results")
    rows = []
    for record in summary.to_dict("records"):
        cells: list[object] = [record["configuration"], record["seeds"]]
        for metric in metrics:
            mean, std, count = (
                record[f"{metric} mean"],
                record[f"{metric} std"],
                record[f"{metric} n"],
            )
            cell = "–" if count == 0 or math.isnan(mean) else f"{mean:.4f}"
            if not math.isnan(std):
                cell += f" ± {std:.4f}"
            cell += _single_run_interval(runs, record["configuration"], metric, record["seeds"])
            cells.append(
                cell if count == record["seeds"] else f"{cell} ({count} of {record['seeds']})"
            )
        rows.append(cells)
    table.table(["configuration", "seeds", *(m.removeprefix("test/") for m in metrics)], rows)
    table.text(
        "mean ± sample standard deviation over seeds; [low, high]: the run's bootstrap "
        "interval when a configuration has one run; –: no run has a value.",
        note=True,
    )
    plots = page.section("Metrics against the swept keys", "plots")
    swept = _swept_keys(runs)
    if not swept:
        plots.text("no override differs between the runs", note=True)
    for key, values in swept.items():
        for metric in metrics:
            if metric in runs.columns and runs[metric].notna().any():
                plots.image(_metric_plot(runs, key, values, metric), f"{metric} against {key}")
    if notes:
        failures = page.section("Notes", "notes")
        for note in notes:
            failures.pre(note)
    return page.write(path)


def _single_run_interval(runs: pd.DataFrame, configuration: str, metric: str, seeds: int) -> str:
    """`` [low, high]`` of the one run of ``configuration`` (``test/<head>/<m>`` ->
    ``intervals/test/<head>/<m>/low|high`` in runs), or ''."""
    if seeds != 1 or not metric.startswith("test/"):
        return ""
    base = "intervals/" + metric
    row = runs[runs["configuration"] == configuration]
    if f"{base}/low" not in runs.columns or row.empty:
        return ""
    low, high = row[f"{base}/low"].iloc[0], row[f"{base}/high"].iloc[0]
    if pd.isna(low) or pd.isna(high):
        return ""
    return f" [{low:.4f}, {high:.4f}]"
