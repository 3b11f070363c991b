"""The method figure of the README and the documentation site (``docs/method-jigsaw.png``):
two synthetic fundus photographs of the demo (a healthy eye and proliferative DR) as each
granularity's stage sees them under the demo's schedule (8x8, 4x4 and 2x2 puzzles, finest
first), then whole, as the concat head sees them. Drawn with the run figure's own code
(:func:`fgssl.plots.plot_jigsaw_schedule`), from no file: ``python scripts/method_figure.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fgssl.data.demo import render_fundus
from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fgssl.plots import plot_jigsaw_schedule

SIZE = 128
GRADES = (0, 4)  # no DR, proliferative DR
SCHEDULE = (8, 4, 2)


def images(seed: int = 0) -> torch.Tensor:
    """The photographs as the network receives them: (2, 3, SIZE, SIZE), normalised."""
    rng = np.random.default_rng(seed)
    pixels = np.stack([render_fundus(grade, SIZE, rng) for grade in GRADES])
    batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (batch - mean) / std


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/method-jigsaw.png"))
    args = parser.parse_args()
    names = [f"stage {k + 1}" for k in range(len(SCHEDULE))]
    path = plot_jigsaw_schedule(images(), SCHEDULE, args.out, stage_names=names)
    print(path)


if __name__ == "__main__":
    main()
