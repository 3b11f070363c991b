"""Collapse indicators of an embedding: its spread on the unit sphere and its effective rank.

A self-supervised objective can be minimised by mapping every image to the same vector
(complete collapse) or to a few directions (dimensional collapse). Two label-free numbers
show either while a run trains:

- :func:`normalized_std`: the standard deviation of the L2-normalised embeddings, per
  dimension over the images, averaged over the dimensions (SimSiam, Chen & He 2021, sec. 4.1),
  computed by lightly's ``std_of_l2_normalized``. Embeddings spread isotropically on the
  sphere give about 1/sqrt(D); a collapsed one gives 0.
- :func:`rankme`: the effective rank (RankMe, Garrido et al., ICML 2023, eq. 1):
  ``exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1 + eps`` over the singular
  values sigma of the (N, D) embedding matrix, eps = 1e-7 as in the paper. Between about 1
  (one direction) and min(N, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from lightly.utils.debug import std_of_l2_normalized

__all__ = [
    "RANKME_EPS",
    "CollapseIndicators",
    "collapse_indicators",
    "normalized_std",
    "rankme",
]

RANKME_EPS = 1e-7
"""The eps of RankMe's singular-value distribution (Garrido et al. 2023)."""
STD_COLLAPSE = 0.1
"""Collapse threshold of ``normalized_std * sqrt(D)``: a tenth of the isotropic value."""
RANK_COLLAPSE_SHARE = 0.01
"""Collapse threshold of RankMe, as a share of min(N, D) (never below 2 directions)."""


def normalized_std(embeddings: torch.Tensor) -> float:
    """Mean over the D dimensions of the standard deviation (unbiased, over the N rows) of
    the L2-normalised rows of ``embeddings`` (N, D): about 1/sqrt(D) for isotropic
    embeddings, 0 when every row points the same way. lightly's ``std_of_l2_normalized``
    in float64 (the embeddings of a mixed-precision run are half precision), NaN
    (undefined) for N < 2, where torch's std would warn of no degrees of freedom."""
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {tuple(embeddings.shape)}")
    if embeddings.shape[0] < 2:
        return math.nan
    return float(std_of_l2_normalized(embeddings.double()))


def rankme(embeddings: torch.Tensor, *, eps: float = RANKME_EPS) -> float:
    """RankMe effective rank of ``embeddings`` (N, D) (Garrido et al. 2023, eq. 1): between
    about 1 and min(N, D). NaN (undefined) when the matrix is all zero or empty (no singular
    value distribution exists)."""
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {tuple(embeddings.shape)}")
    if embeddings.numel() == 0:
        return math.nan
    sigma = torch.linalg.svdvals(embeddings.double())
    total = sigma.sum()
    if not torch.isfinite(total) or total <= 0:
        return math.nan
    p = sigma / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


@dataclass(frozen=True)
class CollapseIndicators:
    """The collapse indicators of one head's (N, D) embeddings."""

    std: float
    """:func:`normalized_std`."""
    rank: float
    """:func:`rankme`."""
    dim: int
    samples: int

    @property
    def std_ratio(self) -> float:
        """``std * sqrt(D)``: 1 for isotropic embeddings, 0 when collapsed."""
        return self.std * math.sqrt(self.dim)

    @property
    def rank_threshold(self) -> float:
        """The effective rank below which the embedding counts as collapsed:
        :data:`RANK_COLLAPSE_SHARE` of min(N, D), at least 2."""
        return max(2.0, RANK_COLLAPSE_SHARE * min(self.samples, self.dim))

    @property
    def collapsed(self) -> bool:
        """``std * sqrt(D) < 0.1`` or ``rank < rank_threshold`` (an undefined value
        counts as neither)."""
        return self.std_ratio < STD_COLLAPSE or self.rank < self.rank_threshold


def collapse_indicators(embeddings: torch.Tensor) -> CollapseIndicators:
    """:class:`CollapseIndicators` of ``embeddings`` (N, D)."""
    n, d = embeddings.shape
    return CollapseIndicators(
        std=normalized_std(embeddings), rank=rankme(embeddings), dim=int(d), samples=int(n)
    )
