"""The runs of a Hydra multirun: one row per finished job, its overrides, seed and the
numbers of its ``results.json``."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fgssl.errors import DataLayoutError, DataNotFoundError
from fgssl.overrides import following_keys, one_spelling, override_key, unquoted
from fgssl.rundir import CONFIG, RESULTS

__all__ = [
    "METRIC_SECTIONS",
    "SEED_KEYS",
    "collect_runs",
    "job_dirs",
    "override_key",
    "unquoted",
]

log = logging.getLogger(__name__)

SEED_KEYS = ("seed",)
"""Overrides that tell repetitions of one configuration apart."""

METRIC_SECTIONS = ("test/", "ssl_eval/", "best_val_score")
"""Where results.json holds metrics: there ``null`` (undefined) is read as a missing value."""


def _flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numbers of a results.json tree by path; a metric that is null (undefined) is NaN,
    i.e. missing, never 0."""
    flat: dict[str, float] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
        elif value is None and name.startswith(METRIC_SECTIONS):
            flat[name] = math.nan
    return flat


def job_dirs(multirun_dir: Path) -> list[Path]:
    """The Hydra job folders (``<n>/.hydra``) of a multirun directory, in job order."""
    jobs = [p for p in multirun_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), p.name.zfill(12)))


def collect_runs(multirun_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per finished job of ``multirun_dir``: ``job``, ``overrides`` (the job's
    command-line overrides without the seed), ``seed``, ``monitor`` and every number of its
    ``results.json``, flattened (``test/combined/kappa``, ``ssl_eval/knn/kappa``, ...), and
    ``configuration`` (the overrides that differ between the jobs, but for those that follow
    the seed, such as a pretrained_run per seed: :func:`fgssl.overrides.following_keys`;
    ``+key=value`` and ``key=value`` are one override: :func:`fgssl.overrides.one_spelling`).

    Jobs without ``results.json`` (failed or still running) are skipped with a warning.
    """
    root = Path(multirun_dir).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"multirun directory {str(root)!r} does not exist")
    jobs = job_dirs(root)
    if not jobs:
        raise DataLayoutError(
            f"{str(root)!r} holds no Hydra job folders (<n>/.hydra/): expected the directory "
            "of an `fgssl-train -m ...` sweep, e.g. multirun/demo/2024-05-01_10-00-00"
        )
    rows = [_read_job(job) for job in jobs if (job / RESULTS).is_file()]
    unfinished = [job.name for job in jobs if not (job / RESULTS).is_file()]
    if unfinished:
        log.warning("skipping %d job(s) without results.json: %s", len(unfinished), unfinished)
    if not rows:
        raise DataNotFoundError(f"no job of {str(root)!r} has a results.json yet")
    runs = pd.DataFrame(rows)
    runs["overrides"] = one_spelling(runs["overrides"].tolist())
    common = set.intersection(*(set(o) for o in runs["overrides"]))
    per_seed = following_keys(runs["overrides"].tolist(), runs["seed"].tolist())
    runs["configuration"] = [
        " ".join(o for o in overrides if o not in common and override_key(o) not in per_seed)
        or "(all)"
        for overrides in runs["overrides"]
    ]
    runs.attrs["common_overrides"] = [o for o in runs["overrides"].iloc[0] if o in common]
    runs.attrs["unfinished"] = unfinished
    return runs


def _read_job(job: Path) -> dict[str, Any]:
    """The row of a finished job (its ``results.json`` exists); :class:`DataLayoutError`
    naming the job when its files cannot be read."""
    try:
        overrides_path = job / ".hydra" / "overrides.yaml"
        recorded = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else []
        overrides = [unquoted(str(o)) for o in recorded or []]
        results = json.loads((job / RESULTS).read_text())
        seed = next((o.split("=", 1)[1] for o in overrides if override_key(o) in SEED_KEYS), None)
        if seed is None and (job / CONFIG).is_file():
            seed = (yaml.safe_load((job / CONFIG).read_text()) or {}).get("seed")
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise DataLayoutError(f"cannot read the results of job {str(job)!r}: {error}") from error
    return {
        "job": job.name,
        "overrides": [o for o in overrides if override_key(o) not in SEED_KEYS],
        "seed": seed,
        "monitor": results.get("monitor"),
        **_flatten(results),
    }
