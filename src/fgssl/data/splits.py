"""The train / val / test tables of a dataset from its given tables and held-out fractions
(:func:`assemble_splits`); the seeded draws themselves are :mod:`fgssl.data.draws`."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence

import pandas as pd

from fgssl.data.draws import grouped_stratified_split, label_subset, split_off, stratified_split
from fgssl.data.duplicates import content_keys
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

SHOWN = 5

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


def require_distinct(tables: Mapping[str, pd.DataFrame | None], *, ids: bool = True) -> None:
    """Raise :class:`DataLayoutError` when an image file is listed more than once among
    ``tables`` (by its ``path``, normalised), or, with ``ids``, when an ``id`` is listed in
    two of them (e.g. in both the official training and validation ground truth). The
    message names the first few and their count.

    A table that lists exactly the paths of an earlier one (the same CSV given as
    validation and test set) is that table again, not a second listing.
    ``ids=False`` where ids are relative to each split's folder (the folder layout).
    """
    present: dict[str, pd.DataFrame] = {}
    for name, table in tables.items():
        if table is None or any(
            table["path"].tolist() == t["path"].tolist() for t in present.values()
        ):
            continue
        present[name] = table
    checks = [("image file(s)", "path", lambda v: os.path.normpath(os.path.abspath(v)))]
    if ids:
        checks.insert(0, ("id(s)", "id", str))
    for what, column, normalise in checks:
        where: dict[str, list[str]] = {}
        for name, table in present.items():
            for value in table[column]:
                where.setdefault(normalise(value), []).append(name)
        repeated = {v: names for v, names in where.items() if len(names) > 1}
        if column == "id":  # ids repeated within one table are the readers' to refuse
            repeated = {v: names for v, names in repeated.items() if len(set(names)) > 1}
        if repeated:
            examples = ", ".join(
                f"{v!r} ({_listings(names)})" for v, names in list(repeated.items())[:SHOWN]
            )
            raise DataLayoutError(
                f"{len(repeated)} {what} are listed more than once, e.g. {examples}: an image "
                "must be listed once, in one split"
            )


def _listings(names: Sequence[str]) -> str:
    """Where a value is listed: "train and val", "train 2 times"."""
    counts = Counter(names)
    return " and ".join(n if k == 1 else f"{n} {k} times" for n, k in counts.items())


def assemble_splits(
    train: pd.DataFrame,
    *,
    val: pd.DataFrame | None = None,
    test: pd.DataFrame | None = None,
    val_fraction: float | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
    group_column: str | None = None,
    default_val_fraction: float = 0.2,
    keep_identical: bool = False,
    unique_ids: bool = True,
) -> dict[str, pd.DataFrame]:
    """The train / val / test tables from the labelled ``train`` table and any given
    ``val`` and ``test`` tables (e.g. a dataset's official ones).

    - ``test_fraction > 0``: that share of ``train`` is held out as the test split (``test``
      is then not used); otherwise ``test`` is the test split, or, without one, the
      validation split (the protocol of datasets whose test labels are not public).
    - ``val_fraction`` (a share of the whole of ``train``) is split off for validation when
      it is given or when there is no ``val`` (then ``default_val_fraction``).
    - ``group_column``: rows sharing its value (a lesion, a patient) stay on one side.
    - ``keep_identical``: byte-identical image files of ``train`` stay on one side too.
    - An image listed in two of the tables is refused (:func:`require_distinct`; by
      ``path``, and by ``id`` unless ``unique_ids`` is False).
    """
    check_fractions(val_fraction, test_fraction)
    used = {  # the given tables the splits will use
        "train": train,
        "val": val if val_fraction is None else None,
        "test": test if test_fraction == 0 else None,
    }
    require_distinct(used, ids=unique_ids)
    draws = test_fraction > 0 or val_fraction is not None or val is None
    rest = _mark_identical(train) if keep_identical and draws else train
    if test_fraction > 0:
        if test is not None:
            log.info(
                "test_fraction=%s: the test split is held out of the training images", test_fraction
            )
        rest, test = _hold_out(rest, test_fraction, seed=seed, group_column=group_column)
    if val_fraction is not None or val is None:
        if val is not None:
            log.info(
                "val_fraction=%s: the validation split is held out of the training images",
                val_fraction,
            )
        share = (val_fraction or default_val_fraction) / (1.0 - test_fraction)
        rest, val = _hold_out(rest, share, seed=seed, group_column=group_column)
    splits = {"train": rest, "val": val, "test": val if test is None else test}
    return {
        name: table.drop(columns="_same", errors="ignore").reset_index(drop=True)
        for name, table in splits.items()
    }


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


def _hold_out(
    table: pd.DataFrame, fraction: float, *, seed: int, group_column: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held) rows of ``table``: :func:`split_off` of its labels, rows sharing a
    ``group_column`` value or a ``_same`` key (:func:`_mark_identical`) on one side."""
    kept, held = split_off(
        table["label"].tolist(),
        fraction,
        seed=seed,
        groups=table[group_column].tolist() if group_column else None,
        same=table["_same"].tolist() if "_same" in table else None,
    )
    return table.iloc[kept], table.iloc[held]
