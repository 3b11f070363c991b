"""fgssl-train: the Hydra entry point (``fgssl-train experiment=demo``, ``-m`` for sweeps)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fgssl.cli.common import hydra_arguments
from fgssl.cli.sweep_report import failed_jobs_of_last_sweep
from fgssl.errors import FgsslError, RunDirectoryInUseError
from fgssl.run.failures import clear_failure, record_failure
from fgssl.run.paths import resolve_user_paths
from fgssl.run.pipeline import run_training
from fgssl.run.resume import find_resume_point, resumed_config
from fgssl.run.signals import is_worker_failure, recording_sigterm

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
    """Train, then test; returns the best validation score (for Hydra sweepers), None when
    it is undefined or the run failed with one of fgssl's errors."""
    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    started_in = hydra_cfg.runtime.cwd  # the working directory changes with hydra.job.chdir
    with recording_sigterm() as sigterm_received:
        try:
            cfg = prepared_config(
                cfg,
                hydra_cfg.overrides.task,
                output_dir=run_dir,
                choices=hydra_cfg.runtime.choices,
                started_in=started_in,
            )
            results = run_training(cfg, run_dir)
        except Exception as caught:
            # fgssl's errors, also when a Hydra-instantiated target (e.g. the network, loading
            # its pretrained weights) raised them and Hydra wrapped them: one clear line.
            error = caught if isinstance(caught, FgsslError) else caught.__cause__
            if isinstance(error, FgsslError):
                _failed(error, run_dir, sweep=hydra_cfg.mode == RunMode.MULTIRUN)
                return None
            if sigterm_received() and is_worker_failure(caught):
                # DataLoader workers that died of a SIGTERM sent to the whole process group
                # before they could leave it to this process (fgssl.run.signals)
                _interrupted(run_dir, 143)
            raise
        except SystemExit as stop:  # Ctrl-C (Lightning exits with 1) or SIGTERM
            code = stop.code if isinstance(stop.code, int) and stop.code else 1
            _interrupted(run_dir, 143 if isinstance(stop, SIGTERMException) else code)
    clear_failure(run_dir)
    log.info("results written to %s/results.json", run_dir)
    score = results.get("best_val_score")
    return None if score is None else float(score)


def prepared_config(
    cfg: DictConfig,
    overrides: Sequence[str],
    *,
    output_dir: str | Path,
    choices: Mapping[str, Any],
    started_in: str | Path,
) -> DictConfig:
    """The config a run is given (by fgssl-train and :func:`fgssl.api.train`): ``cfg``
    composed from ``overrides`` (Hydra's syntax) with its relative paths made absolute
    from ``started_in``; with ``resume=<run dir>``, that run's own config with the
    overrides it accepts (:func:`fgssl.run.resume.resumed_config`; ``choices``: the config
    groups chosen)."""
    cfg = resolve_user_paths(cfg, started_in)
    if not cfg.resume:
        return cfg
    cfg = resumed_config(
        cfg.resume,
        overrides,
        output_dir=output_dir,
        composed=cfg,
        choices=choices,
        started_in=started_in,
    )
    return resolve_user_paths(cfg, started_in)  # a run of an older fgssl


def _failed(error: FgsslError, run_dir: str, *, sweep: bool) -> None:
    """Report ``error`` in one line and record it in the run directory; a single run then
    exits with status 2, a sweep carries on with its other jobs (its report lists this one)."""
    log.error("%s", error)
    if not isinstance(error, RunDirectoryInUseError):  # that folder is another run's
        record_failure(run_dir, error)
    if not sweep:
        print(f"fgssl-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"fgssl-train: job {Path(run_dir).name} failed: {error}", file=sys.stderr)


def _interrupted(run_dir: str, status: int) -> NoReturn:
    """Exit with ``status`` after saying what an interruption kept."""
    point = find_resume_point(run_dir)
    if point.pretrain is None and point.finetune is None:
        kept = "no epoch had finished, so there is nothing to resume: start the run again"
    else:
        kept = (
            "the checkpoint of the last finished epoch is kept: "
            f"fgssl-train resume={run_dir} continues from it (redoing the interrupted epoch)"
        )
    print(f"fgssl-train: interrupted; {kept}", file=sys.stderr)
    sys.exit(status)


def cli() -> None:
    """Console entry point of ``fgssl-train``."""
    sys.argv = [sys.argv[0], *hydra_arguments(sys.argv[1:])]
    main()
    failed = failed_jobs_of_last_sweep()
    if failed:  # a sweep whose every other job ran; report.md lists these
        print(f"fgssl-train: {len(failed)} job(s) of the sweep failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
