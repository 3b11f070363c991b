"""fgssl-train: the Hydra entry point (``fgssl-train +experiment=demo``, ``-m`` for sweeps)."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fgssl.errors import ConfigError, FgsslError
from fgssl.pipeline import run_training

log = logging.getLogger("fgssl")

# hydra.run.dir is the run being resumed, if any; its first .hydra record is kept.
OmegaConf.register_new_resolver(
    "fgssl.run_dir", lambda resume, default: resume or default, replace=True
)
OmegaConf.register_new_resolver(
    "fgssl.hydra_subdir",
    lambda resume, stamp: f".hydra-resumed-{stamp}" if resume else ".hydra",
    replace=True,
)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train, then test; returns the best validation score (for Hydra sweepers)."""
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        if cfg.resume:
            cfg = saved_config(cfg.resume)
        results = run_training(cfg, run_dir)
    except Exception as caught:
        # fgssl's errors, also when a Hydra-instantiated target (e.g. the network, loading
        # its pretrained weights) raised them and Hydra wrapped them: one clear line.
        error = caught if isinstance(caught, FgsslError) else caught.__cause__
        if not isinstance(error, FgsslError):
            raise
        log.error("%s", error)
        print(f"fgssl-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as stop:  # Ctrl-C (Lightning exits with 1) or SIGTERM
        print(
            "fgssl-train: interrupted; the checkpoint of the last finished epoch is kept: "
            f"fgssl-train resume={run_dir} continues from it (redoing the interrupted epoch)",
            file=sys.stderr,
        )
        sys.exit(143 if isinstance(stop, SIGTERMException) else (stop.code or 1))
    log.info("results written to %s/results.json", run_dir)
    score = results.get("best_val_score")
    return None if score is None else float(score)


def saved_config(run_dir: str) -> DictConfig:
    """The resolved config a run saved, to resume it with exactly its settings."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"resume={run_dir!r}: no config.yaml there, so it is not an fgssl run directory"
        )
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    cfg.resume = str(run_dir)
    return cfg


_SCHEDULE_OVERRIDE = re.compile(r"^(?P<key>[+~]*schedule=)(?P<value>.+)$")
_UNDERSCORED_NUMBER = re.compile(r"^\d+(_\d+)+$")


def quote_schedule_choices(argv: list[str]) -> list[str]:
    """Quote ``schedule=8_4_2,16_8_4`` so Hydra does not read 8_4_2 as the integer 842."""
    quoted = []
    for arg in argv:
        match = _SCHEDULE_OVERRIDE.match(arg)
        if match:
            items = match["value"].split(",")
            items = [f"'{item}'" if _UNDERSCORED_NUMBER.match(item) else item for item in items]
            arg = match["key"] + ",".join(items)
        quoted.append(arg)
    return quoted


def cli() -> None:
    """Console entry point of ``fgssl-train``."""
    sys.argv = [sys.argv[0], *quote_schedule_choices(sys.argv[1:])]
    main()


if __name__ == "__main__":
    cli()
