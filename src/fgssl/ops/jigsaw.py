"""Jigsaw puzzles on batched image tensors, vectorised over samples and tiles."""

from __future__ import annotations

from typing import Literal, overload

import torch

__all__ = ["jigsaw", "random_permutations"]


def random_permutations(
    batch_size: int,
    num_tiles: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return a long tensor (batch_size, num_tiles): one uniform random permutation per row.

    The random numbers are drawn on the generator's device (so a CPU generator gives the
    same permutations whatever ``device`` is) and the result is moved to ``device``.
    """
    draw_device = generator.device if generator is not None else device
    keys = torch.rand(batch_size, num_tiles, generator=generator, device=draw_device)
    return keys.argsort(dim=1).to(device)


@overload
def jigsaw(
    images: torch.Tensor,
    grid: int,
    *,
    generator: torch.Generator | None = None,
    return_permutation: Literal[False] = False,
) -> torch.Tensor: ...


@overload
def jigsaw(
    images: torch.Tensor,
    grid: int,
    *,
    generator: torch.Generator | None = None,
    return_permutation: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor]: ...


def jigsaw(
    images: torch.Tensor,
    grid: int,
    *,
    generator: torch.Generator | None = None,
    return_permutation: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cut every image into ``grid x grid`` tiles and shuffle them, each image on its own.

    Args:
        images: (B, C, H, W) tensor of any dtype and device.
        grid: tiles per side. Tiles are ``H // grid`` x ``W // grid`` pixels; the remainder
            rows at the bottom and columns at the right stay where they are. ``grid=1`` is the
            identity.
        generator: makes the permutations deterministic.
        return_permutation: also return ``perm`` (B, grid*grid), long, such that output
            tile ``i`` (row-major) is input tile ``perm[b, i]``.

    Returns:
        The shuffled images, same shape, dtype and device (and ``perm`` if asked for).
        The operation is a gather, so gradients flow back to ``images``.
    """
    if images.dim() != 4:
        raise ValueError(f"jigsaw expects images of shape (B, C, H, W), got {tuple(images.shape)}")
    if not isinstance(grid, int) or isinstance(grid, bool) or grid < 1:
        raise ValueError(f"jigsaw grid must be a positive integer, got {grid!r}")
    batch, channels, height, width = images.shape
    if grid > min(height, width):
        raise ValueError(
            f"jigsaw grid {grid} is larger than the image ({height}x{width}): "
            f"a {grid}x{grid} puzzle needs images of at least {grid}x{grid} pixels"
        )
    num_tiles = grid * grid
    if grid == 1:
        perm = torch.zeros(batch, 1, dtype=torch.long, device=images.device)
        return (images, perm) if return_permutation else images

    perm = random_permutations(batch, num_tiles, generator=generator, device=images.device)
    tile_h, tile_w = height // grid, width // grid
    covered_h, covered_w = grid * tile_h, grid * tile_w

    # (B, grid, grid, C, tile_h, tile_w) views of the tiled region of input and output.
    source = _tile_view(images[:, :, :covered_h, :covered_w], grid, tile_h, tile_w)
    rows, cols = perm.div(grid, rounding_mode="floor"), perm.remainder(grid)
    sample = torch.arange(batch, device=images.device).unsqueeze(1)
    shuffled = source[sample, rows, cols]  # (B, grid*grid, C, tile_h, tile_w), one gather

    has_remainder = covered_h != height or covered_w != width
    output = images.clone() if has_remainder else torch.empty_like(images)
    target = _tile_view(output[:, :, :covered_h, :covered_w], grid, tile_h, tile_w)
    target.copy_(shuffled.view(batch, grid, grid, channels, tile_h, tile_w))
    return (output, perm) if return_permutation else output


def _tile_view(region: torch.Tensor, grid: int, tile_h: int, tile_w: int) -> torch.Tensor:
    """View a (B, C, grid*tile_h, grid*tile_w) region as (B, grid, grid, C, tile_h, tile_w)."""
    batch, channels = region.shape[:2]
    return region.view(batch, channels, grid, tile_h, grid, tile_w).permute(0, 2, 4, 1, 3, 5)
