"""The per-image prediction table, one format wherever predictions of a labelled split are
written and read back: ``fgssl-eval``'s ``predictions.csv``, a run's ``predictions/*.csv``,
a fold sweep's out-of-fold and ensemble predictions.

Columns: ``id``, ``label`` (class index in ``class_names``), ``prediction`` (the argmax) and
``prob_<class>`` for each class, in the class order; the classes are named by the columns,
so a table read back is matched to others by class name, never by position.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fgssl.errors import DataLayoutError

__all__ = ["PROB_PREFIX", "ScoredTable", "prediction_table", "read_prediction_table"]

PROB_PREFIX = "prob_"


def prediction_table(
    ids: Sequence[str], labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per image: ``id``, ``label``, ``prediction`` (argmax of the (N, C)
    ``probabilities``) and ``prob_<class>`` in the order of ``class_names``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(ids), len(class_names)) or len(labels) != len(ids):
        raise ValueError(
            f"{len(ids)} ids, {len(labels)} labels and probabilities of shape "
            f"{probabilities.shape} for {len(class_names)} classes"
        )
    return pd.DataFrame(
        {
            "id": [str(i) for i in ids],
            "label": np.asarray(labels, dtype=np.int64),
            "prediction": probabilities.argmax(axis=1) if len(ids) else np.zeros(0, np.int64),
            **{f"{PROB_PREFIX}{name}": probabilities[:, c] for c, name in enumerate(class_names)},
        }
    )


@dataclass(frozen=True)
class ScoredTable:
    """A prediction table read back: its rows' ids, labels and (N, C) probabilities, with the
    class names of its columns."""

    path: Path
    ids: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    class_names: list[str]


def read_prediction_table(path: str | os.PathLike[str]) -> ScoredTable:
    """Read a table of :func:`prediction_table`. Raises :class:`DataLayoutError` naming the
    file when it cannot be read, lacks a column, has no class column, lists an id twice or
    holds a label or a probability out of range."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise DataLayoutError(f"cannot read the predictions {str(path)!r}: {error}") from error
    classes = [c.removeprefix(PROB_PREFIX) for c in table.columns if c.startswith(PROB_PREFIX)]
    missing = [c for c in ("id", "label") if c not in table.columns]
    if missing or not classes:
        raise DataLayoutError(
            f"{str(path)!r} is not a prediction table: expected the columns id, label and "
            f"{PROB_PREFIX}<class>, found {list(table.columns)}"
        )
    twice = table["id"][table["id"].duplicated()].tolist()
    if twice:
        raise DataLayoutError(f"{str(path)!r} lists {len(twice)} id(s) twice, e.g. {twice[:3]}")
    try:
        labels = table["label"].to_numpy(dtype=np.int64)
        probabilities = table[[PROB_PREFIX + c for c in classes]].to_numpy(dtype=np.float64)
    except ValueError as error:
        raise DataLayoutError(
            f"{str(path)!r} holds a value that is not a number: {error}"
        ) from error
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataLayoutError(
            f"{str(path)!r}: labels must be class indices 0..{len(classes) - 1}, found "
            f"{labels.min()}..{labels.max()}"
        )
    if not np.isfinite(probabilities).all() or (probabilities < 0).any():
        raise DataLayoutError(f"{str(path)!r} holds probabilities that are negative or not finite")
    return ScoredTable(path, table["id"].tolist(), labels, probabilities, classes)
