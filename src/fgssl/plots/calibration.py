"""Reliability diagram (Guo et al. 2017, figure 1): per confidence bin, the accuracy against
the bin's range, the gap to the diagonal, and the images per bin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fgssl.evaluation.calibration import ReliabilityBins

__all__ = ["plot_reliability_diagram"]


def plot_reliability_diagram(bins: ReliabilityBins, path: str | Path, *, title: str = "") -> Figure:
    """Top: accuracy per bin (bars; empty bins left blank) and the gap between accuracy and
    mean confidence (hatched), with the diagonal of perfect calibration; bottom: images per
    bin. Saved as a PNG at ``path``; returns the figure."""
    edges = bins.edges
    width = np.diff(edges)
    filled = bins.count > 0
    figure = Figure(figsize=(4.8, 5.4), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(
        edges[:-1][filled], bins.accuracy[filled], width=width[filled], align="edge",
        color="tab:blue", edgecolor="black", linewidth=0.5, label="accuracy",
    )  # fmt: skip
    gap = bins.confidence[filled] - bins.accuracy[filled]
    top.bar(
        edges[:-1][filled], gap, bottom=bins.accuracy[filled], width=width[filled],
        align="edge", color="tab:red", alpha=0.3, hatch="//", edgecolor="tab:red",
        linewidth=0.5, label="gap to mean confidence",
    )  # fmt: skip
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="calibrated")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    ece = "undefined" if np.isnan(bins.ece) else f"{bins.ece:.4f}"
    top.set_title(f"{title + ': ' if title else ''}ECE {ece} ({len(width)} bins)", fontsize=9)
    top.legend(loc="upper left", fontsize=7)
    bottom.bar(edges[:-1], bins.count, width=width, align="edge", color="grey", edgecolor="black",
               linewidth=0.5)  # fmt: skip
    bottom.set_xlabel("confidence (largest class probability)")
    bottom.set_ylabel("images")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return figure
