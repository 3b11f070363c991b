"""Finding and loading what a run directory holds, for the commands that read finished runs:
its checkpoint of a phase, its ``config.yaml``, and the data module its config describes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.tables import read_csv_columns
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.checkpoints import LoadedRun, load_checkpoint
from fgssl.run.factory import build_datamodule
from fgssl.run.sweep_runs import job_dirs
from fgssl.rundir import CONFIG, PHASES, Phase, RunDir

__all__ = [
    "RUN_CHECKPOINTS",
    "build_eval_datamodule",
    "check_split_matches",
    "expand_sweeps",
    "find_run_dir",
    "load_run",
    "resolve_checkpoint",
]

RUN_CHECKPOINTS: dict[Phase, tuple[str, ...]] = {
    phase: tuple(path.as_posix() for path in RunDir(".").checkpoints(phase)) for phase in PHASES
}
"""Checkpoints of a run directory by phase (relative paths), in order of preference."""


def resolve_checkpoint(path: str | os.PathLike[str], *, phase: Phase = "finetune") -> Path:
    """``path`` itself if it is a file; for a run directory, its checkpoint of ``phase``.

    Raises :class:`CheckpointError` naming what was looked for.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    candidates = [path / name for name in RUN_CHECKPOINTS[phase]]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"{str(path)!r} is a folder without a {phase} checkpoint: expected a run directory "
        f"of fgssl-train holding {' or '.join(RUN_CHECKPOINTS[phase])}, or a .ckpt file"
    )


def expand_sweeps(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` with each sweep directory (a folder of Hydra job folders ``<n>/.hydra``
    that is no run itself) replaced by its jobs that hold a finetune checkpoint, in job
    order: the members of an ensemble. Raises :class:`CheckpointError` for a sweep without
    such a job, and for a checkpoint given twice (a run and its .ckpt too)."""
    expanded: list[Path] = []
    for path in map(lambda p: Path(p).expanduser(), paths):
        jobs = job_dirs(path) if path.is_dir() and not (path / CONFIG).is_file() else []
        if not jobs:
            expanded.append(path)
            continue
        checkpoints = RUN_CHECKPOINTS["finetune"]
        finished = [job for job in jobs if any((job / c).is_file() for c in checkpoints)]
        if not finished:
            raise CheckpointError(
                f"{str(path)!r} is a sweep directory without a finished job (no "
                f"{' or '.join(RUN_CHECKPOINTS['finetune'])} in its job folders)"
            )
        expanded += finished
    resolved = [resolve_checkpoint(p).resolve() for p in expanded]
    twice = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if twice:
        raise CheckpointError(
            f"checkpoint {twice[0]!r} is given twice: each member of an ensemble once"
        )
    return expanded


def find_run_dir(checkpoint: Path) -> Path | None:
    """The run directory (the folder with ``config.yaml``) above ``checkpoint``, if any."""
    for parent in list(checkpoint.resolve().parents)[:3]:
        if (parent / CONFIG).is_file():
            return parent
    return None


def load_run(
    path: str | os.PathLike[str],
    *,
    phase: Phase = "finetune",
    config: str | os.PathLike[str] | None = None,
    trusted: bool = False,
    random_init: bool = False,
) -> LoadedRun:
    """Load a checkpoint file or a run directory's checkpoint of ``phase``, with its config.

    ``config`` is a ``config.yaml`` to use instead of the one found in the run directory;
    ``random_init``: see :func:`load_checkpoint`.
    """
    checkpoint = resolve_checkpoint(path, phase=phase)
    module = load_checkpoint(checkpoint, trusted=trusted, random_init=random_init)
    run_dir = find_run_dir(checkpoint)
    config_path = Path(config).expanduser() if config else None
    if config_path is None and run_dir is not None:
        config_path = RunDir(run_dir).config
    loaded_config = None
    if config_path is not None:
        if not config_path.is_file():
            raise CheckpointError(f"config {str(config_path)!r} does not exist")
        try:
            node = OmegaConf.load(config_path)
        except Exception as error:  # YAML syntax errors come in several types
            raise CheckpointError(f"cannot read {str(config_path)!r} as YAML: {error}") from error
        if not isinstance(node, DictConfig):
            raise CheckpointError(f"{str(config_path)!r} is not a config mapping")
        loaded_config = node
    return LoadedRun(module, checkpoint, run_dir, loaded_config)


def build_eval_datamodule(
    config: DictConfig, overrides: Sequence[str] = ()
) -> ImageClassificationDataModule:
    """The data module of a run's ``config`` with ``KEY=VALUE`` overrides (e.g. ``data.root``).

    Only existing keys may be overridden.
    """
    cfg = config.copy()
    OmegaConf.set_struct(cfg, True)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. data.root=/data/aptos)")
    try:
        merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as error:
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(f"cannot apply overrides {list(overrides)}: {reason}") from error
    if not isinstance(merged, DictConfig) or "data" not in merged:
        raise ConfigError("the run config has no 'data' section: is it an fgssl-train config?")
    if merged.data.get("unlabelled") or merged.data.get("unlabelled_own"):
        # pretraining-only images: evaluation never reads them, and they need not be here
        with open_dict(merged.data):
            merged.data.unlabelled = []
            merged.data.unlabelled_own = False
    return build_datamodule(merged)


def check_split_matches(
    datamodule: ImageClassificationDataModule, split: str, split_csv: Path
) -> None:
    """Refuse to evaluate ``split`` if its images differ from those ``split.csv`` recorded.

    A split rebuilt from changed data (or another seed) could hold training images.
    """
    recorded = read_csv_columns(split_csv, ["id", "split"], "split file of the run")
    expected = set(recorded.loc[recorded["split"] == split, "id"])
    assert datamodule.splits is not None
    found = set(datamodule.splits[split]["id"].astype(str))
    if expected != found:
        missing, new = sorted(expected - found), sorted(found - expected)
        raise ConfigError(
            f"the {split!r} split rebuilt from the data ({len(found)} images) differs from the "
            f"one the run recorded in {str(split_csv)!r} ({len(expected)} images): "
            f"{len(missing)} missing now (e.g. {missing[:3]}), {len(new)} new (e.g. {new[:3]}); "
            "the data or data.seed changed since training. Pass --ignore-split-file to "
            "evaluate anyway."
        )
