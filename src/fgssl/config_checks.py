"""Checks of a composed fgssl-train config, run before any data is read or trained on."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from fgssl.data.base import ImageClassificationDataModule
from fgssl.errors import ConfigError

__all__ = ["check_config", "check_schedule_fits"]


def check_config(cfg: DictConfig) -> None:
    """Refuse top-level settings that cannot train, naming the key and the value."""
    if cfg.get("resume") and not Path(cfg.resume).is_dir():
        raise ConfigError(f"resume={cfg.resume!r} is not a run directory")
    if cfg.pretrain_epochs < 0:
        raise ConfigError(f"pretrain_epochs must be >= 0, got {cfg.pretrain_epochs}")
    if cfg.finetune_epochs < 1:
        raise ConfigError(f"finetune_epochs must be >= 1, got {cfg.finetune_epochs}")
    if cfg.step_mode not in ("progressive", "fused"):
        raise ConfigError(f"step_mode must be 'progressive' or 'fused', got {cfg.step_mode!r}")
    _check_method(cfg)


def _check_method(cfg: DictConfig) -> None:
    """A ``+method=`` config must still hold after the other groups were merged (a later
    ``+experiment=`` on the command line overrides its model)."""
    method = cfg.get("method")
    if method is None:
        return
    target = str(cfg.model.net.get("_target_", ""))
    if target.endswith("BaselineNet"):
        trains = "baseline"
    else:
        trains = "fgssl" if cfg.pretrain_epochs > 0 else "pmg"
    if trains != method:
        raise ConfigError(
            f"method={method} but the composed config trains {trains} (model.net._target_="
            f"{target}, pretrain_epochs={cfg.pretrain_epochs}): put +method=... after "
            "+experiment=... on the command line (the later one wins) and do not override "
            "what the method sets"
        )


def check_schedule_fits(cfg: DictConfig, datamodule: ImageClassificationDataModule) -> None:
    """Every jigsaw grid must fit the image size (a grid cell is at least one pixel)."""
    too_fine = [g for g in cfg.schedule.grids if g > datamodule.image_size]
    if too_fine:
        raise ConfigError(
            f"patch schedule {list(cfg.schedule.grids)} has grids {too_fine} larger than the "
            f"{datamodule.image_size}px images (data.image_size): choose a coarser schedule"
        )
