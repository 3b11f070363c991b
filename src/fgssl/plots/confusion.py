"""Confusion-matrix figures: counts in the cells, colour = share of the true class (recall)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_confusion_matrices"]


def plot_confusion_matrices(
    matrices: Mapping[str, Sequence[Sequence[int]]],
    class_names: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """One panel per matrix (e.g. per head), rows = true class, columns = predicted class."""
    n = len(class_names)
    size = 1.0 + 0.55 * n
    figure = Figure(figsize=(size * len(matrices) + 0.5, size + 0.8), layout="constrained")
    axes = figure.subplots(1, len(matrices), squeeze=False)[0]
    for ax, (name, matrix) in zip(axes, matrices.items(), strict=True):
        counts = np.asarray(matrix, dtype=np.int64)
        if counts.shape != (n, n):
            raise ValueError(f"confusion matrix {name!r} is {counts.shape}, expected ({n}, {n})")
        rows = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for (i, j), count in np.ndenumerate(counts):
            colour = "white" if shares[i, j] > 0.5 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=8)
        ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels=list(class_names), fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        accuracy = np.trace(counts) / max(counts.sum(), 1)
        ax.set_title(f"{name} (accuracy {accuracy:.3f})", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
