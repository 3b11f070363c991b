"""The training phases' view of a data module's splits: what the pretrain and the finetune
phase read, and the hand-off between them (:meth:`PhaseTables.enter_phase`)."""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from typing import Literal, cast, get_args

import numpy as np
import pandas as pd

from fgssl.data.dataset import ImageDataset
from fgssl.data.imbalance import class_weights
from fgssl.data.splits import SplitTables
from fgssl.data.transforms import TensorTransform
from fgssl.data.unlabelled import pretrain_images

__all__ = ["PHASES", "DataPhase", "PhaseTables"]

DataPhase = Literal["pretrain", "finetune"]
PHASES: tuple[str, ...] = get_args(DataPhase)


class PhaseTables(abc.ABC):
    """Mixin of :class:`~fgssl.data.base.ImageClassificationDataModule`: the tables and
    datasets of the current phase.

    - ``"pretrain"``: the training split is every training image and the unlabelled ones
      (:func:`fgssl.data.unlabelled.pretrain_images`), its batches get a second view.
    - ``"finetune"``: the training split keeps the images whose label ``label_fraction``
      kept.
    """

    class_names: Sequence[str]
    seed: int
    transforms: dict[str, TensorTransform]
    unlabelled_own: bool
    _phase: DataPhase

    @abc.abstractmethod
    def _ready_splits(self) -> SplitTables:
        """The split tables, read and checked on first use."""

    @property
    @abc.abstractmethod
    def num_classes(self) -> int: ...

    @property
    @abc.abstractmethod
    def reader(self) -> Callable[[str | os.PathLike[str]], np.ndarray]: ...

    @property
    def phase(self) -> DataPhase:
        """The phase the tables, datasets and dataloaders are served for (set by
        :meth:`enter_phase`)."""
        return self._phase

    def enter_phase(self, phase: str) -> None:
        """Serve ``phase`` (``"pretrain"`` or ``"finetune"``) from now on: the tables,
        datasets and dataloaders built afterwards are that phase's (a trainer's ``fit``
        builds its dataloaders anew). Raises ValueError for another name."""
        if phase not in PHASES:
            raise ValueError(f"phase must be 'pretrain' or 'finetune', got {phase!r}")
        self._phase = cast(DataPhase, phase)

    def table(self, split: str) -> pd.DataFrame:
        """The images of ``split`` as the current phase uses them: in the finetune phase,
        the training split keeps only the images whose label ``label_fraction`` kept; in
        the pretrain phase it holds every training image and the unlabelled ones
        (:func:`fgssl.data.unlabelled.pretrain_images`)."""
        splits = self._ready_splits()
        if split not in splits:
            raise KeyError(f"{type(self).__name__} has no {split!r} split: {list(splits)}")
        if split == "train" and self.phase == "pretrain":
            return pretrain_images(splits, own=self.unlabelled_own)
        table = splits[split]
        if split == "train" and self.phase == "finetune":
            table = table[table["labelled"]]
        return table

    def dataset(self, split: str, *, pipeline: str | None = None) -> ImageDataset:
        """The dataset of ``split`` with the transforms of the current phase."""
        table = self.table(split)
        view = None
        if pipeline is None:
            if split == "train" and self.phase == "pretrain":
                pipeline, view = "view1", self.transforms["view2"]
            else:
                pipeline = "train" if split == "train" else "eval"
        return ImageDataset(
            table["path"].tolist(),
            table["label"].tolist(),
            self.transforms[pipeline],
            view,
            reader=self.reader,
            seed=self.seed if split == "train" else None,
        )

    def class_counts(self) -> np.ndarray:
        """Images per class in the finetune phase's training set."""
        splits = self._ready_splits()
        train = splits["train"]
        labels = train.loc[train["labelled"], "label"].to_numpy()
        return np.bincount(labels, minlength=self.num_classes)

    def class_weights(self, method: str | Sequence[float] | None) -> list[float] | None:
        """Cross-entropy class weights for the finetune training labels (``loss.class_weights``:
        None, ``"balanced"`` or one weight per class; see
        :func:`fgssl.data.imbalance.class_weights`)."""
        return class_weights(method, self.class_counts(), self.class_names)
