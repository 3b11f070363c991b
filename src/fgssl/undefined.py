"""Undefined metric values: NaN while computing, ``null`` in every output, and one warning
naming why (a metric is never replaced by 0 and never chosen as the best)."""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableSet
from typing import Any

from fgssl.metrics import Scores

__all__ = ["format_metric", "undefined_messages", "undefined_to_null"]


def undefined_messages(
    split: str, scores: Mapping[str, Scores], warned: MutableSet[str] | None = None
) -> list[str]:
    """Warnings about ``scores`` of one ``split`` (by key prefix, e.g. ``val/combined/``):
    one naming the classes absent from the targets, and one per undefined metric naming its
    keys and why. Topics already in ``warned`` are skipped, and new ones added to it (so a
    training run warns once per split and metric, not every epoch)."""
    warned = set() if warned is None else warned
    messages = []
    absent = next((s.absent for s in scores.values() if s.absent), [])
    if absent and "absent classes" not in warned:
        warned.add("absent classes")
        messages.append(
            f"the {split} split holds no image of {', '.join(absent)}: the recall and AUROC "
            "of such a class are undefined and left out of the macro averages (balanced_acc, "
            "recall, auroc)"
        )
    names = dict.fromkeys(name for s in scores.values() for name in s.undefined)
    for name in names:
        if name in warned:
            continue
        warned.add(name)
        reasons: dict[str, list[str]] = {}
        for prefix, score in scores.items():
            if name in score.undefined:
                reasons.setdefault(score.undefined[name], []).append(prefix + name)
        details = "; ".join(
            why if keys == [name] else f"{', '.join(keys)}: {why}" for why, keys in reasons.items()
        )
        messages.append(f"{name} is undefined (null) on the {split} split: {details}")
    return messages


def format_metric(value: float | None, width: int) -> str:
    """``value`` with 4 decimals, right-aligned in ``width`` characters; ``null`` when it is
    undefined (None or NaN)."""
    if value is None or math.isnan(value):
        return f"{'null':>{width}}"
    return f"{value:>{width}.4f}"


def undefined_to_null(tree: Any) -> Any:
    """A copy of a JSON-like ``tree`` with NaN and infinite floats replaced by None (``null``
    in JSON, which has no NaN)."""
    if isinstance(tree, Mapping):
        return {key: undefined_to_null(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [undefined_to_null(value) for value in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree
