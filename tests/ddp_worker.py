"""A light module (few imports) that spawned test processes run: metrics under torch.distributed."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from fgssl.metrics import classification_metrics


def random_predictions(
    count: int, num_classes: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities (softmax of random logits) and labels, every class present."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(num_classes, (count,), generator=generator)
    labels[:num_classes] = torch.arange(num_classes)
    logits = torch.randn(count, num_classes, generator=generator)
    logits[torch.arange(count), labels] += 1.0  # better than chance, not perfect
    return logits.softmax(dim=1), labels


def metrics_on_a_shard(
    rank: int, world_size: int, port: int, queue: Any, class_names: tuple[str, ...]
) -> None:
    """Process ``rank`` updates the metrics with every ``world_size``-th prediction; rank 0
    puts the synchronised values on ``queue``."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    probabilities, labels = random_predictions(301, len(class_names), seed=8)
    metrics = classification_metrics(len(class_names), ordinal=True, class_names=class_names)
    metrics.update(probabilities[rank::world_size], labels[rank::world_size])
    values = {k: float(v) for k, v in metrics.compute().items()}
    if rank == 0:
        queue.put(values)
    dist.destroy_process_group()
