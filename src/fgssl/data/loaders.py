"""DataLoader pieces of the data modules: the per-process batch check and the test sampler
that never repeats an image under DDP."""

from __future__ import annotations

import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Sampler

from fgssl.data.dataset import ImageDataset
from fgssl.errors import ConfigError

__all__ = ["check_whole_batch", "unrepeated_sampler"]


def check_whole_batch(images: int, batch_size: int, processes: int = 1) -> None:
    """Refuse a training split that gives a process fewer than ``batch_size`` images (the
    incomplete last batch is dropped, so it would train on nothing). Under DDP each of the
    ``processes`` gets ceil(images / processes) images and ``batch_size`` is per process."""
    per_process = -(-images // processes)
    if per_process < batch_size:
        shares = f" ({processes} processes get {per_process} each)" if processes > 1 else ""
        raise ConfigError(
            f"the training split has {images} images{shares}, fewer than batch_size="
            f"{batch_size} per process: lower data.batch_size"
        )


def unrepeated_sampler(dataset: ImageDataset) -> Sampler[int] | None:
    """A sampler giving each process a disjoint share of ``dataset`` (no padding) when
    torch.distributed runs several processes, else None (Lightning's default)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    if torch.distributed.get_world_size() == 1:
        return None
    return UnrepeatedDistributedSampler(dataset, shuffle=False)
