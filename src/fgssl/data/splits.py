"""Seeded splits: stratified, grouped (no group on both sides), and label subsets."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from fgssl.errors import ConfigError

__all__ = [
    "assemble_splits",
    "check_fractions",
    "grouped_stratified_split",
    "label_subset",
    "split_off",
    "stratified_split",
]

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
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`grouped_stratified_split` when ``groups`` are given, else
    :func:`stratified_split`."""
    if groups is None:
        return stratified_split(labels, fraction, seed=seed)
    return grouped_stratified_split(labels, groups, fraction, seed=seed)


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
) -> dict[str, pd.DataFrame]:
    """The train / val / test tables from the labelled ``train`` table and any given
    ``val`` and ``test`` tables (e.g. a dataset's official ones).

    - ``test_fraction > 0``: that share of ``train`` is held out as the test split (``test``
      is then not used); otherwise ``test`` is the test split, or, without one, the
      validation split (the protocol of datasets whose test labels are not public).
    - ``val_fraction`` (a share of the whole of ``train``) is split off for validation when
      it is given or when there is no ``val`` (then ``default_val_fraction``).
    - ``group_column``: rows sharing its value (a lesion, a patient) stay on one side.
    """
    check_fractions(val_fraction, test_fraction)
    groups = (lambda t: t[group_column].tolist()) if group_column else (lambda t: None)
    rest = train
    if test_fraction > 0:
        if test is not None:
            log.info(
                "test_fraction=%s: the test split is held out of the training images", test_fraction
            )
        kept, held = split_off(
            rest["label"].tolist(), test_fraction, seed=seed, groups=groups(rest)
        )
        rest, test = rest.iloc[kept], rest.iloc[held]
    if val_fraction is not None or val is None:
        if val is not None:
            log.info(
                "val_fraction=%s: the validation split is held out of the training images",
                val_fraction,
            )
        share = (val_fraction or default_val_fraction) / (1.0 - test_fraction)
        kept, held = split_off(rest["label"].tolist(), share, seed=seed, groups=groups(rest))
        rest, val = rest.iloc[kept], rest.iloc[held]
    splits = {"train": rest, "val": val, "test": val if test is None else test}
    return {name: table.reset_index(drop=True) for name, table in splits.items()}
