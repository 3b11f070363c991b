"""Seeded draws of row indices: stratified, grouped (no group on both sides), rows that must
stay together, and the labelled subset of a label-efficiency experiment."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from fgssl.data.group_draw import draw_groups

__all__ = ["grouped_stratified_split", "label_subset", "split_off", "stratified_split"]

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
    has members on both sides, holding out as near ``fraction`` of the images as the group
    sizes allow, with the label distributions as alike as the groups allow
    (:func:`fgssl.data.group_draw.draw_groups`).

    Groups of one image each are :func:`stratified_split`, exactly. Raises ValueError with
    fewer than two groups.
    """
    _check_fraction(fraction)
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels but {len(groups)} groups")
    names, row_group = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    if len(names) == len(labels):
        return stratified_split(labels, fraction, seed=seed)
    classes, row_class = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.zeros((len(names), len(classes)), dtype=np.int64)
    np.add.at(counts, (row_group, row_class), 1)
    held = draw_groups(counts, fraction, seed=seed)[row_group]
    return np.flatnonzero(~held), np.flatnonzero(held)


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
