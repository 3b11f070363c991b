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


def vicreg_paper(z1: np.ndarray, z2: np.ndarray, eps: float = 1e-4) -> float:
    """VICReg as Bardes et al. 2022 define it (Eq. 1-6 and Algorithm 1), weights 25/25/1."""
    n, d = z1.shape
    invariance = np.mean((z1 - z2) ** 2)

    def variance(z: np.ndarray) -> float:
        std = np.sqrt(z.var(axis=0, ddof=1) + eps)
        return float(np.mean(np.maximum(0.0, 1.0 - std)))

    def covariance(z: np.ndarray) -> float:
        centred = z - z.mean(axis=0)
        cov = centred.T @ centred / (n - 1)
        return float((cov**2).sum() - (np.diag(cov) ** 2).sum()) / d

    return float(
        25 * invariance
        + 25 * (variance(z1) + variance(z2)) / 2
        + 1 * (covariance(z1) + covariance(z2))
    )


@pytest.mark.parametrize("spread", [0.1, 3.0])  # below and above the variance hinge
def test_vicreg_matches_the_paper_formula(spread: float) -> None:
    from fgssl.losses import VICRegLoss

    generator = torch.Generator().manual_seed(3)
    z1 = spread * torch.randn(16, 6, generator=generator, dtype=torch.float64)
    z2 = z1 + 0.3 * torch.randn(16, 6, generator=generator, dtype=torch.float64)
    expected = vicreg_paper(z1.numpy(), z2.numpy())
    got = VICRegLoss(gather_distributed=False)(z1, z2)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert VICRegLoss(scale=0.5)(z1, z2).item() == pytest.approx(expected / 2, rel=1e-5)


def test_vicreg_refuses_a_batch_of_one_and_mismatched_shapes() -> None:
    from fgssl.losses import VICRegLoss

    with pytest.raises(ValueError, match="at least 2 samples"):
        VICRegLoss()(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="same shape"):
        VICRegLoss()(torch.randn(4, 4), torch.randn(4, 3))


def test_the_objective_is_chosen_by_target_and_defaults_to_barlow_twins() -> None:
    from fgssl import FGSSLModule
    from fgssl.errors import ConfigError
    from fgssl.losses import VICRegLoss

    net = {
        "_target_": "fgssl.models.BaselineNet",
        "backbone": "resnet18",
        "pretrained": False,
        "num_classes": 3,
    }
    default = FGSSLModule(net=net, schedule=[], barlow_lambda=0.01, barlow_scale=0.5)
    assert isinstance(default.ssl_loss, BarlowTwinsLoss)
    assert (default.ssl_loss.lambd, default.ssl_loss.scale) == (0.01, 0.5)
    vicreg = FGSSLModule(
        net=net, schedule=[], objective={"_target_": "fgssl.losses.VICRegLoss", "mu_param": 5.0}
    )
    assert isinstance(vicreg.ssl_loss, VICRegLoss)
    assert vicreg.ssl_loss.lightly.mu_param == 5.0
    with pytest.raises(ConfigError, match=r"objective: cannot build 'fgssl\.losses\.Nope'"):
        FGSSLModule(net=net, schedule=[], objective={"_target_": "fgssl.losses.Nope"})


def reference_barlow_numpy(z1: np.ndarray, z2: np.ndarray, lambd: float) -> float:
    """The reference code's variant, element by element in float64: unbiased std, no eps,
    lambd^2 on every (C - I) entry."""
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / z1.std(0, ddof=1)
    b = (z2 - z2.mean(0)) / z2.std(0, ddof=1)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += lambd**2 * (c_ij - (1.0 if i == j else 0.0)) ** 2
    return loss


@pytest.mark.parametrize(("n", "d", "lambd"), [(16, 8, 5.1e-3), (5, 12, 0.5)])
def test_the_reference_variant_matches_its_formula(n: int, d: int, lambd: float) -> None:
    from fgssl.losses import ReferenceBarlowTwinsLoss

    rng = np.random.default_rng(n + d)
    z1, z2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    expected = reference_barlow_numpy(z1, z2, lambd)
    t1, t2 = torch.tensor(z1, dtype=torch.float32), torch.tensor(z2, dtype=torch.float32)
    got = ReferenceBarlowTwinsLoss(lambd, scale=3.0)(t1, t2).item()
    assert got == pytest.approx(3.0 * expected, rel=1e-4)
    # and it is not Zbontar's loss: same inputs, another value
    assert BarlowTwinsLoss(lambd)(t1, t2).item() != pytest.approx(expected, rel=1e-2)


def test_the_reference_variant_is_not_finite_on_a_constant_dimension() -> None:
    from fgssl.losses import ReferenceBarlowTwinsLoss

    z = torch.randn(8, 4)
    z[:, 2] = 1.0  # no eps: the reference code divides by a zero std
    assert not torch.isfinite(ReferenceBarlowTwinsLoss()(z, z.clone()))
    assert torch.isfinite(BarlowTwinsLoss()(z, z.clone()))  # eps 1e-5 keeps Zbontar's finite
