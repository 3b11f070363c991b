"""The jigsaw puzzles one image goes through at each granularity of a patch schedule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fgssl.ops.jigsaw import Permutation, jigsaw

__all__ = ["plot_jigsaw_schedule", "to_display"]


def to_display(
    image: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """A normalised (3, H, W) tensor back to an (H, W, 3) float array in [0, 1]."""
    m = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    pixels = (image.detach().float().cpu() * s + m).clamp(0.0, 1.0)
    array: np.ndarray = pixels.permute(1, 2, 0).numpy()
    return array


def plot_jigsaw_schedule(
    images: torch.Tensor,
    schedule: Sequence[int],
    path: str | Path,
    *,
    stage_names: Sequence[str] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    seed: int = 0,
    permutation: Permutation = "derangement",
) -> Path:
    """One row per image of ``images`` (B, 3, H, W): the puzzle of each grid of
    ``schedule`` (finest first, the stage that trains on it), then the whole image.
    ``permutation`` is the shuffle rule of training (:func:`fgssl.ops.jigsaw.jigsaw`)."""
    if images.ndim != 4:
        raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
    names = list(stage_names or [f"stage{k + 1}" for k in range(len(schedule))])
    generator = torch.Generator().manual_seed(seed)
    puzzles = [
        jigsaw(images.cpu(), int(grid), generator=generator, permutation=permutation)
        for grid in schedule
    ]
    columns = [
        *(f"{name}: {grid}x{grid} puzzle" for name, grid in zip(names, schedule, strict=False)),
        "whole image (concat head)",
    ]
    rows = images.shape[0]
    figure = Figure(figsize=(2.2 * len(columns), 2.3 * rows), layout="constrained")
    axes = figure.subplots(rows, len(columns), squeeze=False)
    for row in range(rows):
        panels = [*(p[row] for p in puzzles), images[row]]
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(to_display(panel, mean, std))
            ax.set_axis_off()
            if row == 0:
                ax.set_title(columns[col], fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
