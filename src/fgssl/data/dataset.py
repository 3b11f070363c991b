"""A map-style dataset of image files and labels yielding the batch dicts of the data contract."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fgssl.data.io import read_rgb, tolerating_damage
from fgssl.data.sampling import derive_seed

__all__ = ["ImageDataset"]


class ImageDataset(Dataset[dict[str, torch.Tensor]]):
    """Images and integer labels. Yields ``image``, ``label``, ``index`` and, when
    ``view_transform`` is given, ``view``: a second, differently augmented copy.

    With ``seed`` (and ``epoch``, a shared one-element tensor kept up to date by
    :class:`fgssl.data.sampling.EpochSampler`), the augmentations of item ``index`` are seeded
    from (seed, epoch, index): reproducible whatever the workers, and across resumption.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int],
        transform: Callable[[np.ndarray], torch.Tensor],
        view_transform: Callable[[np.ndarray], torch.Tensor] | None = None,
        reader: Callable[[str | os.PathLike[str]], np.ndarray] = read_rgb,
        seed: int | None = None,
        epoch: torch.Tensor | None = None,
    ):
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths = [str(p) for p in paths]
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.transform = transform
        self.view_transform = view_transform
        self.reader = reader
        self.seed = seed
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.seed is not None:
            epoch = int(self.epoch) if self.epoch is not None else 0
            _reseed(self.transform, derive_seed(self.seed, epoch, index, 0))
            _reseed(self.view_transform, derive_seed(self.seed, epoch, index, 1))
        with tolerating_damage():  # a damaged JPEG is named, not fatal, mid-training
            image = self.reader(self.paths[index])
        item = {
            "image": self.transform(image),
            "label": self.labels[index],
            "index": torch.tensor(index),
        }
        if self.view_transform is not None:
            item["view"] = self.view_transform(image)
        return item


def _reseed(transform: object, seed: int) -> None:
    reseed = getattr(transform, "reseed", None)
    if callable(reseed):
        reseed(seed)
