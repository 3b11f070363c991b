"""Barlow Twins redundancy-reduction loss (Zbontar et al., 2021)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["BarlowTwinsLoss", "gather_with_grad"]


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
    and ``loss = sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``.

    The loss is computed in float32 whatever the input dtype and autocast state. With
    ``gather_distributed`` and an initialised process group, statistics and C are over the
    global batch (see :func:`gather_with_grad`).
    """

    def __init__(
        self, lambd: float = 5.1e-3, *, gather_distributed: bool = True, eps: float = 1e-5
    ):
        super().__init__()
        if lambd < 0:
            raise ValueError(f"BarlowTwinsLoss lambd must be >= 0, got {lambd}")
        self.lambd = float(lambd)
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
            on_diag = torch.diagonal(cross_corr)
            on_diag_term = (1.0 - on_diag).pow(2).sum()
            off_diag_term = cross_corr.pow(2).sum() - on_diag.pow(2).sum()
            return on_diag_term + self.lambd * off_diag_term

    def _standardise(self, z: torch.Tensor) -> torch.Tensor:
        mean = z.mean(dim=0)
        var = z.var(dim=0, unbiased=False)
        return (z - mean) / torch.sqrt(var + self.eps)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}, gather_distributed={self.gather_distributed}"
