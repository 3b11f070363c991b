"""BarlowTwinsLoss against an independent numpy implementation of the formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fgssl import BarlowTwinsLoss


def barlow_twins_numpy(z1: np.ndarray, z2: np.ndarray, lambd: float, eps: float = 1e-5) -> float:
    """Zbontar et al. 2021, written out element by element in float64."""
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)  # numpy var is the biased one
    b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (1.0 - c_ij) ** 2 if i == j else lambd * c_ij**2
    return loss


@pytest.mark.parametrize(("n", "d", "lambd"), [(16, 8, 5.1e-3), (5, 12, 0.5), (64, 3, 0.0)])
def test_matches_the_formula(n: int, d: int, lambd: float) -> None:
    rng = np.random.default_rng(n * d)
    z1 = rng.normal(size=(n, d))
    z2 = 0.6 * z1 + rng.normal(size=(n, d))
    expected = barlow_twins_numpy(z1, z2, lambd)
    loss = BarlowTwinsLoss(lambd)(
        torch.tensor(z1, dtype=torch.float32), torch.tensor(z2, dtype=torch.float32)
    )
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_invariant_to_per_dimension_affine_rescaling() -> None:
    torch.manual_seed(0)
    z1, z2 = torch.randn(32, 10), torch.randn(32, 10)
    scale, shift = torch.rand(10) * 3 + 0.5, torch.randn(10) * 5
    loss = BarlowTwinsLoss()
    assert loss(z1 * scale + shift, z2).item() == pytest.approx(loss(z1, z2).item(), rel=1e-4)
    assert loss(z1, z2 * scale - shift).item() == pytest.approx(loss(z1, z2).item(), rel=1e-4)


def test_identical_decorrelated_views_give_near_zero_loss() -> None:
    z = torch.linalg.qr(torch.randn(64, 8))[0]  # orthogonal, zero-ish mean columns
    z = z - z.mean(0)
    assert BarlowTwinsLoss()(z, z).item() < 1e-2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_computes_in_float32_for_low_precision_inputs(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    z1, z2 = (torch.randn(16, 6) * 300).to(dtype), (torch.randn(16, 6) * 300).to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = BarlowTwinsLoss()(z1, z2)
    assert loss.dtype == torch.float32
    reference = barlow_twins_numpy(z1.double().numpy(), z2.double().numpy(), 5.1e-3)
    assert loss.item() == pytest.approx(reference, rel=1e-4)


def test_gradients_flow_to_both_inputs() -> None:
    z1, z2 = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    BarlowTwinsLoss()(z1, z2).backward()
    assert z1.grad is not None and z1.grad.abs().sum() > 0
    assert z2.grad is not None and z2.grad.abs().sum() > 0


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(8, 4\) and \(8, 5\)"):
        BarlowTwinsLoss()(torch.randn(8, 4), torch.randn(8, 5))


def test_rejects_a_batch_of_one() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        BarlowTwinsLoss()(torch.randn(1, 4), torch.randn(1, 4))


def test_rejects_negative_lambda() -> None:
    with pytest.raises(ValueError, match="lambd"):
        BarlowTwinsLoss(-1.0)
