"""What the data modules of users' own images share: classes read from the data, and
validation/test splits drawn from the training images when none is given."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.class_order import derive_class_names, warn_given_order
from fgssl.data.fractions import HeldOutFractions
from fgssl.data.labels import encode_labels, given_class_names, takes_indices

__all__ = ["UserDataModule"]

log = logging.getLogger(__name__)


class UserDataModule(HeldOutFractions, ImageClassificationDataModule):
    """Base of :class:`FolderDataModule` and :class:`CSVDataModule`.

    Args:
        class_names: the classes in label order (default: read from the training labels by
            :meth:`derive_classes`, see :mod:`fgssl.data.class_order`). Labels match them
            by :func:`~fgssl.data.labels.label_key`; integer labels are positions in them
            unless a name is a number.
        ordinal: the classes are grades (the official metric is then quadratic weighted
            kappa, else balanced accuracy).
        val_fraction: the share of the training images drawn (seeded, stratified) for
            validation when no validation set is given (default 0.2).
        test_fraction: the share drawn for a held-out test split (default 0: the test split
            is the validation split).
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
        self._class_names = given_class_names(class_names)
        self.names_given = self._class_names is not None
        """Whether ``data.class_names`` states the classes (else they are read from the data)."""
        if self._class_names is not None:
            warn_given_order(self._class_names, ordinal=ordinal)
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

    def derive_classes(self, labels: Iterable[str], *, where: str) -> None:
        """Read the classes from the training ``labels`` unless ``data.class_names`` gave
        them (see :mod:`fgssl.data.class_order`)."""
        if self._class_names is None:
            self._class_names = derive_class_names(labels, ordinal=self.ordinal, where=where)

    def encode(
        self,
        labels: Iterable[str],
        *,
        source: str,
        train_source: str,
        ids: Sequence[str] | None = None,
        what: str = "label(s)",
    ) -> list[int]:
        """The class index of each label (:func:`~fgssl.data.labels.encode_labels`): a label
        matches a class name, or, with user-given names that are not numbers, is an integer
        position in them. The error for other labels says what to do: with classes read
        from the training labels (``train_source``), every label must occur there."""
        if self.names_given:
            hint = ": rename them, or add them to data.class_names"
        else:
            hint = (
                f": the classes are those of the training images ({train_source}); spell the "
                "labels as there, or list every class in data.class_names (a class without "
                "training images is then allowed, with a warning)"
            )
        return encode_labels(
            labels,
            self.class_names,
            source=source,
            ids=ids,
            indices=self.names_given and takes_indices(self.class_names),
            what=what,
            hint=hint,
        )

    def warn_untrained(self, train_labels: pd.Series, where: str) -> None:
        """Warn naming the classes that no training image has (only user-given
        ``data.class_names`` can list one)."""
        counts = train_labels.value_counts()
        empty = [n for i, n in enumerate(self.class_names) if counts.get(i, 0) == 0]
        if empty:
            log.warning("class(es) %s have no training image in %s", empty, where)

    def known_class_names(self) -> Sequence[str] | None:
        return self._class_names

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
