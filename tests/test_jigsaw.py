"""jigsaw: the tile permutation, per sample, checked tile by tile against the input."""

from __future__ import annotations

import pytest
import torch

from fgssl import jigsaw


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
