"""Checkpoints that survive interruption: atomic writes, a consistent checkpoint at the end
of every epoch, and clear errors for checkpoints that do not fit the run."""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from fgssl.atomic import atomic_path
from fgssl.errors import CheckpointError, ConfigError

LAST_CHECKPOINT = Path("checkpoints", "last.ckpt")
"""Where a phase keeps the checkpoint of its latest finished epoch (relative to the phase's
folder)."""
BEST_CHECKPOINT = Path("checkpoints", "best.ckpt")
"""Where the finetune phase keeps the checkpoint of its best validation score (relative to
the phase's folder)."""

__all__ = [
    "BEST_CHECKPOINT",
    "LAST_CHECKPOINT",
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "RelocatableModelCheckpoint",
    "check_checkpoint_matches",
    "check_checkpoint_version",
    "check_output_location",
    "every_epoch_checkpoint",
    "read_checkpoint",
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


def read_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    trusted: bool = False,
) -> dict[str, Any]:
    """Load a Lightning checkpoint file with ``torch.load(weights_only=True)``: no pickled
    code is run. A file that needs full unpickling is refused unless ``trusted``.

    Raises :class:`CheckpointError` for a missing file, a file that is not a PyTorch
    checkpoint, and a PyTorch file without a ``state_dict``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as error:
        # A torch.save archive whose pickle names classes the weights-only loader does not
        # allow (garbage fails with "Unsupported operand" instead).
        if zipfile.is_zipfile(path) and "unsupported global" in str(error).lower():
            raise CheckpointError(
                f"{str(path)!r} holds Python objects that torch.load(weights_only=True) refuses "
                "to unpickle; if you trust the file, load it with trusted=True "
                "(--trust-checkpoint on the command line)"
            ) from error
        raise CheckpointError(_not_a_checkpoint(path, error)) from error
    except Exception as error:  # torch.load fails in many ways on files that are not its own
        raise CheckpointError(_not_a_checkpoint(path, error)) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{str(path)!r} is a PyTorch file but not a Lightning checkpoint (no 'state_dict')"
        )
    return checkpoint


def _not_a_checkpoint(path: Path, error: BaseException) -> str:
    text = str(error).strip()
    if not zipfile.is_zipfile(path):
        reason = "not a torch.save archive"
    else:
        reason = f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
    return (
        f"{str(path)!r} is not a PyTorch checkpoint ({reason}): expected a .ckpt file written "
        "by fgssl-train"
    )


def check_checkpoint_version(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Raise naming both versions if ``checkpoint`` was written by another fgssl major.minor.

    Checkpoints without fgssl metadata (written by a bare FGSSLModule) pass.
    """
    from fgssl import __version__

    meta = checkpoint.get("fgssl")
    theirs = str(meta.get("version", "?")) if isinstance(meta, Mapping) else None
    if theirs is not None and theirs.split(".")[:2] != __version__.split(".")[:2]:
        raise CheckpointError(
            f"{str(path)!r} was written by fgssl {theirs}, this is fgssl {__version__}: "
            "use the version that wrote it, or start a new run"
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
