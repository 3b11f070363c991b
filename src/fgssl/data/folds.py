"""k-fold cross-validation of the training images: the ``data.folds`` / ``data.fold`` options
(:func:`check_folds`) and the seeded partition of the rows into folds (:func:`fold_of_rows`),
stratified by label and, where given, keeping each group (a lesion, a patient) and each set
of byte-identical files in one fold.

The partition draws fold 0 as 1/K of the rows, fold 1 as 1/(K-1) of the rest, ..., and the
last fold is what remains: every draw is :func:`fgssl.data.draws.split_off` (scikit-learn's
stratified ``train_test_split`` without groups, :mod:`fgssl.data.group_draw` with them), so
each fold holds about 1/K of the images and of each class, as scikit-learn's
``StratifiedKFold`` / ``StratifiedGroupKFold`` do, and it depends only on the rows and the
seed: every fold index of one sweep sees the same partition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fgssl.data.draws import split_off
from fgssl.errors import ConfigError

__all__ = ["DEFAULT_FOLDS", "check_folds", "fold_of_rows"]

DEFAULT_FOLDS = 5
"""The number of folds when ``data.fold`` is set and ``data.folds`` is not."""


def check_folds(folds: object, fold: object, *, reader: object) -> tuple[int | None, int | None]:
    """(number of folds, fold index) of the options, or (None, None) without cross-validation.

    Raises :class:`ConfigError` naming the key for ``data.folds`` without ``data.fold``, a
    value that is not an integer, fewer than 2 folds, a fold index outside 0..K-1, and a
    fold for a data module (``reader``) that does not draw its validation split (its
    ``draws_splits`` False: official splits only, e.g. MedMNIST)."""
    if fold is None:
        if folds is not None:
            raise ConfigError(
                f"data.folds={folds} without data.fold: set the fold to validate on, "
                f"data.fold=0..{folds}-1 (all of them, a sweep: "
                "fgssl-train -m ... data.fold=range(K))"
            )
        return None, None
    if not getattr(reader, "draws_splits", False):
        raise ConfigError(
            f"data.fold={fold}: {type(reader).__name__} reads official splits only; k-fold "
            "cross-validation needs a reader that draws its validation split from the "
            "training images"
        )
    count = DEFAULT_FOLDS if folds is None else folds
    if not isinstance(count, int) or isinstance(count, bool) or count < 2:
        raise ConfigError(f"data.folds={folds!r}: expected an integer >= 2 (null: 5)")
    if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < count:
        raise ConfigError(f"data.fold={fold!r}: expected an integer in 0..{count - 1}")
    return count, fold


def fold_of_rows(
    labels: Sequence[int],
    folds: int,
    *,
    seed: int,
    groups: Sequence[str] | None = None,
    same: Sequence[str | None] | None = None,
) -> np.ndarray:
    """The fold (0..``folds``-1) of each row: an int64 array of ``len(labels)``, drawn as the
    module docstring says; rows of one group, or sharing a ``same`` key, in one fold.
    Raises ValueError when there are too few rows or groups for ``folds`` folds."""
    assignment = np.full(len(labels), folds - 1, dtype=np.int64)
    remaining = list(range(len(labels)))
    for k in range(folds - 1):
        if len(remaining) < 2:
            raise ValueError(f"too few images for {folds} folds ({len(labels)})")
        kept, held = split_off(
            [labels[i] for i in remaining],
            1.0 / (folds - k),
            seed=seed,
            groups=None if groups is None else [groups[i] for i in remaining],
            same=None if same is None else [same[i] for i in remaining],
        )
        if len(kept) == 0:
            raise ValueError(f"too few groups for {folds} folds: fold {k} took every image left")
        assignment[[remaining[i] for i in held]] = k
        remaining = [remaining[i] for i in kept]
    return assignment
