"""Weighted k-nearest-neighbour classification on frozen features (Wu et al. 2018, DINO).

fgssl's own rather than lightly's ``knn_predict`` (the same vote), which returns the classes
ranked where the scores need probabilities (AUROC), weighs by ``exp(s / T)`` unshifted
(infinite in float32 for ``T`` below about 1/88), and compares every test feature with the
whole bank at once, where this compares a chunk at a time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fgssl.errors import ConfigError

__all__ = ["knn_predict"]


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    num_classes: int,
    *,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class probabilities (N_test, C) from the ``k`` nearest training features.

    Features are L2-normalised; neighbours are those of highest cosine similarity s, and each
    votes for its class with weight ``exp(s / temperature)``; the votes are normalised to sum
    to one. ``k`` is capped at the number of training samples.
    """
    if train_features.shape[0] != train_labels.shape[0]:
        raise ConfigError(
            f"{train_features.shape[0]} training features but {train_labels.shape[0]} labels"
        )
    if k < 1 or temperature <= 0:
        raise ConfigError(f"k must be >= 1 and temperature > 0, got k={k}, {temperature=}")
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    k = min(k, train.shape[0])
    one_hot = F.one_hot(train_labels.long(), num_classes).float()
    probabilities = []
    for start in range(0, test.shape[0], chunk_size):
        similarity = test[start : start + chunk_size] @ train.T
        top, index = similarity.topk(k, dim=1)
        # exp(s / T) divided by the nearest neighbour's: no overflow, and never all zero
        weights = ((top - top[:, :1]) / temperature).exp()
        votes = (weights.unsqueeze(-1) * one_hot[index]).sum(dim=1)
        probabilities.append(votes / votes.sum(dim=1, keepdim=True))
    return torch.cat(probabilities)
