"""Reading fgssl checkpoint files and rebuilding the FGSSLModule saved in them, offline.

Finding the checkpoint and config of a run directory is :mod:`fgssl.run.loading`'s job."""

from __future__ import annotations

import inspect
import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from fgssl._version import __version__
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.classes import output_class_names
from fgssl.module import FGSSLModule
from fgssl.rundir import BEST_CHECKPOINT, RunDir
from fgssl.thresholds import FittedThresholds

__all__ = [
    "LoadedRun",
    "check_checkpoint_version",
    "load_checkpoint",
    "read_checkpoint",
]

log = logging.getLogger(__name__)


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
    def recorded_class_names(self) -> list[str] | None:
        """The class names the checkpoint records, in the order of its output columns; None
        when it records none. :class:`CheckpointError` when their number is not the
        network's number of classes."""
        names = self.module.class_names
        if not names:
            return None
        if len(names) != self.module.num_classes:
            raise CheckpointError(
                f"{str(self.checkpoint)!r} records {len(names)} class names {list(names)} for "
                f"a network of {self.module.num_classes} classes"
            )
        return [str(name) for name in names]

    @property
    def class_names(self) -> list[str]:
        """The names of the checkpoint's output columns: :attr:`recorded_class_names`, or
        (with a warning) the indices as strings when it records none."""
        return output_class_names(self.recorded_class_names, self.module.num_classes)

    def require_classifier(self) -> None:
        """Refuse (:class:`CheckpointError`) a checkpoint of the pretrain phase: its
        classifier heads were never trained on labels, so its predictions mean nothing. The
        message names the finetune checkpoint of the same run to use instead."""
        if self.module.phase != "pretrain":
            return
        raise CheckpointError(
            f"{str(self.checkpoint)!r} is a pretrain-phase checkpoint: its classifier heads "
            f"were never trained on labels, so it cannot score or predict classes; use "
            f"{self._finetune_checkpoint()} instead (fgssl-ssl-eval scores a pretrain "
            "checkpoint's features)"
        )

    def _finetune_checkpoint(self) -> str:
        """The finetune checkpoint of this checkpoint's run, in words."""
        run_dir = self.run_dir
        if run_dir is None:
            return (
                f"the finetune checkpoint of its run (<run dir>/finetune/{BEST_CHECKPOINT}, "
                "or the run directory itself)"
            )
        run = RunDir(run_dir)
        for candidate in run.checkpoints("finetune"):
            if candidate.is_file():
                return f"the finetune checkpoint {str(candidate)!r} (or the run directory)"
        return (
            f"the finetune checkpoint {str(run.best_checkpoint)!r}, written once the run "
            f"has finetuned (none is there yet; a stopped run continues with fgssl-train "
            f"resume={run_dir})"
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
    meta = checkpoint.get("fgssl")
    theirs = str(meta.get("version", "?")) if isinstance(meta, Mapping) else None
    if theirs is not None and theirs.split(".")[:2] != __version__.split(".")[:2]:
        raise CheckpointError(
            f"{str(path)!r} was written by fgssl {theirs}, this is fgssl {__version__}: "
            "use the version that wrote it, or start a new run"
        )


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
    module.ordinal_thresholds = None if random_init else _ordinal_thresholds(checkpoint, path)
    return module.eval()


def _ordinal_thresholds(checkpoint: Mapping[str, Any], path: Path) -> FittedThresholds | None:
    """The thresholds fgssl-train fitted for the checkpoint (``fgssl`` metadata,
    ``ordinal_thresholds``); None when it holds none. CheckpointError when malformed."""
    meta = checkpoint.get("fgssl")
    record = meta.get("ordinal_thresholds") if isinstance(meta, Mapping) else None
    if record is None:
        return None
    try:
        return FittedThresholds.from_json(record)
    except (ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"{str(path)!r} holds malformed ordinal thresholds: {error}"
        ) from error
