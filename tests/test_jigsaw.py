"""jigsaw: the tile permutation, per sample, checked tile by tile against the input."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

import pytest
import torch
from scipy.stats import chisquare

from fgssl import jigsaw
from fgssl.ops.jigsaw import PERMUTATIONS, Permutation, random_permutations


def tiles_of(image: torch.Tensor, grid: int) -> list[torch.Tensor]:
    """Row-major tiles of one (C, H, W) image, cut with plain slicing."""
    tile_h, tile_w = image.shape[1] // grid, image.shape[2] // grid
    return [
        image[:, r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w]
        for r in range(grid)
        for c in range(grid)
    ]


@pytest.mark.parametrize(
    ("height", "width", "grid"), [(12, 12, 3), (13, 10, 3), (32, 32, 8), (7, 9, 2)]
)
def test_every_output_tile_is_the_input_tile_named_by_perm(
    height: int, width: int, grid: int
) -> None:
    images = torch.randn(4, 3, height, width)
    output, perm = jigsaw(images, grid, return_permutation=True)
    assert output.shape == images.shape and perm.shape == (4, grid * grid)
    assert perm.dtype == torch.long
    for b in range(4):
        assert sorted(perm[b].tolist()) == list(range(grid * grid))
        source, shuffled = tiles_of(images[b], grid), tiles_of(output[b], grid)
        for i in range(grid * grid):
            assert torch.equal(shuffled[i], source[perm[b, i]])


def test_remainder_rows_and_columns_stay_in_place() -> None:
    images = torch.randn(3, 2, 14, 11)
    output = jigsaw(images, 4)  # tiles 3x2: rows 12-13 and column 8-10 are the remainder
    assert torch.equal(output[:, :, 12:, :], images[:, :, 12:, :])
    assert torch.equal(output[:, :, :, 8:], images[:, :, :, 8:])
    assert not torch.equal(output[:, :, :12, :8], images[:, :, :12, :8])


def test_each_sample_gets_its_own_permutation() -> None:
    _, perm = jigsaw(torch.randn(16, 1, 8, 8), 4, return_permutation=True)
    assert len({tuple(p.tolist()) for p in perm}) > 1


def test_grid_one_is_the_identity() -> None:
    images = torch.randn(2, 3, 5, 7)
    output, perm = jigsaw(images, 1, return_permutation=True)
    assert torch.equal(output, images)
    assert perm.tolist() == [[0], [0]]


def test_generator_makes_it_deterministic() -> None:
    images = torch.randn(4, 3, 16, 16)
    first = jigsaw(images, 4, generator=torch.Generator().manual_seed(7))
    second = jigsaw(images, 4, generator=torch.Generator().manual_seed(7))
    other = jigsaw(images, 4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_gradient_reaches_each_input_pixel_from_where_it_went() -> None:
    images = torch.randn(2, 2, 9, 9, requires_grad=True)
    weights = torch.randn(2, 2, 9, 9)
    output, perm = jigsaw(images, 3, return_permutation=True)
    (output * weights).sum().backward()
    assert images.grad is not None
    for b in range(2):
        grad_tiles, weight_tiles = tiles_of(images.grad[b], 3), tiles_of(weights[b], 3)
        for i in range(9):  # output tile i came from input tile perm[b, i]
            assert torch.equal(grad_tiles[perm[b, i]], weight_tiles[i])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16, torch.bfloat16, torch.float64])
def test_keeps_dtype(dtype: torch.dtype) -> None:
    images = (torch.rand(2, 3, 8, 8) * 100).to(dtype)
    output, perm = jigsaw(images, 2, return_permutation=True)
    assert output.dtype == dtype
    assert torch.equal(tiles_of(output[1], 2)[0], tiles_of(images[1], 2)[perm[1, 0]])


def test_channels_last_input() -> None:
    images = torch.randn(2, 3, 8, 8).to(memory_format=torch.channels_last)
    output, perm = jigsaw(images, 4, return_permutation=True)
    assert torch.equal(tiles_of(output[0], 4)[5], tiles_of(images[0], 4)[perm[0, 5]])


@pytest.mark.parametrize("grid", [9, 0, -1])
def test_rejects_bad_grids(grid: int) -> None:
    with pytest.raises(ValueError, match="grid"):
        jigsaw(torch.randn(1, 3, 8, 10), grid)


def test_rejects_non_4d_input() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        jigsaw(torch.randn(3, 8, 8), 2)


# ----------------------------------------------------------------- the permutation rules
def fixed_point_free(perm: tuple[int, ...]) -> bool:
    return all(source != i for i, source in enumerate(perm))


def reference_jigsaw_permutation(order: Sequence[int]) -> tuple[int, ...]:
    """The tile permutation of PMG's (and FG-SSL's) ``jigsaw_generator`` for one order of
    its shuffled cell list: it swaps tile 0 with each cell in that order."""
    tiles = list(range(len(order)))
    for cell in order:
        tiles[0], tiles[cell] = tiles[cell], tiles[0]
    return tuple(tiles)


def draw_counts(permutation: Permutation, draws: int, num_tiles: int = 4) -> Counter:
    generator = torch.Generator().manual_seed(0)
    perm = random_permutations(draws, num_tiles, permutation=permutation, generator=generator)
    return Counter(tuple(p) for p in perm.tolist())


@pytest.mark.parametrize("grid", [2, 3, 4, 8])
def test_by_default_no_tile_stays_in_place(grid: int) -> None:
    # tile i is filled with the value i, so an output tile holding its own index stayed put
    tile = 2
    size = grid * tile
    rows = torch.arange(size).div(tile, rounding_mode="floor")
    index = (rows[:, None] * grid + rows[None, :]).float()
    images = index.expand(500, 1, size, size)
    output = jigsaw(images, grid, generator=torch.Generator().manual_seed(grid))
    assert not (output == images).any()


def test_derangements_are_drawn_uniformly() -> None:
    derangements = {p for p in itertools.permutations(range(4)) if fixed_point_free(p)}
    assert len(derangements) == 9  # !4 = 9, counted by hand: 3 double swaps + 6 4-cycles
    counts = draw_counts("derangement", 9000)
    assert set(counts) == derangements
    assert chisquare(list(counts.values())).pvalue > 1e-3


def test_the_cycle_rule_is_the_reference_codes() -> None:
    reference = {reference_jigsaw_permutation(o) for o in itertools.permutations(range(4))}
    assert len(reference) == 6 and all(fixed_point_free(p) for p in reference)
    counts = draw_counts("cycle", 6000)
    assert set(counts) == reference
    assert chisquare(list(counts.values())).pvalue > 1e-3
    # one cycle through all tiles also for larger grids
    perm = random_permutations(50, 16, permutation="cycle").tolist()
    for p in perm:
        tile, length = p[0], 1
        while tile != 0:
            tile, length = p[tile], length + 1
        assert length == 16


def test_uniform_permutations_include_the_unshuffled_image() -> None:
    counts = draw_counts("uniform", 24000)
    assert set(counts) == set(itertools.permutations(range(4)))
    assert chisquare(list(counts.values())).pvalue > 1e-3
    assert counts[(0, 1, 2, 3)] > 0


def test_the_permutation_rule_is_checked() -> None:
    with pytest.raises(ValueError, match="permutation must be one of"):
        jigsaw(torch.randn(1, 3, 8, 8), 1, permutation="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no derangement"):
        random_permutations(3, 1)


@pytest.mark.parametrize("permutation", PERMUTATIONS)
def test_every_rule_is_deterministic_given_the_generator(permutation: Permutation) -> None:
    def draw(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return random_permutations(64, 9, permutation=permutation, generator=generator)

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))
