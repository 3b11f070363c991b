"""The paths a user gives fgssl-train, made absolute against the directory the command was
started in, in one place.

With ``hydra.job.chdir=true`` Hydra changes the working directory to the run directory
before the run starts, so a relative ``data.root`` would be looked for there ("not a
folder" although it exists where the command was run). Resolving every user path against
the command's own directory first makes ``chdir`` irrelevant, and ``config.yaml`` records
where the inputs really were (``fgssl-eval``, ``fgssl-predict`` and ``resume=`` read it
from any directory). Paths that are relative to ``data.root`` by definition (``data.csv``,
``data.val_csv``, ``data.test_csv``, ``data.val_root``, ``data.test_root``) follow it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["USER_PATHS", "absolute_user_path", "resolve_user_paths"]

USER_PATHS: tuple[str, ...] = (
    "data.root",
    "data.cache_dir",
    "data.unlabelled",  # a path, or a list of paths and {path, column, root}
    "model.net.pretrained_weights",
    "pretrained_run",
    "init_from",
    "resume",
)
"""The config keys that hold paths relative to the working directory (unless absolute)."""


def resolve_user_paths(cfg: DictConfig, base: str | os.PathLike[str]) -> DictConfig:
    """Make every relative path of :data:`USER_PATHS` in ``cfg`` absolute against ``base``
    (the directory the command was started in), in place; returns ``cfg``.

    Absolute paths, ``~/...`` (expanded where it is read), nulls and missing keys are left
    as they are, interpolations too unless they resolve to a relative path.
    """
    for key in USER_PATHS:
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None:
            continue
        plain = (
            OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
        )
        resolved = absolute_user_path(key, plain, base)
        if resolved != plain:
            OmegaConf.update(cfg, key, resolved, merge=False, force_add=True)
    return cfg


def absolute_user_path(key: str, value: Any, base: str | os.PathLike[str]) -> Any:
    """``value`` of the config key ``key`` with its relative paths made absolute against
    ``base`` (``data.unlabelled``: each entry's path, and ``root`` of a mapping); values of
    other keys, and values that are not paths, unchanged."""
    if key not in USER_PATHS or value is None:
        return value
    if key == "data.unlabelled":
        return _unlabelled(value, base)
    return _absolute(value, base)


def _unlabelled(value: Any, base: str | os.PathLike[str]) -> Any:
    if isinstance(value, list | tuple):
        return [_unlabelled(entry, base) for entry in value]
    if isinstance(value, Mapping):
        return {k: _absolute(v, base) if k in ("path", "root") else v for k, v in value.items()}
    return _absolute(value, base)


def _absolute(value: Any, base: str | os.PathLike[str]) -> Any:
    if not isinstance(value, str) or not value or value == "???":
        return value
    if os.path.isabs(os.path.expanduser(value)):
        return value
    return str(Path(base) / value)
