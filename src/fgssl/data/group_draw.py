"""A seeded draw of whole groups (lesions, patients) holding out a share of the images,
stratified as the groups allow: :func:`draw_groups`.

scikit-learn's ``StratifiedGroupKFold`` holds out one fold, ``1/n`` of the images for a whole
``n``: asked 0.3 it held out a third, asked 0.4 a half. This draw aims at the share asked.
"""

from __future__ import annotations

import numpy as np

__all__ = ["draw_groups"]


def draw_groups(counts: np.ndarray, fraction: float, *, seed: int) -> np.ndarray:
    """Which groups to hold out: a boolean mask over the rows of ``counts``.

    Args:
        counts: (groups, classes) integer array, the images of each class in each group.
        fraction: the share of all images to hold out, in (0, 1).
        seed: seeds the order in which the groups are visited.

    The targets are ``fraction`` of each class's images (t_c) and of all images (T).
    1. Groups are visited in a seeded random order; one is held out when that brings the
       held-out class counts h nearer to the targets: sum_c (h_c - t_c)^2 decreases.
    2. While one group's move brings the held-out total nearer to T (adding one while below
       it, removing one while above it), the move that costs the class counts least is made
       (ties: the earliest in the visiting order).
    With groups of one image each, the held-out total is T rounded and each class is within
    about one image of t_c, as a stratified split. Raises ValueError with fewer than two
    groups; when no group alone is small enough (all held-out sets would miss T by more
    than holding out none), the one group nearest the targets is held out.
    """
    if len(counts) < 2:
        raise ValueError(f"only {len(counts)} group: nothing to hold out by group")
    counts = np.asarray(counts, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(counts))
    target = fraction * counts.sum(axis=0).astype(float)
    held = np.zeros(len(counts), dtype=bool)
    h = np.zeros(counts.shape[1])
    for group in order:
        c = counts[group]
        if float(c @ (2 * (h - target) + c)) < 0:
            held[group] = True
            h += c
    held = _approach_total(counts, held, target, order)
    if not held.any():
        sizes = counts.sum(axis=1)
        cost = (counts * (counts - 2 * target)).sum(axis=1)  # from h = 0
        nearest = min(order, key=lambda g: (cost[g], sizes[g]))
        held[nearest] = True
    if held.all():  # a guard: nothing would be left to train on
        raise ValueError("every group would be held out")
    return held


def _approach_total(
    counts: np.ndarray, held: np.ndarray, target: np.ndarray, order: np.ndarray
) -> np.ndarray:
    """``held`` after single group moves that bring the held-out total nearer to the
    target total, each the cheapest for the class counts (step 2 of :func:`draw_groups`)."""
    counts_in_order = counts[order]
    sizes = counts_in_order.sum(axis=1)
    held = held[order].copy()
    total = float(target.sum())
    for _ in range(len(order)):  # each move strictly nears the total: a bound, not a limit
        h = counts_in_order[held].sum(axis=0).astype(float)
        gap = total - h.sum()
        adding = gap > 0
        # a move of size s nears the total when 0 < s < 2 |gap|
        movable = (held != adding) & (sizes > 0) & (sizes < 2 * abs(gap))
        if not movable.any():
            break
        sign = 1.0 if adding else -1.0
        cost = (counts_in_order * (counts_in_order + sign * 2 * (h - target))).sum(axis=1)
        candidates = np.flatnonzero(movable)
        chosen = candidates[np.argmin(cost[candidates])]  # argmin: the first of equal costs
        held[chosen] = adding
    result = np.zeros(len(order), dtype=bool)
    result[order] = held
    return result
