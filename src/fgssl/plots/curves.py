"""Training curves from the metrics.csv files Lightning's CSVLogger writes in a run directory."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fgssl.errors import DataNotFoundError
from fgssl.plots.monitor import MONITOR_PANELS, plot_monitor_panels, read_monitor_series
from fgssl.rundir import PHASES, RunDir

__all__ = ["plot_training_curves", "read_epoch_series", "read_validation_series"]

VAL_LOSS = "val/loss"
"""Logged at every validation epoch (never undefined)."""
_STAGE_LOSS = re.compile(r"^(?P<phase>pretrain|finetune)/(?P<stage>.+)_loss_epoch$")


def read_epoch_series(metrics_csv: Path, columns: list[str]) -> pd.DataFrame:
    """Per-epoch values of ``columns`` (those present), indexed by epoch (rows logged at
    step level or without a value are dropped)."""
    table = pd.read_csv(metrics_csv)
    present = [c for c in columns if c in table.columns]
    if not present or "epoch" not in table.columns:
        return pd.DataFrame()
    rows = table.dropna(subset=["epoch"])[["epoch", *present]].dropna(how="all", subset=present)
    return rows.groupby("epoch")[present].last()


def read_validation_series(metrics_csv: Path, monitor: str) -> pd.DataFrame:
    """Per validated epoch, ``monitor`` and (for a ``val/combined/`` metric) the concat
    head's value of it; NaN where the metric was undefined (those epochs keep their row,
    so that a plot shows a gap there rather than joining the neighbouring epochs)."""
    keys = [monitor]
    if monitor.startswith("val/combined/"):
        keys.append(monitor.replace("val/combined/", "val/concat/", 1))
    # the loss has a value at every validated epoch, so every such epoch keeps its row
    series = read_epoch_series(metrics_csv, list(dict.fromkeys([*keys, VAL_LOSS])))
    return series[[c for c in keys if c in series.columns]]


def _plot_stage_losses(ax: Axes, metrics_csv: Path, phase: str) -> bool:
    columns = list(pd.read_csv(metrics_csv, nrows=0).columns)
    stage_columns = [c for c in columns if (m := _STAGE_LOSS.match(c)) and m["phase"] == phase]
    stage_columns.sort(key=lambda c: (c.endswith("/concat_loss_epoch"), c))  # concat last
    series = read_epoch_series(metrics_csv, stage_columns)
    if series.empty:
        return False
    for column in series.columns:
        stage = _STAGE_LOSS.match(column)
        assert stage is not None
        ax.plot(series.index, series[column], marker=".", label=stage["stage"])
    kind = "Barlow Twins" if phase == "pretrain" else "cross-entropy"
    ax.set_title(f"{phase}: {kind} loss per stage", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    return True


def plot_training_curves(
    run_dir: str | Path, path: str | Path, *, monitor: str = "val/combined/kappa"
) -> Path:
    """Stage losses of each phase and the validation metric ``monitor`` (and the concat
    head's value of the same metric) per epoch, from ``<run_dir>/<phase>/metrics.csv``.
    Epochs where ``monitor`` is undefined (NaN) are gaps in its line, listed in the title.
    When the pretrain phase logged the pretrain monitor (:mod:`fgssl.plots.monitor`), its
    k-NN score and collapse indicators form a second row."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    csvs = {phase: run.metrics(phase) for phase in PHASES if run.metrics(phase).is_file()}
    if not csvs:
        raise DataNotFoundError(
            f"no pretrain/metrics.csv or finetune/metrics.csv in {str(run_dir)!r}: training "
            "curves need the CSV logger (logger=csv)"
        )
    top = len(csvs) + ("finetune" in csvs)  # the stage losses, then validation
    watched = read_monitor_series(csvs["pretrain"]) if "pretrain" in csvs else pd.DataFrame()
    rows = 1 if watched.empty else 2  # the pretrain monitor's panels below
    columns = max(top, MONITOR_PANELS * (rows - 1))
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    axes = list(grid[0])
    for ax in [*axes[top:], *(grid[1][MONITOR_PANELS:] if rows == 2 else [])]:
        ax.set_visible(False)
    if rows == 2:
        plot_monitor_panels(list(grid[1][:MONITOR_PANELS]), watched)
    for ax, (phase, csv) in zip(axes, csvs.items(), strict=False):
        if not _plot_stage_losses(ax, csv, phase):
            ax.set_visible(False)
    if "finetune" in csvs:
        ax = axes[top - 1]
        series = read_validation_series(csvs["finetune"], monitor)
        for column in series.columns:
            ax.plot(series.index, series[column], marker=".", label=column)
        title = f"validation: {monitor.rsplit('/', 1)[-1]}"
        if monitor in series.columns and series[monitor].isna().any():
            undefined = [str(int(e)) for e in series.index[series[monitor].isna()]]
            title += f"\n(undefined at epoch {', '.join(undefined)})"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not series.empty:
            ax.legend(fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
