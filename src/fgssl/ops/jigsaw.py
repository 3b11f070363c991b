"""Jigsaw puzzles on batched image tensors, vectorised over samples and tiles."""

from __future__ import annotations

from typing import Literal, get_args, overload

import torch

__all__ = ["PERMUTATIONS", "Permutation", "jigsaw", "random_permutations"]

Permutation = Literal["derangement", "cycle", "uniform"]
"""How the tiles of a puzzle are shuffled (see :func:`random_permutations`)."""
PERMUTATIONS: tuple[str, ...] = get_args(Permutation)


def random_permutations(
    batch_size: int,
    num_tiles: int,
    *,
    permutation: Permutation = "derangement",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return a long tensor (batch_size, num_tiles): one random permutation per row.

    ``permutation`` chooses the distribution, each row drawn on its own:

    - ``"derangement"`` (default): uniform over the permutations that move every tile
      (no ``perm[i] == i``), by rejection of uniform draws (about e = 2.72 draws per row).
      No puzzle is the unshuffled image and no tile stays in place; a uniform permutation
      would return the image itself once in ``num_tiles!`` draws (1 in 24 for 2x2) and leave
      some tile in place in 1 - 1/e = 63 % of the puzzles.
    - ``"cycle"``: uniform over the permutations that are a single cycle through all tiles:
      the rule of PMG's and FG-SSL's reference code, whose ``jigsaw_generator`` swaps the
      first tile with every tile in a random order (a product of transpositions through
      one common tile is one cycle). Every tile moves too, but only
      ``(num_tiles - 1)!`` puzzles can occur (6 of the 9 derangements of a 2x2 grid).
    - ``"uniform"``: uniform over all ``num_tiles!`` permutations, the identity included.

    The random numbers are drawn on the generator's device (so a CPU generator gives the
    same permutations whatever ``device`` is) and the result is moved to ``device`` (to a
    GPU without waiting for it: through pinned memory, asynchronously).

    Raises:
        ValueError: an unknown ``permutation``, or a derangement of a single tile.
    """
    if permutation not in PERMUTATIONS:
        raise ValueError(f"permutation must be one of {list(PERMUTATIONS)}, got {permutation!r}")
    if permutation == "derangement" and num_tiles == 1:
        raise ValueError("a single tile has no derangement (it cannot move)")
    draw_device = generator.device if generator is not None else device

    def uniform(rows: int) -> torch.Tensor:
        keys = torch.rand(rows, num_tiles, generator=generator, device=draw_device)
        return keys.argsort(dim=1)

    perm = uniform(batch_size)
    if permutation == "cycle":
        # order[0] -> order[1] -> ... -> order[n-1] -> order[0]: each n-cycle arises from
        # exactly n of the n! orders (its rotations), so the cycles are equally likely.
        order, perm = perm, torch.empty_like(perm)
        perm.scatter_(1, order, order.roll(-1, dims=1))
    elif permutation == "derangement":
        identity = torch.arange(num_tiles, device=perm.device)
        redraw = (perm == identity).any(dim=1).nonzero().squeeze(1)
        while redraw.numel():
            perm[redraw] = uniform(redraw.numel())
            redraw = redraw[(perm[redraw] == identity).any(dim=1)]
    target = perm.device if device is None else torch.device(device)
    if perm.device.type == "cpu" and target.type == "cuda":
        # A blocking copy from pageable memory would wait for all queued GPU work (a sync
        # at every puzzle); from pinned memory the copy joins the queue instead.
        return perm.pin_memory().to(target, non_blocking=True)
    return perm.to(target)


@overload
def jigsaw(
    images: torch.Tensor,
    grid: int,
    *,
    generator: torch.Generator | None = None,
    permutation: Permutation = "derangement",
    return_permutation: Literal[False] = False,
) -> torch.Tensor: ...


@overload
def jigsaw(
    images: torch.Tensor,
    grid: int,
    *,
    generator: torch.Generator | None = None,
    permutation: Permutation = "derangement",
    return_permutation: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor]: ...


def jigsaw(
    images: torch.Tensor,
    grid: int,
    *,
    generator: torch.Generator | None = None,
    permutation: Permutation = "derangement",
    return_permutation: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cut every image into ``grid x grid`` tiles and shuffle them, each image on its own.

    Args:
        images: (B, C, H, W) tensor of any dtype and device.
        grid: tiles per side. Tiles are ``H // grid`` x ``W // grid`` pixels; the remainder
            rows at the bottom and columns at the right stay where they are (a border of
            ``H % grid`` rows and ``W % grid`` columns). ``grid=1`` is the identity.
        generator: makes the permutations deterministic.
        permutation: how tiles are shuffled: ``"derangement"`` (every tile moves, the
            default), ``"cycle"`` (the reference code's rule) or ``"uniform"`` (see
            :func:`random_permutations`).
        return_permutation: also return ``perm`` (B, grid*grid), long, such that output
            tile ``i`` (row-major) is input tile ``perm[b, i]``.

    Returns:
        The shuffled images, same shape, dtype and device (and ``perm`` if asked for).
        The operation is a gather, so gradients flow back to ``images``.
    """
    _check_arguments(images, grid, permutation)
    batch, channels, height, width = images.shape
    num_tiles = grid * grid
    if grid == 1:
        perm = torch.zeros(batch, 1, dtype=torch.long, device=images.device)
        return (images, perm) if return_permutation else images

    perm = random_permutations(
        batch, num_tiles, permutation=permutation, generator=generator, device=images.device
    )
    tile_h, tile_w = height // grid, width // grid
    covered_h, covered_w = grid * tile_h, grid * tile_w
    whole = covered_h == height and covered_w == width
    region = images if whole else images[:, :, :covered_h, :covered_w]
    # Every tile row segment (tile_w contiguous pixels) is one row of a 2-D view; a single
    # index_select moves all of them. Output row (b, c, r, y, col) comes from input row
    # (b, c, src_r, y, src_c) where (src_r, src_c) is tile perm[b, r * grid + col].
    rows = region.contiguous().view(-1, tile_w)
    shuffled = rows.index_select(0, _row_index(perm, channels, grid, tile_h))
    shuffled = shuffled.view(batch, channels, covered_h, covered_w)
    if whole:
        output = shuffled
    else:
        output = images.clone()
        output[:, :, :covered_h, :covered_w] = shuffled
    return (output, perm) if return_permutation else output


def _check_arguments(images: torch.Tensor, grid: int, permutation: str) -> None:
    """:class:`ValueError` for what :func:`jigsaw` cannot cut."""
    if images.dim() != 4:
        raise ValueError(f"jigsaw expects images of shape (B, C, H, W), got {tuple(images.shape)}")
    if not isinstance(grid, int) or isinstance(grid, bool) or grid < 1:
        raise ValueError(f"jigsaw grid must be a positive integer, got {grid!r}")
    if permutation not in PERMUTATIONS:
        raise ValueError(f"permutation must be one of {list(PERMUTATIONS)}, got {permutation!r}")
    height, width = images.shape[-2:]
    if grid > min(height, width):
        raise ValueError(
            f"jigsaw grid {grid} is larger than the image ({height}x{width}): "
            f"a {grid}x{grid} puzzle needs images of at least {grid}x{grid} pixels"
        )


def _row_index(perm: torch.Tensor, channels: int, grid: int, tile_h: int) -> torch.Tensor:
    """Source row of every output row, for rows of ``tile_w`` pixels (see :func:`jigsaw`)."""
    batch, device = perm.shape[0], perm.device
    src_r = perm.div(grid, rounding_mode="floor").view(batch, 1, grid, 1, grid)
    src_c = perm.remainder(grid).view(batch, 1, grid, 1, grid)
    sample = torch.arange(batch, device=device).view(batch, 1, 1, 1, 1)
    channel = torch.arange(channels, device=device).view(1, channels, 1, 1, 1)
    y = torch.arange(tile_h, device=device).view(1, 1, 1, tile_h, 1)
    index = (((sample * channels + channel) * grid + src_r) * tile_h + y) * grid + src_c
    return index.view(-1)
