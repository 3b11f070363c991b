"""fgssl-train: the Hydra entry point (``fgssl-train +experiment=demo``, ``-m`` for sweeps)."""

from __future__ import annotations

import logging
import re
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fgssl.errors import FgsslError
from fgssl.pipeline import run_training

log = logging.getLogger("fgssl")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train, then test; returns the best validation score (for Hydra sweepers)."""
    run_dir = HydraConfig.get().runtime.output_dir
    try:
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
    log.info("results written to %s/results.json", run_dir)
    score = results.get("best_val_score")
    return None if score is None else float(score)


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
