"""The self-supervised objectives: Barlow Twins (Zbontar et al., 2021), the default, and
VICReg (Bardes et al., 2022, from lightly)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from hydra.utils import instantiate
from torch import nn

from fgssl.errors import ConfigError

__all__ = [
    "BarlowTwinsLoss",
    "ReferenceBarlowTwinsLoss",
    "VICRegLoss",
    "build_objective",
    "gather_with_grad",
]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0, keeping autograd intact.

    Returns ``tensor`` unchanged when torch.distributed is not initialised or has one
    process. The backward pass sums the incoming gradients of all processes and hands each
    process the slice of its own rows, so with DDP's gradient averaging the parameter
    gradients equal those of a single process on the concatenated batch.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins loss between two batches of embeddings.

    ``z1`` and ``z2`` (N, D) are each normalised per dimension over the batch (zero mean,
    unit biased variance, eps 1e-5, as BatchNorm1d without affine), ``C = z1n.T @ z2n / N``
    and ``loss = scale * (sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2)``.
    ``scale`` (default 1) puts the loss's gradients on another scale, e.g. 1/D to match
    cross-entropy's (fgssl's ``loss.barlow_scale``).

    The loss is computed in float32 whatever the input dtype and autocast state. With
    ``gather_distributed`` and an initialised process group, statistics and C are over the
    global batch (see :func:`gather_with_grad`).
    """

    def __init__(
        self,
        lambd: float = 5.1e-3,
        *,
        scale: float = 1.0,
        gather_distributed: bool = True,
        eps: float = 1e-5,
    ):
        super().__init__()
        if lambd < 0:
            raise ValueError(f"BarlowTwinsLoss lambd must be >= 0, got {lambd}")
        if not scale > 0:
            raise ValueError(f"BarlowTwinsLoss scale must be > 0, got {scale}")
        self.lambd = float(lambd)
        self.scale = float(scale)
        self.gather_distributed = gather_distributed
        self.eps = float(eps)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.dim() != 2 or z1.shape != z2.shape:
            raise ValueError(
                "BarlowTwinsLoss expects two (N, D) tensors of the same shape, got "
                f"{tuple(z1.shape)} and {tuple(z2.shape)}"
            )
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z1, z2 = z1.float(), z2.float()
            if self.gather_distributed:
                z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
            batch_size = z1.shape[0]
            if batch_size < 2:
                raise ValueError(
                    "BarlowTwinsLoss needs a batch of at least 2 samples to normalise over the "
                    f"batch, got {batch_size} (use a larger batch_size or drop_last=True)"
                )
            cross_corr = self._standardise(z1).T @ self._standardise(z2) / batch_size
            loss = self._combine(cross_corr)
            return loss if self.scale == 1.0 else self.scale * loss

    def _combine(self, cross_corr: torch.Tensor) -> torch.Tensor:
        on_diag = torch.diagonal(cross_corr)
        on_diag_term = (1.0 - on_diag).pow(2).sum()
        off_diag_term = cross_corr.pow(2).sum() - on_diag.pow(2).sum()
        return on_diag_term + self.lambd * off_diag_term

    def _standardise(self, z: torch.Tensor) -> torch.Tensor:
        mean = z.mean(dim=0)
        var = z.var(dim=0, unbiased=False)
        return (z - mean) / torch.sqrt(var + self.eps)

    def extra_repr(self) -> str:
        return (
            f"lambd={self.lambd}, scale={self.scale}, gather_distributed={self.gather_distributed}"
        )


class ReferenceBarlowTwinsLoss(BarlowTwinsLoss):
    """The Barlow Twins variant of the FG-SSL reference code, kept as an ablation
    (``objective=barlow_twins_reference``); :class:`BarlowTwinsLoss` is Zbontar et al.'s.

    ``z1`` and ``z2`` (N, D) are standardised per dimension with the *unbiased* standard
    deviation and no eps, ``C = z1n.T @ z2n / N`` and
    ``loss = scale * lambd**2 * sum_ij (C - I)_ij^2``: the diagonal and the off-diagonal
    terms weighted alike, both by ``lambd`` squared (about 2.6e-5 for the default 5.1e-3).
    A dimension that is constant over the batch divides by zero (a non-finite loss), as in
    the reference code. Float32, and the global batch under DDP, as :class:`BarlowTwinsLoss`.
    """

    def _standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(dim=0)) / z.std(dim=0, unbiased=True)

    def _combine(self, cross_corr: torch.Tensor) -> torch.Tensor:
        identity = torch.eye(cross_corr.shape[0], device=cross_corr.device)
        return self.lambd**2 * (cross_corr - identity).pow(2).sum()


class VICRegLoss(nn.Module):
    """VICReg loss (Bardes, Ponce & LeCun, ICLR 2022, arXiv 2105.04906) between two batches
    of embeddings ``z1``, ``z2`` (N, D), computed by lightly's ``VICRegLoss``:

    ``loss = scale * (lambda_param * inv + mu_param * var + nu_param * cov)``, with
    ``inv = mean((z1 - z2)^2)``, ``var = (v(z1) + v(z2)) / 2`` where
    ``v(z) = mean_j relu(1 - sqrt(Var_j(z) + eps))`` (unbiased variance per dimension), and
    ``cov = c(z1) + c(z2)`` where ``c(z)`` is the sum of the squared off-diagonal entries of
    the covariance matrix of ``z`` divided by D. Defaults are the paper's: 25, 25, 1, eps 1e-4.

    Computed in float32 whatever the input dtype and autocast state. With
    ``gather_distributed`` and an initialised process group, the variance and covariance
    terms are over the global batch, gathered with lightly's autograd-aware all-gather.

    Raises:
        ValueError: a batch of fewer than 2 samples, or ``z1`` and ``z2`` of other shapes.
    """

    def __init__(
        self,
        lambda_param: float = 25.0,
        mu_param: float = 25.0,
        nu_param: float = 1.0,
        *,
        scale: float = 1.0,
        gather_distributed: bool = True,
        eps: float = 1e-4,
    ):
        super().__init__()
        from lightly.loss import VICRegLoss as LightlyVICRegLoss

        if min(lambda_param, mu_param, nu_param) < 0 or not scale > 0:
            raise ValueError(
                "VICRegLoss weights must be >= 0 and scale > 0, got lambda_param="
                f"{lambda_param}, mu_param={mu_param}, nu_param={nu_param}, scale={scale}"
            )
        self.scale = float(scale)
        self.lightly = LightlyVICRegLoss(
            lambda_param=lambda_param,
            mu_param=mu_param,
            nu_param=nu_param,
            gather_distributed=gather_distributed,
            eps=eps,
        )

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.dim() != 2 or z1.shape != z2.shape:
            raise ValueError(
                "VICRegLoss expects two (N, D) tensors of the same shape, got "
                f"{tuple(z1.shape)} and {tuple(z2.shape)}"
            )
        if z1.shape[0] < 2:
            raise ValueError(
                "VICRegLoss needs a batch of at least 2 samples for its variance term, got "
                f"{z1.shape[0]} (use a larger batch_size or drop_last=True)"
            )
        with torch.autocast(device_type=z1.device.type, enabled=False):
            loss: torch.Tensor = self.lightly(z1.float(), z2.float())
            return loss if self.scale == 1.0 else self.scale * loss


def build_objective(
    objective: Mapping[str, Any] | None, *, lambd: float = 5.1e-3, scale: float = 1.0
) -> nn.Module:
    """The SSL loss module of ``objective`` (a config with a ``_target_``, e.g.
    ``{"_target_": "fgssl.losses.VICRegLoss"}``); None: Barlow Twins with ``lambd`` and
    ``scale``. Raises :class:`ConfigError` naming the target it cannot build."""
    if objective is None:
        return BarlowTwinsLoss(lambd, scale=scale)
    target = objective.get("_target_")
    try:
        loss = instantiate(dict(objective))
    except Exception as error:
        reason = str(error.__cause__ or error).strip().splitlines()[0]
        raise ConfigError(f"objective: cannot build {target!r}: {reason}") from error
    if not isinstance(loss, nn.Module):
        raise ConfigError(
            f"objective._target_ {target!r} built a {type(loss).__name__}: expected a torch "
            "nn.Module loss called with two (N, D) embedding batches"
        )
    return loss
