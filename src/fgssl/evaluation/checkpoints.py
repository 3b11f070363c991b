"""Loading trained FGSSLModule checkpoints (and the run directories that hold them) offline."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fgssl.checkpointing import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    check_checkpoint_version,
    read_checkpoint,
)
from fgssl.errors import CheckpointError, ConfigError
from fgssl.module import FGSSLModule

__all__ = [
    "RUN_CHECKPOINTS",
    "LoadedRun",
    "find_run_dir",
    "load_checkpoint",
    "load_run",
    "resolve_checkpoint",
]

log = logging.getLogger(__name__)

RUN_CHECKPOINTS = {
    "finetune": (
        (Path("finetune") / BEST_CHECKPOINT).as_posix(),
        (Path("finetune") / LAST_CHECKPOINT).as_posix(),
    ),
    "pretrain": ((Path("pretrain") / LAST_CHECKPOINT).as_posix(),),
}
"""Checkpoints of a run directory by phase, in order of preference."""


@dataclass
class LoadedRun:
    """A loaded checkpoint with what its run directory tells about it."""

    module: FGSSLModule
    checkpoint: Path
    run_dir: Path | None
    config: DictConfig | None
    """The run's resolved ``config.yaml``, if one was found."""

    def require_config(self) -> DictConfig:
        """The run's config; :class:`ConfigError` when none was found (the data to evaluate
        on is only known from it)."""
        if self.config is None:
            raise ConfigError(
                f"no config.yaml found above {str(self.checkpoint)!r}: pass the run's config "
                "with --config to say which data to evaluate on"
            )
        return self.config

    @property
    def class_names(self) -> list[str]:
        """The checkpoint's class names (their indices as strings if it has none)."""
        names = self.module.class_names
        return list(names) if names else [str(c) for c in range(self.module.num_classes)]


def resolve_checkpoint(path: str | os.PathLike[str], *, phase: str = "finetune") -> Path:
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


def find_run_dir(checkpoint: Path) -> Path | None:
    """The run directory (the folder with ``config.yaml``) above ``checkpoint``, if any."""
    for parent in list(checkpoint.resolve().parents)[:3]:
        if (parent / "config.yaml").is_file():
            return parent
    return None


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    trusted: bool = False,
    random_init: bool = False,
) -> FGSSLModule:
    """Rebuild the FGSSLModule saved in ``path``, in eval mode, without downloading anything.

    The network is rebuilt from the config saved in the checkpoint's hyper-parameters with
    ``pretrained=False`` (the trained weights replace ImageNet's anyway). The file is read
    with ``torch.load(weights_only=True)``; a checkpoint that needs full unpickling is refused
    unless ``trusted`` (unpickling runs code stored in the file). ``random_init`` keeps the
    freshly built (randomly initialised) weights: the reference point of the SSL protocols.

    Raises:
        CheckpointError: the file is missing, is not a PyTorch checkpoint, was written by
            another fgssl version, or not by an FGSSLModule built from a network config.
    """
    path = Path(path).expanduser()
    checkpoint = read_checkpoint(path, map_location=map_location, trusted=trusted)
    check_checkpoint_version(checkpoint, path)
    hparams = checkpoint.get("hyper_parameters")
    net_cfg = hparams.get("net") if isinstance(hparams, Mapping) else None
    if not isinstance(net_cfg, Mapping) or "_target_" not in net_cfg:
        raise CheckpointError(
            f"{str(path)!r} is a PyTorch checkpoint but not an fgssl one: its hyper-parameters "
            "hold no network config ('net' with a '_target_'); fgssl-train writes such "
            "checkpoints, and so does FGSSLModule when given a network config"
        )
    assert isinstance(hparams, Mapping)
    kwargs = dict(hparams)
    kwargs["net"] = {**net_cfg, "pretrained": False, "pretrained_weights": None}
    accepted = inspect.signature(FGSSLModule.__init__).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        log.warning("%s: ignoring hyper-parameters this fgssl does not know: %s", path, unknown)
    try:
        module = FGSSLModule(**{k: v for k, v in kwargs.items() if k in accepted})
        if not random_init:
            module.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"cannot rebuild the network of {str(path)!r} from its saved config: {error}"
        ) from error
    return module.eval()


def load_run(
    path: str | os.PathLike[str],
    *,
    phase: str = "finetune",
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
        config_path = run_dir / "config.yaml"
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
