"""The record a run leaves when it stops with one of fgssl's errors, so that a sweep
carries on with its other jobs and its report lists the failed ones with their reason."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from fgssl.atomic import write_text_atomically
from fgssl.rundir import FAILED, RESULTS

__all__ = [
    "FAILURE_RECORD",
    "FailedJob",
    "clear_failure",
    "one_line",
    "read_failures",
    "record_failure",
]

log = logging.getLogger(__name__)

FAILURE_RECORD = FAILED
"""In a run directory: ``{"error": <one-line message>, "type": <error class>}``."""


def record_failure(run_dir: str | os.PathLike[str], error: BaseException) -> Path | None:
    """Write :data:`FAILURE_RECORD` into ``run_dir``; None (logged) if it cannot be written,
    e.g. because the failure is that ``run_dir`` is not writable."""
    path = Path(run_dir) / FAILURE_RECORD
    record = {"error": one_line(str(error)), "type": type(error).__name__}
    try:
        return write_text_atomically(path, json.dumps(record, indent=2) + "\n")
    except OSError as write_error:
        log.warning("could not record the failure in %s: %s", path, write_error)
        return None


def clear_failure(run_dir: str | os.PathLike[str]) -> None:
    """Remove the failure record of an earlier attempt (the run has now finished)."""
    (Path(run_dir) / FAILURE_RECORD).unlink(missing_ok=True)


@dataclass(frozen=True)
class FailedJob:
    """A sweep job that stopped with one of fgssl's errors."""

    job: str
    """The job's folder name (its number in the sweep)."""
    overrides: tuple[str, ...]
    """The job's command-line overrides (``.hydra/overrides.yaml``)."""
    type: str
    """The error's class name."""
    error: str
    """The one-line reason."""


def read_failures(multirun_dir: str | os.PathLike[str]) -> list[FailedJob]:
    """The failed jobs of a sweep directory, in job order: those whose folder holds a
    :data:`FAILURE_RECORD` and no ``results.json``. Empty for a missing directory."""
    root = Path(multirun_dir).expanduser()
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if (p / FAILURE_RECORD).is_file()]
    failed = []
    for job in sorted(folders, key=lambda p: (not p.name.isdigit(), p.name.zfill(12))):
        if (job / RESULTS).is_file():
            continue
        try:
            record = json.loads((job / FAILURE_RECORD).read_text())
            error, kind = str(record["error"]), str(record.get("type", ""))
        except (OSError, ValueError, KeyError, TypeError) as read_error:
            error, kind = f"unreadable {FAILURE_RECORD}: {read_error}", ""
        failed.append(
            FailedJob(job=job.name, overrides=_overrides(job), type=kind, error=one_line(error))
        )
    return failed


def _overrides(job: Path) -> tuple[str, ...]:
    path = job / ".hydra" / "overrides.yaml"
    try:
        overrides = yaml.safe_load(path.read_text()) if path.is_file() else []
    except (OSError, yaml.YAMLError):
        overrides = []
    return tuple(str(o) for o in overrides or [])


def one_line(text: str) -> str:
    """``text`` with its line breaks turned into spaces."""
    return " ".join(text.split())
