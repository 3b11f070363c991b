"""Resuming a run: which phase to continue from which checkpoint, and the config it
continues with (its own, plus the command-line overrides that are safe to change)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from fgssl.errors import ConfigError
from fgssl.run.paths import absolute_user_path
from fgssl.rundir import RunDir

__all__ = [
    "RESUME_GROUPS",
    "RESUME_OVERRIDABLE",
    "ResumePoint",
    "check_resume_split",
    "find_resume_point",
    "resumed_config",
]

RESUME_OVERRIDABLE: tuple[str, ...] = (
    # where the inputs are (a moved dataset, image cache or weights file)
    "data.root",
    "data.csv",
    "data.val_csv",
    "data.test_csv",
    "data.val_root",
    "data.test_root",
    "data.cache_dir",
    "data.unlabelled",  # moved pools: check_resume_split refuses other images
    "model.net.pretrained_weights",
    # how long: only to extend the run (checked in resumed_config)
    "pretrain_epochs",
    "finetune_epochs",
    # where and how fast it runs (results equal up to floating-point rounding)
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.benchmark",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.verify_images",
    "perf",
    "optim.implementation",
    # what is logged and drawn
    "logger",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "figures",
    "ssl_monitor",
    "intervals",
)
"""Config keys (and the keys below them) that ``resume=<run dir>`` accepts overrides of;
any other override that changes the run's saved config is refused."""

RESUME_GROUPS: tuple[str, ...] = ("logger",)
"""Config groups that may be chosen anew on resume (besides Hydra's own ``hydra/...``)."""

_EPOCH_KEYS = ("pretrain_epochs", "finetune_epochs")
_ABSENT = object()


@dataclass(frozen=True)
class ResumePoint:
    """Checkpoints to continue from: ``finetune`` set means the pretrain phase is over."""

    pretrain: str | None = None
    finetune: str | None = None


def find_resume_point(run_dir: str | Path) -> ResumePoint:
    """The ``last.ckpt`` of each phase found in ``run_dir`` (see :mod:`fgssl.rundir`).

    A finished pretrain phase is continued too: its fit ends at once, restoring the weights
    the finetune phase starts from.
    """
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    pretrain = run.last_checkpoint("pretrain")
    finetune = run.last_checkpoint("finetune")
    if finetune.is_file():
        return ResumePoint(finetune=str(finetune))
    return ResumePoint(pretrain=str(pretrain) if pretrain.is_file() else None)


def resumed_config(
    run_dir: str | os.PathLike[str],
    overrides: Sequence[str],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    composed: DictConfig | None = None,
    choices: Mapping[str, Any] | None = None,
    started_in: str | os.PathLike[str] | None = None,
) -> DictConfig:
    """The config that ``fgssl-train resume=<run_dir> <overrides>`` continues with: the
    run's own ``config.yaml`` with the ``overrides`` (Hydra command-line syntax) applied.

    An override may set a key of :data:`RESUME_OVERRIDABLE` (epochs only upwards, and
    ``pretrain_epochs`` only while the pretrain phase is unfinished), choose a group of
    :data:`RESUME_GROUPS` (taken from ``composed``, the config Hydra composed from the
    command line) or anything of Hydra's own; an override that repeats the run's value or
    group choice (``choices``: Hydra's ``runtime.choices``, compared with the run's
    ``.hydra/hydra.yaml``) changes nothing and passes.

    Relative paths of the overrides (:data:`fgssl.run.paths.USER_PATHS`) are made absolute
    against ``started_in`` (the directory the command was started in; default: the working
    directory), as fgssl-train makes those of a new run.

    Raises :class:`ConfigError` naming every other override in one line, when ``run_dir``
    has no ``config.yaml``, and when ``output_dir`` (Hydra's output directory) is not
    ``run_dir``: a run continues in its own folder.
    """
    run_dir = Path(run_dir)
    saved = _saved_config(run_dir, output_dir)
    refused = _apply_overrides(
        saved, overrides, run_dir, composed=composed, choices=choices, started_in=started_in
    )
    if refused:
        raise ConfigError(
            f"resume={str(run_dir)!r} cannot change {'; '.join(refused)}: a resumed run keeps "
            "its config except paths, epochs (to extend), devices, workers, speed and logging "
            "options (docs/training.md, 'Interruption and resumption')"
        )
    with open_dict(saved):
        saved.resume = str(run_dir)
    return saved


def _saved_config(run_dir: Path, output_dir: str | os.PathLike[str] | None) -> DictConfig:
    """The run's ``config.yaml`` (moved ``_target_`` paths updated), after refusing a
    folder without one and an output directory other than the run's own."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise ConfigError(
            f"resume={str(run_dir)!r}: no config.yaml there, so it is not an fgssl run directory"
        )
    if output_dir is not None and Path(output_dir).resolve() != run_dir.resolve():
        raise ConfigError(
            f"resume={str(run_dir)!r} continues the run in its own directory, but the output "
            f"directory is {str(output_dir)!r}: leave out hydra.run.dir, and resume one run at "
            "a time (not in a -m sweep)"
        )
    saved = OmegaConf.load(path)
    assert isinstance(saved, DictConfig)
    _update_moved_targets(saved)
    return saved


def _apply_overrides(
    saved: DictConfig,
    overrides: Sequence[str],
    run_dir: Path,
    *,
    composed: DictConfig | None,
    choices: Mapping[str, Any] | None,
    started_in: str | os.PathLike[str] | None,
) -> list[str]:
    """Apply to ``saved`` the ``overrides`` a resumed run may take (see
    :func:`resumed_config`); returns the others, each with the reason it is refused."""
    saved_choices = _saved_choices(run_dir)
    finetune_started = find_resume_point(run_dir).finetune is not None
    refused = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "resume" or key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if choices is not None and key in choices:
            if key in saved_choices and saved_choices[key] == choices[key]:
                continue  # the run's own choice, repeated
            if key in RESUME_GROUPS and composed is not None:
                with open_dict(saved):
                    saved[key] = composed[key]
                continue
            groups = ", ".join(RESUME_GROUPS)
            refused.append(f"{override.input_line} (a config group; only {groups} may change)")
            continue
        reason = _apply(saved, override, finetune_started, started_in or os.getcwd())
        if reason:
            refused.append(f"{override.input_line} ({reason})")
    return refused


MOVED_TARGETS = {"fgssl.metrics_log.": "fgssl.run.metrics_log."}
"""Module paths that a run's saved ``config.yaml`` may name from before they moved (the run
package, issue 12): old prefix -> new prefix of ``_target_``."""


def _update_moved_targets(node: Any) -> None:
    """Rewrite every ``_target_`` of ``node`` that names a moved module, in place."""
    if isinstance(node, DictConfig):
        target = node.get("_target_")
        for old, new in MOVED_TARGETS.items():
            if isinstance(target, str) and target.startswith(old):
                node["_target_"] = new + target.removeprefix(old)
        for key in node:
            _update_moved_targets(node._get_node(key))
    elif isinstance(node, ListConfig):
        for item in node:
            _update_moved_targets(item)


def _apply(
    saved: DictConfig,
    override: Override,
    finetune_started: bool,
    started_in: str | os.PathLike[str],
) -> str | None:
    """Apply one key override to ``saved``; the reason it is refused, or None."""
    key = override.key_or_group
    current = OmegaConf.select(saved, key, default=_ABSENT)
    new = _ABSENT if override.is_delete() else override.value()
    if new is not _ABSENT:
        new = absolute_user_path(key, _plain(new), started_in)
    if _plain(current) == _plain(new):
        return None  # the run's own value, repeated
    if not any(key == allowed or key.startswith(allowed + ".") for allowed in RESUME_OVERRIDABLE):
        shown = "absent" if current is _ABSENT else repr(_plain(current))
        return f"the run has {shown}"
    if current is _ABSENT and not key.startswith("logger."):
        return "no such key in the run's config"
    if key in _EPOCH_KEYS:
        if not isinstance(new, int) or isinstance(new, bool) or new < int(current):
            return f"epochs can only be extended: the run has {current}"
        if key == "pretrain_epochs" and finetune_started:
            return "the pretrain phase is over: its epochs can no longer change"
    if new is _ABSENT:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(saved, parent) if parent else saved
        with open_dict(saved):
            del node[leaf]
    else:
        OmegaConf.update(saved, key, new, merge=False, force_add=True)
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _saved_choices(run_dir: Path) -> dict[str, Any]:
    """The config-group choices of the run's first launch (``.hydra/hydra.yaml``); empty
    when it was not launched by Hydra."""
    record = run_dir / ".hydra" / "hydra.yaml"
    if not record.is_file():
        return {}
    try:
        hydra_cfg = yaml.safe_load(record.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    choices = hydra_cfg.get("hydra", {}).get("runtime", {}).get("choices", {})
    return dict(choices) if isinstance(choices, dict) else {}


def check_resume_split(saved_split: str | os.PathLike[str], split: pd.DataFrame) -> None:
    """Refuse to continue a run on other images: ``split`` (the data module's
    ``split_table()``: id, label, split, ...) must list the ids, labels and splits of the
    run's ``split.csv`` (``saved_split``), for instance after ``data.root`` moved.

    Does nothing when ``saved_split`` does not exist.
    """
    saved_split = Path(saved_split)
    if not saved_split.is_file():
        return
    columns = ["id", "label", "split"]
    saved = pd.read_csv(saved_split, dtype=str, keep_default_na=False)
    if not set(columns) <= set(saved.columns) or not set(columns) <= set(split.columns):
        return  # a split.csv of another layout: nothing to compare
    # through CSV text, as split.csv was written, so that both sides read alike
    new = pd.read_csv(
        io.StringIO(split[columns].to_csv(index=False)), dtype=str, keep_default_na=False
    )
    old = saved[columns]
    if len(new) == len(old) and (new.to_numpy() == old.to_numpy()).all():
        return
    differ = set(map(tuple, new.to_numpy())) ^ set(map(tuple, old.to_numpy()))
    example = min(differ, default=None)
    raise ConfigError(
        f"the data of the resumed run does not give its split ({saved_split}): "
        f"{len(new)} images now, {len(old)} before, {len(differ)} (id, label, split) rows "
        f"differ, e.g. {example}; check data.root and the other data paths"
    )
