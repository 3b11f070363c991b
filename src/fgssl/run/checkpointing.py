"""Checkpoints that survive interruption: atomic writes, a consistent checkpoint at the end
of every epoch, and clear errors for checkpoints that do not fit the run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from fgssl.atomic import atomic_path
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.checkpoints import check_checkpoint_version

__all__ = [
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "RelocatableModelCheckpoint",
    "check_checkpoint_classes",
    "check_checkpoint_matches",
    "check_output_location",
    "every_epoch_checkpoint",
]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint through :func:`fgssl.atomic.atomic_path`: to a temporary file
    beside it, renamed into place, so that an interrupted write leaves the previous
    checkpoint intact, never a torn one."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            super().save_checkpoint(checkpoint, temporary, storage_options)


class RelocatableModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, whose state survives a moved or copied run directory.

    The state saved in a checkpoint holds absolute paths (``dirpath``, ``best_model_path``,
    the keys of ``best_k_models``). Lightning drops the best score when ``dirpath`` differs
    on load, and keeps pointing at the old folder's files; here every saved path inside
    the saved ``dirpath`` is moved to the same place inside this callback's ``dirpath``
    first, so that a resumed run keeps its best-score history and reads only its own
    folder. The state key is ModelCheckpoint's, so checkpoints written with Lightning's
    class load too.
    """

    @property
    def state_key(self) -> str:
        return "ModelCheckpoint" + super().state_key.removeprefix(type(self).__qualname__)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old, new = state_dict.get("dirpath"), self.dirpath
        if old and new and old != new:
            state_dict = _relocated(state_dict, Path(old), Path(new))
        super().load_state_dict(state_dict)


def _relocated(state: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    def move(path: Any) -> Any:
        if not isinstance(path, str) or not path or not Path(path).is_relative_to(old):
            return path
        return str(new / Path(path).relative_to(old))

    moved = {key: move(value) for key, value in state.items()}
    moved["dirpath"] = str(new)
    if isinstance(state.get("best_k_models"), Mapping):
        moved["best_k_models"] = {move(k): v for k, v in state["best_k_models"].items()}
    return moved


class BestCheckpoint(RelocatableModelCheckpoint):
    """Lightning's ModelCheckpoint, except that an epoch whose monitored value is NaN (an
    undefined metric) is never kept: Lightning's saves it, scored -inf (mode max) or +inf
    (min), while it holds fewer than ``save_top_k`` checkpoints, so the first epoch became
    the best with an undefined score. If no epoch has a defined value, no checkpoint is kept
    and ``best_model_path`` stays empty."""

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is not None:
            defined = not bool(torch.isnan(current))
            # all processes must agree (the values are synchronised, so they do)
            if not trainer.strategy.reduce_boolean_decision(defined, all=True):
                return False
        return super().check_monitor_top_k(trainer, current)


def every_epoch_checkpoint(path: str | os.PathLike[str]) -> ModelCheckpoint:
    """A checkpoint callback that rewrites ``path`` at the end of every epoch (after
    validation, when there is one).

    These end-of-epoch states are what ``resume=<run dir>`` continues from. Ctrl-C, SIGTERM
    or a crash during an epoch leave the previous epoch's checkpoint in place (the writes
    are atomic), and the resumed run redoes the interrupted epoch from its start. A
    mid-epoch state would not do: Lightning continues a data loader part-way through an
    epoch only if the loader keeps its own position (ours do not), and a Ctrl-C caught
    between its progress counters is restored as a finished epoch.
    """
    path = Path(path)
    return RelocatableModelCheckpoint(
        dirpath=path.parent,
        filename=path.stem,
        every_n_epochs=1,
        save_top_k=1,
        enable_version_counter=False,
    )


def check_output_location(run_dir: Path, *, bytes_needed: int = 0) -> None:
    """Fail early, and clearly, if ``run_dir`` cannot be written or lacks free space."""
    probe = run_dir / ".fgssl-write-test"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            f"cannot write to the run directory {str(run_dir)!r} ({error.strerror or error}): "
            "choose a writable location with hydra.run.dir=... (hydra.sweep.dir=... for -m)"
        ) from error
    free = shutil.disk_usage(run_dir).free
    if free < bytes_needed:
        raise ConfigError(
            f"only {free / 2**20:.0f} MiB free under {str(run_dir)!r}, but this run's "
            f"checkpoints need about {bytes_needed / 2**20:.0f} MiB: free some space or choose "
            "another location with hydra.run.dir=..."
        )


def check_checkpoint_matches(
    checkpoint: Mapping[str, Any], path: str | os.PathLike[str], net_config: Mapping[str, Any]
) -> None:
    """Raise naming the difference if ``checkpoint`` was written by another fgssl version
    (major.minor) or for another network configuration."""
    if not isinstance(checkpoint.get("fgssl"), Mapping):
        raise CheckpointError(f"{str(path)!r} was not written by fgssl (no 'fgssl' metadata)")
    check_checkpoint_version(checkpoint, path)
    saved = checkpoint.get("hyper_parameters", {}).get("net")
    if isinstance(saved, Mapping):
        ignore = {"pretrained", "pretrained_weights", "activation_checkpointing"}
        keys = (set(saved) | set(net_config)) - ignore
        differ = sorted(k for k in keys if saved.get(k) != net_config.get(k))
        if differ:
            details = ", ".join(
                f"{k}: checkpoint {saved.get(k)!r} vs config {net_config.get(k)!r}" for k in differ
            )
            raise CheckpointError(
                f"{str(path)!r} was trained with another model configuration ({details})"
            )


def check_checkpoint_classes(
    checkpoint: Mapping[str, Any], path: str | os.PathLike[str], class_names: Sequence[str]
) -> None:
    """Refuse to continue training ``checkpoint`` on data whose classes (``class_names``, in
    label order) are not the ones it recorded, in the same order: its heads' columns are
    classes by position, so a run continues only with the classes it was trained on. A
    checkpoint that records no class names is not checked (the run's split.csv check
    still compares every image's label)."""
    hparams = checkpoint.get("hyper_parameters")
    recorded = hparams.get("class_names") if isinstance(hparams, Mapping) else None
    if not recorded:
        return
    ours, theirs = [str(n) for n in recorded], [str(n) for n in class_names]
    if ours != theirs:
        how = "in another order" if sorted(ours) == sorted(theirs) else "other classes"
        raise CheckpointError(
            f"the data of the resumed run has the classes {theirs} but {str(path)!r} was "
            f"trained on {ours} ({how}): a run continues with the classes it was trained on, "
            "in their order; check data.root and the other data paths"
        )
