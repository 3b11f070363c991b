"""A Hydra callback that writes the results table of a sweep when it ends."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fgssl.report import write_report

__all__ = ["ReportOnMultirunEnd"]

log = logging.getLogger(__name__)


class ReportOnMultirunEnd(Callback):
    """After ``fgssl-train -m ...`` (any sweeper or launcher): ``report.md``, ``report.csv``
    and ``runs.csv`` in the sweep directory, as ``fgssl-report`` writes them.

    Every run has saved its own results by then, so a failure here is logged, not raised.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        try:
            paths = write_report(sweep_dir)
        except Exception:
            log.exception("could not write the sweep summary of %s", sweep_dir)
            return
        log.info("sweep summary: %s\n%s", paths["markdown"], paths["markdown"].read_text())
