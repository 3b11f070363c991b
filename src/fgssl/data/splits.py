"""Seeded, stratified splits."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

__all__ = ["stratified_split"]

log = logging.getLogger(__name__)


def stratified_split(
    labels: Sequence[int], fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with ``fraction`` held out, stratified by label.

    Falls back to a plain random split (with a warning) when a class is too small to be
    present on both sides.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split fraction must be in (0, 1), got {fraction}")
    indices = np.arange(len(labels))
    try:
        kept, held_out = train_test_split(
            indices, test_size=fraction, random_state=seed, stratify=np.asarray(labels)
        )
    except ValueError as error:
        log.warning("stratified split impossible (%s); using a random split", error)
        kept, held_out = train_test_split(indices, test_size=fraction, random_state=seed)
    return np.sort(kept), np.sort(held_out)
