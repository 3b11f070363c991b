"""The shared machinery of fgssl's data modules: splits, transforms, loaders, phases."""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from fgssl.data.dataset import ImageDataset
from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, default_pipelines, finalize
from fgssl.errors import ConfigError

__all__ = ["ImageClassificationDataModule", "SplitTables"]

log = logging.getLogger(__name__)

SplitTables = dict[str, pd.DataFrame]
"""Split name -> table with columns ``id``, ``path`` and ``label`` (-1 when unlabelled)."""


class ImageClassificationDataModule(pl.LightningDataModule, abc.ABC):
    """Base class: subclasses read their files in :meth:`read_splits`.

    Batches are dicts with ``image`` (float B x 3 x S x S, normalised), ``label`` (long B),
    ``index`` and, while ``phase == "pretrain"``, ``view`` (the second view).

    Args:
        root: the dataset folder as downloaded.
        image_size: side of the square crops fed to the network.
        resize_size: short side images are resized to before cropping (default 8/7 of
            ``image_size``, i.e. 256 for 224).
        transforms: albumentations pipelines by name (``train``, ``eval``, ``view1``,
            ``view2``) replacing the defaults; normalisation and tensor conversion follow.
        seed: seeds the splits.
    """

    class_names: Sequence[str] = ()
    ordinal: bool = False
    official_metric: str = "balanced_acc"
    """Key of the validation metric the dataset's benchmark ranks by."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        image_size: int = 224,
        resize_size: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        seed: int = 0,
        transforms: Mapping[str, Callable[..., Any]] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        phase: Literal["pretrain", "finetune"] = "finetune",
    ):
        super().__init__()
        self.root = Path(root).expanduser()
        self.image_size = image_size
        self.resize_size = resize_size or round(image_size * 8 / 7)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        pipelines = default_pipelines(self.image_size, self.resize_size)
        pipelines.update(transforms or {})
        self.transforms = finalize(pipelines, mean=mean, std=std)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.phase = phase
        self.splits: SplitTables | None = None

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def read_splits(self) -> SplitTables:
        """Read the files and return the ``train``, ``val``, ``test`` (and optionally
        ``predict``) tables, raising a clear error for anything malformed."""

    # ----------------------------------------------------------------------- public
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        if value not in ("pretrain", "finetune"):
            raise ValueError(f"phase must be 'pretrain' or 'finetune', got {value!r}")
        self._phase = value

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.read_splits()
            sizes = ", ".join(f"{name} {len(table)}" for name, table in self.splits.items())
            log.info("%s: %s images", type(self).__name__, sizes)

    def split_table(self) -> pd.DataFrame:
        """One row per image: ``id``, ``label``, ``split`` (train/val/test/predict)."""
        self.setup()
        assert self.splits is not None
        frames = [t.assign(split=name)[["id", "label", "split"]] for name, t in self.splits.items()]
        return pd.concat(frames, ignore_index=True)

    def write_split(self, path: str | Path) -> Path:
        """Write :meth:`split_table` as CSV to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.split_table().to_csv(path, index=False)
        return path

    def dataset(self, split: str, *, pipeline: str | None = None) -> ImageDataset:
        """The dataset of ``split`` with the transforms of the current phase."""
        self.setup()
        assert self.splits is not None
        if split not in self.splits:
            raise KeyError(f"{type(self).__name__} has no {split!r} split: {list(self.splits)}")
        table = self.splits[split]
        view = None
        if pipeline is None:
            if split == "train" and self.phase == "pretrain":
                pipeline, view = "view1", self.transforms["view2"]
            else:
                pipeline = "train" if split == "train" else "eval"
        return ImageDataset(
            table["path"].tolist(), table["label"].tolist(), self.transforms[pipeline], view
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("predict"), self.eval_batch_size)

    def _loader(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
    ) -> DataLoader:
        if drop_last and len(dataset) < batch_size:
            raise ConfigError(
                f"the training split has {len(dataset)} images, fewer than batch_size="
                f"{batch_size}: lower data.batch_size"
            )
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            generator=generator,
        )
