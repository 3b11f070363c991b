"""Checkpoints that survive interruption: atomic writes, a save on Ctrl-C/SIGTERM,
and clear errors for checkpoints that do not fit the run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fgssl.errors import CheckpointError, ConfigError

__all__ = [
    "AtomicCheckpointIO",
    "SaveOnInterrupt",
    "check_checkpoint_matches",
    "check_output_location",
    "read_checkpoint",
]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside it and renames it into place, so
    that an interrupted write leaves the previous checkpoint intact, never a torn one."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, temporary, storage_options)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


class SaveOnInterrupt(pl.Callback):
    """Saves the current training state to ``path`` when Ctrl-C or SIGTERM stops training,
    so that ``resume=<run dir>`` continues from there."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt | SIGTERMException) and trainer.global_step > 0:
            trainer.save_checkpoint(self.path)


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


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only``): no pickled code is run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{str(path)!r} is not a readable fgssl checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{str(path)!r} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def check_checkpoint_matches(
    checkpoint: Mapping[str, Any], path: str | os.PathLike[str], net_config: Mapping[str, Any]
) -> None:
    """Raise naming the difference if ``checkpoint`` was written by another fgssl version
    (major.minor) or for another network configuration."""
    from fgssl import __version__

    meta = checkpoint.get("fgssl")
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"{str(path)!r} was not written by fgssl (no 'fgssl' metadata)")
    theirs, ours = str(meta.get("version", "?")), __version__
    if theirs.split(".")[:2] != ours.split(".")[:2]:
        raise CheckpointError(
            f"{str(path)!r} was written by fgssl {theirs}, this is fgssl {ours}: "
            "use the version that wrote it, or start a new run"
        )
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
