"""The ``val_fraction`` / ``test_fraction`` options of a dataset reader, checked and applied
in one place: every reader that draws validation or test images from its training images
inherits :class:`HeldOutFractions` beside
:class:`~fgssl.data.base.ImageClassificationDataModule`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fgssl.data.duplicates import DuplicateMode
from fgssl.data.splits import assemble_splits, check_fractions

__all__ = ["HeldOutFractions"]


class HeldOutFractions:
    """Mixin: the reader calls :meth:`_init_fractions` in its ``__init__`` (after the data
    module's, which sets ``seed`` and ``duplicates``) and :meth:`_assemble_splits` in
    ``read_splits``."""

    draws_splits = True
    seed: int
    duplicates: DuplicateMode
    val_fraction: float | None
    test_fraction: float
    folds: int | None
    fold: int | None

    def _init_fractions(self, val_fraction: float | None, test_fraction: float) -> None:
        """Keep the fractions; :class:`~fgssl.errors.ConfigError` when they are out of range
        or leave no training images (:func:`~fgssl.data.splits.check_fractions`)."""
        check_fractions(val_fraction, test_fraction)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction

    def _assemble_splits(self, train: pd.DataFrame, **kwargs: Any) -> dict[str, pd.DataFrame]:
        """:func:`~fgssl.data.splits.assemble_splits` of ``train`` with this reader's
        fractions, folds and seed, byte-identical images kept on one side unless
        ``duplicates="ignore"``; ``kwargs`` (``val``, ``test``, ``group_column``,
        ``unique_ids``) are passed on."""
        return assemble_splits(
            train,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.seed,
            keep_identical=self.duplicates != "ignore",
            fold=None if self.fold is None or self.folds is None else (self.fold, self.folds),
            **kwargs,
        )
