"""Training order and augmentation randomness that depend only on (seed, epoch, index).

An interrupted run that resumes at epoch e then sees exactly the batches, and the
augmentations, that an uninterrupted run sees at epoch e, whatever the number of dataloader
workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["EpochSampler", "derive_seed", "shared_epoch"]


def derive_seed(*entropy: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence)."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class EpochSampler(Sampler[int]):
    """Shuffles ``num_items`` indices anew each epoch or, with ``weights``, draws that many
    with replacement in proportion to the weights; the order is a function of (seed, epoch).

    ``epoch`` is a one-element tensor in shared memory that :meth:`set_epoch` (which
    Lightning calls before every epoch, through its distributed wrapper too) updates, so that
    dataloader workers of :class:`fgssl.data.ImageDataset` read the same epoch.
    """

    def __init__(
        self,
        num_items: int,
        *,
        seed: int,
        epoch: torch.Tensor,
        weights: Sequence[float] | None = None,
    ):
        self.num_items = num_items
        self.seed = seed
        self.epoch = epoch
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def set_epoch(self, epoch: int) -> None:
        self.epoch.fill_(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, int(self.epoch)))
        if self.weights is None:
            order = torch.randperm(self.num_items, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.num_items, True, generator=generator)
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_items


def shared_epoch(epoch: int = 0) -> torch.Tensor:
    """A one-element long tensor in shared memory, visible to dataloader workers."""
    return torch.tensor([epoch], dtype=torch.long).share_memory_()
