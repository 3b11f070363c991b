"""A Hydra callback that writes the results table of a sweep when it ends."""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fgssl.run.failures import FailedJob, read_failures
from fgssl.run.report import write_report

__all__ = ["ReportOnMultirunEnd", "failed_jobs_of_last_sweep"]

log = logging.getLogger(__name__)

_last_sweep_failures: list[FailedJob] = []


def failed_jobs_of_last_sweep() -> list[FailedJob]:
    """The jobs that failed with one of fgssl's errors in the sweep this process ran last
    (read when it ended); fgssl-train then exits with status 1."""
    return list(_last_sweep_failures)


class ReportOnMultirunEnd(Callback):
    """After ``fgssl-train -m ...`` (any sweeper or launcher): ``report.md``, ``report.csv``
    and ``runs.csv`` in the sweep directory, as ``fgssl-report`` writes them, listing the
    jobs that failed with one of fgssl's errors (see :mod:`fgssl.run.failures`).

    Every run has saved its own results by then, so a failure here is logged, not raised.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _last_sweep_failures.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        _last_sweep_failures[:] = read_failures(sweep_dir)
        try:
            paths = write_report(sweep_dir)
        except Exception:
            log.exception("could not write the sweep summary of %s", sweep_dir)
        else:
            log.info("sweep summary: %s\n%s", paths["markdown"], paths["markdown"].read_text())
        for job in _last_sweep_failures:
            print(
                f"fgssl-train: job {job.job} ({job.overrides}) failed: {job.error}",
                file=sys.stderr,
            )
