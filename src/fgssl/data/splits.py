"""Seeded splits: stratified, grouped (no group on both sides), and label subsets."""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from fgssl.data.duplicates import content_keys
from fgssl.errors import ConfigError, DataLayoutError

__all__ = [
    "assemble_splits",
    "check_fractions",
    "grouped_stratified_split",
    "label_subset",
    "require_distinct",
    "split_off",
    "stratified_split",
]

SHOWN = 5

log = logging.getLogger(__name__)


def stratified_split(
    labels: Sequence[int], fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with ``fraction`` held out, stratified by label.

    Falls back to a plain random split (with a warning) when a class is too small to be
    present on both sides.
    """
    _check_fraction(fraction)
    indices = np.arange(len(labels))
    try:
        kept, held_out = train_test_split(
            indices, test_size=fraction, random_state=seed, stratify=np.asarray(labels)
        )
    except ValueError as error:
        log.warning("stratified split impossible (%s); using a random split", error)
        kept, held_out = train_test_split(indices, test_size=fraction, random_state=seed)
    return np.sort(kept), np.sort(held_out)


def grouped_stratified_split(
    labels: Sequence[int], groups: Sequence[str], fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) so that no group (e.g. a lesion or a patient)
    has members on both sides, with the label distributions as alike as the groups allow.

    The held-out share is the nearest ``1/n`` to ``fraction`` (one fold of scikit-learn's
    ``StratifiedGroupKFold`` with ``n`` folds): 0.2 -> 1/5, 0.15 -> 1/7.
    """
    _check_fraction(fraction)
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels but {len(groups)} groups")
    folds = max(2, round(1.0 / fraction))
    if len(set(groups)) < folds:
        raise ValueError(
            f"cannot hold out {fraction:.0%} by group: only {len(set(groups))} distinct groups"
        )
    indices = np.arange(len(labels))
    counts = np.unique(np.asarray(labels), return_counts=True)
    rare = [int(label) for label, count in zip(*counts, strict=True) if count < folds]
    if rare:
        log.warning(
            "class(es) %s have fewer than %d images: the held-out split may lack them", rare, folds
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        kept, held_out = next(splitter.split(indices, np.asarray(labels), np.asarray(groups)))
    return np.sort(kept), np.sort(held_out)


def split_off(
    labels: Sequence[int],
    fraction: float,
    *,
    seed: int,
    groups: Sequence[str] | None = None,
    same: Sequence[str | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`grouped_stratified_split` when ``groups`` are given, else
    :func:`stratified_split`.

    ``same``: a key per row (None: no key) that rows which must stay together share, e.g.
    byte-identical files (:func:`fgssl.data.duplicates.content_keys`). They are joined to
    the ``groups``; without groups, one representative of each set of rows is split
    (stratified by its label) and the others follow it. Without any shared key, the split
    is exactly the one without ``same``.
    """
    together = _join(groups, same)
    if together is None:
        if groups is None:
            return stratified_split(labels, fraction, seed=seed)
        return grouped_stratified_split(labels, groups, fraction, seed=seed)
    if groups is not None:
        return grouped_stratified_split(labels, together, fraction, seed=seed)
    first: dict[str, int] = {}
    representatives = [i for i, key in enumerate(together) if first.setdefault(key, i) == i]
    _, held = stratified_split([labels[i] for i in representatives], fraction, seed=seed)
    held_keys = {together[representatives[j]] for j in held}
    mask = np.array([key in held_keys for key in together], dtype=bool)
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _join(groups: Sequence[str] | None, same: Sequence[str | None] | None) -> list[str] | None:
    """A group label per row joining ``groups`` (default: one per row) with the rows that
    share a ``same`` key (union-find), or None when no two rows share a key."""
    if same is None:
        return None
    rows_of: dict[str, list[int]] = {}
    for row, key in enumerate(same):
        if key is not None:
            rows_of.setdefault(key, []).append(row)
    if all(len(rows) < 2 for rows in rows_of.values()):
        return None
    labels = list(groups) if groups is not None else [f"#{i}" for i in range(len(same))]
    parent = {label: label for label in labels}

    def root(label: str) -> str:
        while parent[label] != label:
            parent[label] = parent[parent[label]]
            label = parent[label]
        return label

    for rows in rows_of.values():
        for row in rows[1:]:
            parent[root(labels[row])] = root(labels[rows[0]])
    return [root(label) for label in labels]


def label_subset(labels: Sequence[int], fraction: float, *, seed: int) -> np.ndarray:
    """A boolean mask keeping a seeded ``fraction`` of every class (at least one image of
    each class present): the labelled subset of a label-efficiency experiment."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    labels_array = np.asarray(labels)
    keep = np.zeros(len(labels_array), dtype=bool)
    if fraction == 1.0:
        keep[:] = True
        return keep
    rng = np.random.default_rng(seed)
    for label in np.unique(labels_array):
        members = np.flatnonzero(labels_array == label)
        count = max(1, round(fraction * len(members)))
        keep[rng.choice(members, size=count, replace=False)] = True
    return keep


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split fraction must be in (0, 1), got {fraction}")


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
