"""What the data modules of users' own images share: classes read from the data, and
validation/test splits drawn from the training images when none is given."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.fractions import HeldOutFractions

__all__ = ["UserDataModule"]


class UserDataModule(HeldOutFractions, ImageClassificationDataModule):
    """Base of :class:`FolderDataModule` and :class:`CSVDataModule`.

    Args:
        class_names: the classes in label order (default: read from the data by
            :meth:`read_splits`, which sets ``self._class_names``).
        ordinal: the classes are grades (the official metric is then quadratic weighted
            kappa, else balanced accuracy).
        val_fraction, test_fraction: the share of the training images drawn (seeded,
            stratified) for validation when no validation set is given (default 0.2), and
            for a held-out test split (default 0: the test split is the validation split).
        **kwargs: see :class:`ImageClassificationDataModule`.
    """

    transforms_preset = "default"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        class_names: Sequence[str] | None = None,
        ordinal: bool = False,
        val_fraction: float | None = None,
        test_fraction: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(root, **kwargs)
        self._init_fractions(val_fraction, test_fraction)
        self._class_names: tuple[str, ...] | None = tuple(class_names) if class_names else None
        self.ordinal = ordinal
        self.official_metric = "kappa" if ordinal else "balanced_acc"

    @property
    def class_names(self) -> Sequence[str]:
        """The classes, in label order (read from the data when not given)."""
        if self._class_names is None:
            self.setup()
        assert self._class_names is not None
        return self._class_names

    @class_names.setter
    def class_names(self, names: Sequence[str]) -> None:
        self._class_names = tuple(names)

    def assemble(
        self,
        encoded: dict[str, pd.DataFrame],
        *,
        group_column: str | None = None,
        group_name: str = "group",
        unique_ids: bool = True,
    ) -> SplitTables:
        """The splits from the encoded ``train`` (and any given ``val``/``test``) tables,
        drawing what is missing with this module's fractions and seed (see
        :func:`~fgssl.data.splits.assemble_splits`: ``group_name`` names ``group_column``
        in its messages; ``unique_ids=False`` where an id is only unique within its own
        table)."""
        return self._assemble_splits(
            encoded["train"],
            val=encoded.get("val"),
            test=encoded.get("test"),
            group_column=group_column,
            group_name=group_name,
            unique_ids=unique_ids,
        )

    def beside_root(self, path: str | os.PathLike[str] | None) -> Path | None:
        """``path`` as given (absolute) or relative to ``root``; None stays None."""
        return None if path is None else self.root / Path(path).expanduser()
