"""fgssl's vectorised jigsaw against the reference approach and a plain copy."""

from __future__ import annotations

import argparse
import random
from typing import Any

import torch

from benchmarks.common import print_table, time_call
from fgssl import jigsaw

NAME = "jigsaw"


def reference_jigsaw(images: torch.Tensor, grid: int) -> torch.Tensor:
    """The reference implementations' approach: swap tiles one by one, image by image."""
    tile_h, tile_w = images.shape[2] // grid, images.shape[3] // grid
    output = images.clone()
    for image in output:
        cells = [(r, c) for r in range(grid) for c in range(grid)]
        random.shuffle(cells)
        for r, c in cells:
            first = image[:, :tile_h, :tile_w].clone()
            tile = image[:, r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w]
            image[:, :tile_h, :tile_w] = tile.clone()
            tile.copy_(first)
    return output


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    size, batch = (32, 2) if args.smoke else (224, 32)
    grids = [2, 4, 8] if args.smoke else [2, 4, 8, 16, 32]
    images = torch.randn(batch, 3, size, size, device=args.device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for grid in grids:
        ours = time_call(
            lambda g=grid: jigsaw(images, g, generator=generator),
            repeats=args.repeats,
            device=args.device,
        )
        reference = time_call(
            lambda g=grid: reference_jigsaw(images, g),
            repeats=max(1, args.repeats // 3),
            device=args.device,
        )
        copy = time_call(images.clone, repeats=args.repeats, device=args.device)
        rows.append(
            {
                "grid": grid,
                "fgssl_ms": ours * 1e3,
                "reference_ms": reference * 1e3,
                "copy_ms": copy * 1e3,
                "speedup_vs_reference": reference / ours,
                "fgssl_over_copy": ours / copy,
            }
        )
    print_table(f"jigsaw, batch {batch}x3x{size}x{size} on {args.device}", rows)
    return rows
