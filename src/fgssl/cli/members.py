"""The checkpoints fgssl-eval and fgssl-predict run: one, or several averaged as an ensemble
(:mod:`fgssl.evaluation.ensemble`), with the precision and test-time augmentation they run
in, refused in one line before any image is read when they cannot be averaged."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgssl.atomic import write_text_atomically
from fgssl.cli.common import resolve_precision, resolve_tta
from fgssl.evaluation.checkpoints import LoadedRun
from fgssl.evaluation.ensemble import (
    check_preprocessing,
    column_orders,
    common_setting,
    ensemble_facts,
)
from fgssl.models.base import StagedNet
from fgssl.ops.tta import describe_views
from fgssl.run.loading import expand_sweeps, load_run

__all__ = ["Members", "load_members"]


@dataclass
class Members:
    """The loaded checkpoints, in the order given, and the settings they all run in."""

    loaded: list[LoadedRun]
    precision: str
    views: tuple[str, ...]

    @property
    def first(self) -> LoadedRun:
        return self.loaded[0]

    @property
    def is_ensemble(self) -> bool:
        return len(self.loaded) > 1

    @property
    def nets(self) -> list[StagedNet]:
        return [member.module.net for member in self.loaded]

    def columns(self, class_names: Sequence[str]) -> list[list[int]] | None:
        """Each member's output column of each of ``class_names`` (the first member's, for
        fgssl-predict), matched by name; None for a single checkpoint (its own order)."""
        if not self.is_ensemble:
            return None
        where = f"ensemble's first member {str(self.first.checkpoint)!r}"
        return column_orders(self.loaded, class_names, data=where)

    def describe(self) -> str:
        """The members and settings in a few lines, for the console."""
        lines = [f"ensemble of {len(self.loaded)} checkpoints (mean of their probabilities):"]
        lines += [f"  {member.checkpoint}" for member in self.loaded]
        lines.append(f"test-time augmentation: {describe_views(self.views)}")
        return "\n".join(lines)

    def write_facts(self, path: Path, **more: Any) -> Path:
        """The ensemble's members and settings as JSON at ``path`` (beside a predictions
        file, which cannot name them in its rows)."""
        facts = {
            **ensemble_facts(self.loaded),
            "tta": list(self.views) or None,
            "precision": self.precision,
            **more,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_text_atomically(path, json.dumps(facts, indent=2) + "\n")


def load_members(paths: Sequence[str], args: argparse.Namespace, prog: str) -> Members:
    """Load every checkpoint of ``paths`` (run directories, .ckpt files, sweep directories:
    :func:`fgssl.run.loading.expand_sweeps`) with ``args.config`` and
    ``args.trust_checkpoint``; refuse pretrain checkpoints and, for an ensemble, members
    whose classes (:meth:`Members.columns`, by name) or preprocessing
    (:func:`check_preprocessing`) disagree. The precision is ``args.precision``, else the
    runs' own (which must agree); the views are :func:`resolve_tta`'s."""
    loaded = [
        load_run(path, config=args.config, trusted=args.trust_checkpoint)
        for path in expand_sweeps(paths)
    ]
    for member in loaded:
        member.require_classifier()
    if len(loaded) > 1:
        check_preprocessing(loaded)
    configs = [member.config for member in loaded]
    precision = common_setting(
        [resolve_precision(args.precision, config, prog) for config in configs],
        what="precisions (trainer.precision)",
        option="--precision",
    )
    members = Members(loaded, precision, resolve_tta(args, configs))
    if members.is_ensemble:
        members.columns(members.first.class_names)  # refuse other classes before any image
    return members
