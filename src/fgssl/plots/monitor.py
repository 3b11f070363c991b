"""Panels of the pretrain monitor (:class:`fgssl.evaluation.monitor.SSLMonitor`) for
``training_curves.png``: the k-NN score, each head's effective rank and normalised std, per
epoch trained, from epoch 0 (the random-weight reference)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

__all__ = ["MONITOR_PANELS", "plot_monitor_panels", "read_monitor_series"]

EPOCHS = "monitor/epochs_trained"
MONITOR_PANELS = 3
"""Panels :func:`plot_monitor_panels` draws: k-NN, effective rank, normalised std."""
_HEAD_VALUE = re.compile(r"^monitor/(?P<head>[^/]+)/(?P<value>rankme|std)$")
_KNN = re.compile(r"^monitor/knn/(?P<metric>.+)$")


def read_monitor_series(metrics_csv: str | Path) -> pd.DataFrame:
    """The monitor's rows of a ``metrics.csv``, indexed by epochs trained (0: before any
    step; a resumed phase's repeated epoch keeps its last row); empty without them."""
    table = pd.read_csv(metrics_csv)
    if EPOCHS not in table.columns:
        return pd.DataFrame()
    columns = [c for c in table.columns if c.startswith("monitor/") and c != EPOCHS]
    rows = table.dropna(subset=[EPOCHS])
    return rows.groupby(EPOCHS)[columns].last().sort_index()


def plot_monitor_panels(axes: list[Axes], series: pd.DataFrame) -> None:
    """Draw :data:`MONITOR_PANELS` panels of ``series`` (from :func:`read_monitor_series`)
    on ``axes``: undefined values (NaN) are gaps, epoch 0 is the random-weight reference."""
    knn_ax, rank_ax, std_ax = axes
    for column in series.columns:
        if knn := _KNN.match(column):
            knn_ax.plot(series.index, series[column], marker=".", label=knn["metric"])
            knn_ax.set_title(f"pretrain monitor: k-NN {knn['metric']} (val)", fontsize=9)
    heads = {m["head"]: None for c in series.columns if (m := _HEAD_VALUE.match(c))}
    for head in heads:
        rank_ax.plot(series.index, series[f"monitor/{head}/rankme"], marker=".", label=head)
        std_ax.plot(series.index, series[f"monitor/{head}/std"], marker=".", label=head)
    rank_ax.set_title("effective rank (RankMe) per head", fontsize=9)
    std_ax.set_title("std of L2-normalised embeddings", fontsize=9)
    dims = series.get("monitor/embedding_dim")
    if dims is not None and dims.notna().any():
        dim = float(dims.dropna().iloc[-1])
        std_ax.axhline(1 / math.sqrt(dim), color="grey", linestyle=":", label="1/sqrt(D)")
        rank_ax.set_ylim(bottom=0)
    for ax in axes:
        ax.set_xlabel("epochs trained (0: random weights)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=7)
