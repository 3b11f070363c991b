"""A Hydra callback that claims fgssl-train's run (or sweep) directory before Hydra writes
into it (:mod:`fgssl.run.claim`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fgssl.errors import ConfigError
from fgssl.run.claim import claim_run_dir, claim_sweep_dir
from fgssl.run.factory import is_rank_zero

__all__ = ["ClaimOutputDirectory"]


class ClaimOutputDirectory(Callback):
    """Claims ``hydra.run.dir`` (a single run; not when resuming, which continues in the
    run's own folder) or ``hydra.sweep.dir`` (a sweep) before Hydra writes its ``.hydra``
    records there; a folder that holds another run or sweep ends the command with one line
    and status 2, leaving that folder as it was. Only the first process claims (the other
    processes of a DDP run start Hydra again in the same folder)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("resume") and is_rank_zero():
            _claim_or_exit(claim_run_dir, _resolved(config, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if is_rank_zero():
            _claim_or_exit(claim_sweep_dir, _resolved(config, "hydra.sweep.dir"))


def _resolved(config: DictConfig, key: str) -> str:
    """``key`` of ``config`` resolved as Hydra resolves it when the job starts (its
    ``${hydra:...}`` interpolations need the Hydra config set; ``${now:...}`` is cached in
    ``config``, so the job gets the same folder)."""
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(config)
    try:
        return str(OmegaConf.select(config, key))
    finally:
        hydra_config.cfg = previous


def _claim_or_exit(claim: Callable[[Path], Path], folder: str) -> None:
    try:
        claim(Path(folder))
    except ConfigError as error:
        print(f"fgssl-train: error: {error}", file=sys.stderr)
        sys.exit(2)
