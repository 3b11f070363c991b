"""The train / val / test tables of a dataset from its given tables and held-out fractions
(:func:`assemble_splits`); the seeded draws themselves are :mod:`fgssl.data.draws`."""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import pandas as pd

from fgssl.data.disjoint import require_distinct
from fgssl.data.draws import grouped_stratified_split, label_subset, split_off, stratified_split
from fgssl.data.duplicates import content_keys
from fgssl.data.folds import fold_of_rows
from fgssl.errors import ConfigError, DataLayoutError

__all__ = [
    "SplitTables",
    "assemble_splits",
    "check_fractions",
    "grouped_stratified_split",
    "label_subset",
    "require_distinct",
    "split_off",
    "stratified_split",
]

SplitTables = dict[str, pd.DataFrame]
"""Split name -> table with columns ``id``, ``path`` and ``label`` (-1 when unlabelled)."""

GROUP = "_group"
"""The column of the drawn rows' groups (:func:`_mark_groups`)."""

log = logging.getLogger(__name__)


def check_fractions(val_fraction: float | None, test_fraction: float) -> None:
    """Raise :class:`ConfigError` unless the fractions are in range and leave training data."""
    val = 0.0 if val_fraction is None else val_fraction
    if (
        (val_fraction is not None and not 0 < val_fraction < 1)
        or not 0 <= test_fraction < 1
        or val + test_fraction >= 1
    ):
        raise ConfigError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) "
            "and leave images for training"
        )


def assemble_splits(
    train: pd.DataFrame,
    *,
    val: pd.DataFrame | None = None,
    test: pd.DataFrame | None = None,
    val_fraction: float | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
    group_column: str | None = None,
    group_name: str = "group",
    default_val_fraction: float = 0.2,
    keep_identical: bool = False,
    unique_ids: bool = True,
    fold: tuple[int, int] | None = None,
) -> dict[str, pd.DataFrame]:
    """The train / val / test tables from the labelled ``train`` table and any given
    ``val`` and ``test`` tables (e.g. a dataset's official ones).

    - ``test_fraction > 0``: that share of ``train`` is held out as the test split (``test``
      is then not used); otherwise ``test`` is the test split, or, without one, the
      validation split (the protocol of datasets whose test labels are not public).
    - ``val_fraction`` (a share of the whole of ``train``) is split off for validation when
      it is given or when there is no ``val`` (then ``default_val_fraction``).
    - ``group_column``: rows sharing its value (a lesion, a patient) stay on one side; a
      blank value is a group of its own (:func:`_mark_groups`; ``group_name`` names the
      column in messages). The share each drawn split got is logged (:func:`_hold_out`).
    - ``fold`` (index, number of folds): the validation split is that fold of what the test
      split left (:func:`_fold_split`), in place of ``val`` and ``val_fraction``.
    - ``keep_identical``: byte-identical image files of ``train`` stay on one side too.
    - An image listed in two of the tables is refused (:func:`require_distinct`; by
      ``path``, and by ``id`` unless ``unique_ids`` is False).
    """
    check_fractions(val_fraction, test_fraction)
    used = {  # the given tables the splits will use
        "train": train,
        "val": val if val_fraction is None and fold is None else None,
        "test": test if test_fraction == 0 else None,
    }
    require_distinct(used, ids=unique_ids)
    draws = test_fraction > 0 or val_fraction is not None or val is None or fold is not None
    rest = _mark_identical(train) if keep_identical and draws else train
    if group_column is not None and draws:
        rest = _mark_groups(rest, group_column, group_name)
    by = group_name if group_column else None
    hold_out = functools.partial(_hold_out, seed=seed, total=len(train), group_name=by)
    replaced = "%s=%s: the %s split is held out of the training images"
    if test_fraction > 0:
        if test is not None:
            log.info(replaced, "test_fraction", test_fraction, "test")
        rest, test = hold_out(rest, "test", test_fraction, test_fraction)
    if fold is not None:
        rest, val = _fold_split(rest, fold, seed, by, val=val, val_fraction=val_fraction, test=test)
    elif val_fraction is not None or val is None:
        if val is not None:
            log.info(replaced, "val_fraction", val_fraction, "validation")
        asked = val_fraction or default_val_fraction
        rest, val = hold_out(rest, "validation", asked, asked / (1.0 - test_fraction))
    splits = {"train": rest, "val": val, "test": val if test is None else test}
    return {name: _unmarked(table) for name, table in splits.items()}


def _unmarked(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without the marks of the draws (:data:`GROUP`, ``_same``), renumbered."""
    return table.drop(columns=["_same", GROUP], errors="ignore").reset_index(drop=True)


def _log_fold_replaces(
    fold: int, *, val: pd.DataFrame | None, val_fraction: float | None, test: pd.DataFrame | None
) -> None:
    """Say what the validation fold replaces, and warn when the test split will be it."""
    replaced = [
        *(["the given validation set"] if val is not None else []),
        *([f"data.val_fraction={val_fraction}"] if val_fraction is not None else []),
    ]
    if replaced:
        log.info(
            "data.fold=%d: the validation split is the fold (%s not used)",
            fold,
            " and ".join(replaced),
        )
    if test is None:
        log.warning(
            "data.fold=%d: there is no test split, so the test split is the validation fold, "
            "another in every fold: set data.test_fraction to hold out one test split shared "
            "by the folds (the fold ensemble of a fold sweep's report is scored on it)",
            fold,
        )


def _fold_split(
    table: pd.DataFrame,
    fold_and_folds: tuple[int, int],
    seed: int,
    group_name: str | None,
    **replaced: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, val) of ``table`` (what the test split left of the training images): the rows
    outside and inside the fold of the partition :func:`fold_of_rows` draws (seeded; groups
    and ``_same`` keys kept in one fold, so it does not depend on the fold asked); the fold
    sizes are logged, with what the fold replaces (``replaced``: ``val``, ``val_fraction``,
    ``test``). :class:`DataLayoutError` when the rows cannot make that many folds."""
    fold, folds = fold_and_folds
    _log_fold_replaces(fold, **replaced)
    by = f" by {group_name}" if group_name else ""
    try:
        assignment = fold_of_rows(
            table["label"].tolist(),
            folds,
            seed=seed,
            groups=table[GROUP].tolist() if GROUP in table else None,
            same=table["_same"].tolist() if "_same" in table else None,
        )
    except ValueError as error:
        raise DataLayoutError(
            f"data.folds={folds}: cannot draw {folds} folds of {len(table)} training "
            f"images{by}: {error}"
        ) from error
    sizes = np.bincount(assignment, minlength=folds)
    log.info(
        "fold %d of %d is the validation split: %d of %d images (%.1f %%)%s; the folds hold %s",
        fold,
        folds,
        sizes[fold],
        len(table),
        100 * sizes[fold] / len(table),
        by,
        sizes.tolist(),
    )
    inside = assignment == fold
    return table[~inside], table[inside]


def _mark_identical(train: pd.DataFrame) -> pd.DataFrame:
    """``train`` with a ``_same`` column: the content key of each image file that has a
    byte-identical twin, else None (:func:`fgssl.data.duplicates.content_keys`)."""
    keys = content_keys(train["path"].astype(str).tolist())
    shared = sum(k is not None for k in keys)
    if shared:
        log.info(
            "%d training image files have a byte-identical twin: the splits drawn from "
            "them keep identical files on one side",
            shared,
        )
    return train.assign(_same=pd.Series(keys, index=train.index, dtype=object))


def _mark_groups(train: pd.DataFrame, column: str, name: str) -> pd.DataFrame:
    """``train`` with a :data:`GROUP` column: each row's ``column`` value (stripped), or,
    for a blank one (empty, spaces only, missing), a group of the row's own: images
    without a lesion or patient id are not one big group. Their count is warned about."""
    values = train[column]
    blank = values.isna() | values.astype(str).str.strip().eq("")
    if blank.any():
        log.warning(
            "%d of %d training images have no %s: each is a group of its own in the splits "
            "drawn from them",
            int(blank.sum()),
            len(train),
            name,
        )
    own = pd.Series([f"\0{row}" for row in range(len(train))], index=train.index)
    return train.assign(**{GROUP: values.astype(str).str.strip().where(~blank, own)})


def _hold_out(
    table: pd.DataFrame,
    what: str,
    asked: float,
    share: float,
    *,
    seed: int,
    total: int,
    group_name: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held) rows of ``table``: :func:`split_off` of its labels holding out ``share``
    of them, i.e. ``asked`` of the ``total`` training images (``table`` is what the test
    split left of them), rows of a group (:data:`GROUP`) or a ``_same`` key
    (:func:`_mark_identical`) on one side.

    Logs the share obtained (and warns when it is off by more than a quarter of ``asked``:
    the groups are too large for it); :class:`DataLayoutError` when nothing can be held out.
    """
    by = f" by {group_name}" if group_name else ""
    try:
        kept, held = split_off(
            table["label"].tolist(),
            share,
            seed=seed,
            groups=table[GROUP].tolist() if GROUP in table else None,
            same=table["_same"].tolist() if "_same" in table else None,
        )
    except ValueError as error:
        raise DataLayoutError(
            f"cannot hold out the {what} split ({asked:.0%} of {total} training images{by}): "
            f"{error}"
        ) from error
    obtained = len(held) / total
    level = logging.WARNING if abs(obtained - asked) > asked / 4 else logging.INFO
    log.log(
        level,
        "%s split: held out %d of %d images (%.1f %%, asked %.4g %%)%s",
        what,
        len(held),
        total,
        100 * obtained,
        100 * asked,
        by,
    )
    absent = sorted(set(table["label"]) - set(table["label"].iloc[held]))
    if absent:
        log.warning(
            "%s split: no image of the class(es) of label %s (too few images%s of them)",
            what,
            [int(label) for label in absent],
            " or groups" if group_name else "",
        )
    return table.iloc[kept], table.iloc[held]
