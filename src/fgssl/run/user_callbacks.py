"""The user's own Lightning callbacks: the ``callbacks`` config group (one entry per callback,
a config with ``_target_``, as in lightning-hydra-template), added to the trainer of each
phase after fgssl's own callbacks and before the end-of-epoch checkpoint.

Refused before any training, with the reason, is only what would break fgssl's own
checkpointing: a checkpoint callback writing into the run's checkpoint folders (where its
``last.ckpt`` or top-k clean-up would overwrite or delete fgssl's ``best.ckpt`` and
``last.ckpt``), a callback whose saved state would take the place of one of fgssl's own
(Lightning keys callback states by ``state_key``), and a weight-averaging callback together
with ``ema.enabled`` (both rewrite the checkpoints' weights). A callback whose ``monitor`` is
a validation key (``val/...``) goes to the finetune phase only, the only phase that
validates; a validation key the finetune phase does not log is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from fgssl.errors import ConfigError
from fgssl.run.instantiation import instantiate_unwrapped
from fgssl.rundir import PHASES, RunDir

__all__ = ["check_user_callbacks", "user_callbacks"]

log = logging.getLogger(__name__)


def _entries(cfg: DictConfig) -> dict[str, DictConfig]:
    node = cfg.get("callbacks") or {}
    entries = {}
    for name, entry in node.items():
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            raise ConfigError(
                f"callbacks.{name}: expected a callback config with a _target_ (e.g. "
                f"+callbacks.{name}._target_=pytorch_lightning.callbacks.Timer), got {entry!r}"
            )
        entries[str(name)] = entry
    return entries


def _build(name: str, entry: DictConfig) -> pl.Callback:
    target = entry.get("_target_")
    try:
        callback = instantiate_unwrapped(entry)
    except ConfigError:
        raise
    except Exception as error:
        cause = error.__cause__ or error
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ConfigError(f"callbacks.{name}: cannot build {target}: {reason}") from error
    if not isinstance(callback, pl.Callback):
        raise ConfigError(
            f"callbacks.{name}: {target} built a {type(callback).__name__}, not a "
            "pytorch_lightning.Callback (fgssl trains with pytorch_lightning: use "
            "pytorch_lightning.callbacks..., not lightning.pytorch.callbacks...)"
        )
    return callback


def _validation_monitor(callback: pl.Callback) -> str | None:
    monitor = getattr(callback, "monitor", None)
    return monitor if isinstance(monitor, str) and monitor.startswith("val/") else None


def user_callbacks(cfg: DictConfig, *, validate: bool) -> list[pl.Callback]:
    """The callbacks of ``cfg.callbacks``, built anew for one phase (``validate``: whether
    it validates; one following a validation key is left to the phase that does)."""
    built = []
    for name, entry in _entries(cfg).items():
        callback = _build(name, entry)
        monitor = _validation_monitor(callback)
        if monitor is not None and not validate:
            log.info("callbacks.%s follows %s: added to the finetune phase only", name, monitor)
            continue
        built.append(callback)
    return built


def check_user_callbacks(
    cfg: DictConfig,
    run: RunDir,
    own: Sequence[pl.Callback],
    validation_keys: Sequence[str],
) -> None:
    """Refuse, before any training, a ``callbacks`` entry that cannot be built or would
    break fgssl's checkpointing (see the module's docstring); ``own`` are fgssl's own
    callbacks of a phase (their state keys), ``validation_keys`` what the finetune phase's
    validation logs."""
    own_keys = {c.state_key: type(c).__name__ for c in own if _stateful(c)}
    averaging = bool((cfg.get("ema") or {}).get("enabled", False))
    for name, entry in _entries(cfg).items():
        callback = _build(name, entry)
        if isinstance(callback, ModelCheckpoint):
            _check_checkpoint_folder(name, callback, run)
        if _stateful(callback) and callback.state_key in own_keys:
            raise ConfigError(
                f"callbacks.{name}: its state in the checkpoints would take the place of "
                f"fgssl's own {own_keys[callback.state_key]} (the same state key "
                f"{callback.state_key!r}), and a resumed run would restore the wrong one: "
                "give it other settings (e.g. another monitor or every_n_epochs)"
            )
        if averaging and any(c.__name__ == "WeightAveraging" for c in type(callback).__mro__):
            raise ConfigError(
                f"callbacks.{name}: {type(callback).__name__} and ema.enabled=true both put "
                "averaged weights into the checkpoints, so one would overwrite the other: "
                "use one of them"
            )
        monitor = _validation_monitor(callback)
        if monitor is not None and monitor not in validation_keys:
            raise ConfigError(
                f"callbacks.{name} monitors {monitor!r}, which the finetune validation does "
                f"not log; choose one of {', '.join(validation_keys)}"
            )


def _stateful(callback: pl.Callback) -> bool:
    """Whether Lightning saves the callback's state (it overrides ``state_dict``)."""
    return type(callback).state_dict is not pl.Callback.state_dict


def _check_checkpoint_folder(name: str, callback: ModelCheckpoint, run: RunDir) -> None:
    folders = [run.last_checkpoint(phase).parent.resolve() for phase in PHASES]
    dirpath: Any = callback.dirpath
    inside = dirpath is not None and any(
        Path(dirpath).expanduser().resolve().is_relative_to(folder) for folder in folders
    )
    if dirpath is None or inside:
        where = "has no dirpath, so it writes" if dirpath is None else f"writes to {dirpath!r},"
        raise ConfigError(
            f"callbacks.{name}: this {type(callback).__name__} {where} into the phase's "
            "checkpoints folder, where its last.ckpt and its top-k clean-up would overwrite "
            "or delete fgssl's best.ckpt and last.ckpt (what the test and resume read): "
            f"give it a dirpath outside {', '.join(str(f) for f in folders)}"
        )
