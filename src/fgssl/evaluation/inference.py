"""Running a trained network over a data loader: class probabilities of each head."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from fgssl.models.base import EVAL_HEADS, StagedNet

__all__ = [
    "HEADS",
    "TTA_FLIPS",
    "default_device",
    "predict_probabilities",
]

HEADS = EVAL_HEADS

TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))
"""Flip test-time augmentation: identity, horizontal, vertical, both."""


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict_probabilities(
    net: StagedNet,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str = "cpu",
    tta: bool = False,
) -> dict[str, torch.Tensor]:
    """Softmax probabilities (N, C) of the ``combined`` and ``concat`` predictions.

    ``batches`` yield dicts with ``image``; their other tensor entries (``label``,
    ``index``, ...) are concatenated into the result under the same keys. With ``tta`` the
    probabilities are averaged over the four flips of :data:`TTA_FLIPS`. The network is put
    in eval mode (its embedding heads use batch normalisation). No batches: an empty dict.
    """
    net.eval().to(device)
    collected: dict[str, list[torch.Tensor]] = {}
    flips = TTA_FLIPS if tta else ((),)
    for batch in batches:
        images = batch["image"].to(device)
        sums: dict[str, torch.Tensor] = {}
        for dims in flips:
            output = net(images.flip(dims) if dims else images)
            for head, logits in output.eval_logits().items():
                probabilities = logits.float().softmax(dim=1)
                sums[head] = sums[head] + probabilities if head in sums else probabilities
        for head, total in sums.items():
            collected.setdefault(head, []).append((total / len(flips)).cpu())
        for key, value in batch.items():
            if key != "image" and isinstance(value, torch.Tensor):
                collected.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in collected.items()}
