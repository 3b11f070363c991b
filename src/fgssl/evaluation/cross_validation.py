"""The numbers of k-fold cross-validation from the folds' per-image predictions
(:mod:`.prediction_table`): the **out-of-fold** predictions (every fold's validation
predictions joined, each training image exactly once) and the **fold ensemble** (the mean of
the folds' class probabilities on their shared test split, image by image), each scored with
every metric and its bootstrap interval (:func:`score_predictions`).

Classes are matched by name: a table whose classes are the first one's in another order is
reordered; other classes are refused. Every refusal is a :class:`DataLayoutError` naming the
files and what differs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fgssl.errors import DataLayoutError
from fgssl.metrics import compute_scores
from fgssl.undefined import undefined_to_null

from .bootstrap import BootstrapSettings
from .prediction_table import ScoredTable
from .reporting import paper_report

__all__ = ["fold_ensemble", "out_of_fold", "score_predictions"]

log = logging.getLogger(__name__)


def _in_class_order(table: ScoredTable, class_names: Sequence[str]) -> np.ndarray:
    """For each of ``class_names``, ``table``'s column of it (matched by name); refused
    (:class:`DataLayoutError`) when the table's classes are others."""
    if sorted(table.class_names) != sorted(class_names):
        raise DataLayoutError(
            f"the classes of {str(table.path)!r} {table.class_names} are not those of the "
            f"other folds {list(class_names)}: classes are matched by name"
        )
    return np.array([table.class_names.index(name) for name in class_names])


def _aligned(table: ScoredTable, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of ``table`` in the class order ``class_names``."""
    order = _in_class_order(table, class_names)
    remap = np.argsort(order)  # the table's class index -> its index in class_names
    return remap[table.labels], table.probabilities[:, order]


def out_of_fold(tables: Sequence[ScoredTable], pool: Sequence[str] | None = None) -> ScoredTable:
    """The validation predictions of every fold (``tables``, in fold order) joined into one
    table, in the first table's class order.

    ``pool``: the ids of the images the folds partition (the training images, train and
    validation splits of any fold); each must be scored exactly once. Raises
    :class:`DataLayoutError` for an image in two folds' tables, and (with ``pool``) for a
    pool image no fold scored or a scored image not in the pool."""
    if not tables:
        raise DataLayoutError("no fold's validation predictions to join")
    class_names = tables[0].class_names
    seen: dict[str, Path] = {}
    ids, labels, probabilities = [], [], []
    for table in tables:
        twice = [i for i in table.ids if i in seen]
        if twice:
            raise DataLayoutError(
                f"{len(twice)} image(s) are validation images of two folds, e.g. {twice[0]!r} "
                f"in {str(seen[twice[0]])!r} and {str(table.path)!r}: the folds do not "
                "partition the training images (were they drawn with different seeds or data?)"
            )
        seen.update(dict.fromkeys(table.ids, table.path))
        table_labels, table_probabilities = _aligned(table, class_names)
        ids += table.ids
        labels.append(table_labels)
        probabilities.append(table_probabilities)
    if pool is not None:
        missing, extra = sorted(set(pool) - set(ids)), sorted(set(ids) - set(pool))
        if missing or extra:
            raise DataLayoutError(
                f"the folds' validation predictions do not score each of the {len(set(pool))} "
                f"training images once: {len(missing)} never scored (e.g. {missing[:3]}), "
                f"{len(extra)} not training images (e.g. {extra[:3]})"
            )
    return ScoredTable(
        tables[0].path.parent,
        ids,
        np.concatenate(labels),
        np.concatenate(probabilities),
        class_names,
    )


def fold_ensemble(tables: Sequence[ScoredTable]) -> ScoredTable:
    """The mean of the folds' class probabilities on their test split (``tables``: each
    fold's test predictions), image by image (matched by id; the rows in the first table's
    order, the classes in its order). Raises :class:`DataLayoutError` when the tables hold
    other images (the folds' test splits differ) or label an image differently."""
    if not tables:
        raise DataLayoutError("no fold's test predictions to average")
    first = tables[0]
    position = {image: row for row, image in enumerate(first.ids)}
    total = np.zeros_like(first.probabilities)
    for table in tables:
        if set(table.ids) != set(first.ids):
            only = sorted(set(table.ids) ^ set(first.ids))
            raise DataLayoutError(
                f"the folds' test splits differ: {str(first.path)!r} and {str(table.path)!r} "
                f"do not hold the same {len(first.ids)} images ({len(only)} in one only, e.g. "
                f"{only[:3]}); a fold ensemble needs one test split shared by the folds "
                "(data.test_fraction, or the dataset's official test set)"
            )
        rows = np.array([position[image] for image in table.ids])
        labels, probabilities = _aligned(table, first.class_names)
        if (labels != first.labels[rows]).any():
            wrong = table.ids[int(np.flatnonzero(labels != first.labels[rows])[0])]
            raise DataLayoutError(
                f"{str(table.path)!r} labels image {wrong!r} otherwise than {str(first.path)!r}"
            )
        total[rows] += probabilities
    return ScoredTable(
        first.path.parent, list(first.ids), first.labels, total / len(tables), first.class_names
    )


def score_predictions(
    table: ScoredTable,
    *,
    ordinal: bool,
    settings: BootstrapSettings | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Every metric of :func:`fgssl.metrics.compute_scores` of ``table``'s probabilities
    (``metrics``, null where undefined, the reasons in ``undefined``), with
    :func:`fgssl.evaluation.reporting.paper_report`'s ``intervals`` (under ``split``),
    ``calibration`` and (graded DR) ``screening`` of them as the head ``combined``."""
    scores = compute_scores(
        table.probabilities, table.labels, ordinal=ordinal, class_names=table.class_names
    )
    report = paper_report(
        {"combined": table.probabilities},
        table.labels,
        ordinal=ordinal,
        class_names=table.class_names,
        settings=settings,
        split=split,
    )
    result: dict[str, Any] = undefined_to_null(
        {"images": len(table.ids), "metrics": dict(scores.values), **report}
    )
    if scores.undefined:
        result["undefined"] = dict(scores.undefined)
    return result
