"""A class is a name, not a position: matching a checkpoint's classes to those of the data it
scores, by name.

A checkpoint records its class names (``FGSSLModule(class_names=...)``, which fgssl-train
always passes) in the order of its output columns. Data whose classes are the same set in
another order (folders of another site, sorted differently) is scored with the checkpoint's
columns reordered into the data's label order; data with other classes is refused, naming
both lists. A checkpoint that records no names cannot be matched by name, and is refused
wherever labels are scored (its outputs are then only named by index).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fgssl.errors import ConfigError
from fgssl.evaluation.inference import HEADS

__all__ = ["ClassMatch", "match_classes", "output_class_names"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassMatch:
    """How a checkpoint's output columns line up with the data's classes."""

    data_names: list[str]
    """The data's classes, in its label order: the order the scores are reported in."""
    checkpoint_names: list[str]
    """The checkpoint's classes, in the order of its output columns."""
    order: list[int]
    """``order[i]``: the checkpoint's column of the data's class ``i``."""

    @property
    def reordered(self) -> bool:
        """Whether the checkpoint's columns are in another order than the data's labels."""
        return self.order != list(range(len(self.order)))

    def to_data_order(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``outputs`` of :func:`fgssl.evaluation.inference.predict_probabilities` with the
        (N, C) probabilities of every head reordered into the data's classes; other entries
        (``label``, ``index``) unchanged."""
        index = torch.tensor(self.order, dtype=torch.long)
        return {
            key: value.index_select(1, index) if key in HEADS else value
            for key, value in outputs.items()
        }


def match_classes(
    checkpoint_names: Sequence[str] | None,
    data_names: Sequence[str],
    *,
    checkpoint: str,
    data: str = "data",
) -> ClassMatch:
    """Match the classes of ``checkpoint`` (its path, for messages) to ``data``'s by name.

    Args:
        checkpoint_names: the checkpoint's class names in output order; None when it
            records none.
        data_names: the data's class names in label order.
        data: what the data is, for messages (e.g. ``"the 'test' split of FolderDataModule"``).

    Returns the :class:`ClassMatch`; a reordering is logged as a warning naming both orders.

    Raises:
        ConfigError: the checkpoint records no names, a name is listed twice, or the two
            sets of names differ (both lists named).
    """
    data_list = [str(name) for name in data_names]
    if checkpoint_names is None:
        raise ConfigError(
            f"{checkpoint!r} records no class names, so its classes cannot be matched by name "
            f"to those of the {data} {data_list}: checkpoints of fgssl-train record them; a "
            "module built in code needs FGSSLModule(class_names=[...])"
        )
    ours = [str(name) for name in checkpoint_names]
    for names, whose in ((ours, f"checkpoint {checkpoint!r}"), (data_list, data)):
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ConfigError(
                f"the {whose} lists class name(s) {twice} more than once ({names}): classes "
                "are matched by name, so each name must be unique"
            )
    if set(ours) != set(data_list):
        raise ConfigError(
            f"the classes of the {data} {data_list} are not those of the checkpoint "
            f"{checkpoint!r} {ours} (only in the data: {sorted(set(data_list) - set(ours))}, "
            f"only in the checkpoint: {sorted(set(ours) - set(data_list))}): classes are "
            "matched by name, so the data must name the classes the checkpoint was trained on"
        )
    match = ClassMatch(data_list, ours, [ours.index(name) for name in data_list])
    if match.reordered:
        log.warning(
            "the %s lists the checkpoint's classes in another order: %s, the checkpoint %s; "
            "its outputs are matched to the data by name and reported in the data's order",
            data,
            data_list,
            ours,
        )
    return match


def output_class_names(checkpoint_names: Sequence[str] | None, num_classes: int) -> list[str]:
    """The names of a checkpoint's output columns: its class names, or (with a warning)
    their indices ``"0"``, ``"1"``, ... when it records none."""
    if checkpoint_names:
        return [str(name) for name in checkpoint_names]
    log.warning(
        "the checkpoint records no class names: its %d output columns are named by index "
        "(0..%d); checkpoints of fgssl-train record their class names",
        num_classes,
        num_classes - 1,
    )
    return [str(c) for c in range(num_classes)]
