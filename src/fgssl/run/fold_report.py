"""The cross-validation part of a sweep's report: the jobs of a fold sweep
(``fgssl-train -m ... data.fold=range(5)``) grouped by their other overrides and seed, and
for each group the out-of-fold predictions and the fold ensemble on the shared test split
(:mod:`fgssl.evaluation.cross_validation`), written to ``cross_validation.json``,
``oof_predictions.csv`` and ``fold_ensemble_test.csv`` and summarised in ``report.md``.

A group that cannot be scored (a fold missing, folds of different data, test splits that
differ) gets null numbers with the reason, in the files and in the log; the rest of the
report is written all the same.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import OmegaConf

from fgssl.atomic import write_csv_atomically, write_text_atomically
from fgssl.data.folds import DEFAULT_FOLDS
from fgssl.errors import FgsslError
from fgssl.evaluation.cross_validation import fold_ensemble, out_of_fold, score_predictions
from fgssl.evaluation.prediction_table import (
    ScoredTable,
    prediction_table,
    read_prediction_table,
)
from fgssl.overrides import override_key
from fgssl.run.factory import bootstrap_settings
from fgssl.rundir import CONFIG, RESULTS, SPLIT, RunDir

__all__ = ["FOLD_KEY", "FoldGroup", "cross_validate", "fold_groups", "write_fold_report"]

log = logging.getLogger(__name__)

FOLD_KEY = "data.fold"
REPORT_JSON = "cross_validation.json"


@dataclass
class FoldGroup:
    """The jobs of one cross-validation: one configuration and seed, one job per fold."""

    configuration: str
    seed: Any
    folds: int
    jobs: dict[int, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Why the group is not complete (a fold missing or run twice, another number of folds)."""


def _fold_of(job: Path) -> tuple[int, int] | None:
    """(fold, number of folds) of a job from its ``config.yaml``; None without a fold."""
    data = (yaml.safe_load((job / CONFIG).read_text()) or {}).get("data") or {}
    if data.get("fold") is None:
        return None
    return int(data["fold"]), int(data.get("folds") or DEFAULT_FOLDS)


def fold_groups(multirun_dir: Path, runs: pd.DataFrame) -> list[FoldGroup]:
    """The cross-validations among ``runs`` (:func:`fgssl.run.sweep_runs.collect_runs` of
    ``multirun_dir``): jobs with a ``data.fold``, grouped by their overrides other than
    ``data.fold`` and by seed, in job order."""
    common = set(runs.attrs.get("common_overrides", []))
    groups: dict[tuple[Any, ...], FoldGroup] = {}
    for record in runs.to_dict("records"):
        job = multirun_dir / str(record["job"])
        fold = _fold_of(job) if (job / CONFIG).is_file() else None
        if fold is None:
            continue
        others = [o for o in record["overrides"] if override_key(o) != FOLD_KEY]
        key = (tuple(others), str(record["seed"]))
        label = " ".join(o for o in others if o not in common) or "(all)"
        group = groups.setdefault(key, FoldGroup(label, record["seed"], fold[1]))
        if fold[1] != group.folds:
            group.problems.append(f"job {job.name} has {fold[1]} folds, the others {group.folds}")
        elif fold[0] in group.jobs:
            group.problems.append(
                f"fold {fold[0]} ran twice (jobs {group.jobs[fold[0]].name} and {job.name})"
            )
        else:
            group.jobs[fold[0]] = job
    for group in groups.values():
        missing = sorted(set(range(group.folds)) - set(group.jobs))
        if missing:
            group.problems.append(
                f"{len(group.jobs)} of {group.folds} folds finished (no results for fold(s) "
                f"{missing})"
            )
    return list(groups.values())


def _split_ids(job: Path) -> dict[str, set[str]]:
    table = pd.read_csv(job / SPLIT, dtype={"id": str, "split": str}, keep_default_na=False)
    return {str(name): set(rows["id"]) for name, rows in table.groupby("split")}


def _check_splits(group: FoldGroup) -> tuple[list[str], str | None]:
    """The training images (train and val of every fold, which must agree) and, when the
    folds' test split is shared, None; else the reason the fold ensemble cannot be made."""
    splits = {fold: _split_ids(job) for fold, job in sorted(group.jobs.items())}
    pools = {fold: s.get("train", set()) | s.get("val", set()) for fold, s in splits.items()}
    first = next(iter(pools.values()))
    for fold, pool in pools.items():
        if pool != first:
            raise FgsslError(
                f"fold {fold}'s training images differ from fold 0's ({len(pool ^ first)} "
                "images in one only): the folds were drawn from other data or another seed"
            )
    reason = None
    if any(s.get("test", set()) == s.get("val", set()) for s in splits.values()):
        reason = (
            "each fold's test split is its validation fold (no test split was held out: set "
            "data.test_fraction, or use a dataset's official test set)"
        )
    return sorted(first), reason


def _read(group: FoldGroup, split: str) -> list[ScoredTable]:
    return [
        read_prediction_table(RunDir(job).predictions(split))
        for _, job in sorted(group.jobs.items())
    ]


def cross_validate(group: FoldGroup) -> tuple[dict[str, Any], dict[str, ScoredTable]]:
    """The group's entry of ``cross_validation.json`` (``out_of_fold`` and ``fold_ensemble``:
    scores with intervals, or null with the ``..._reason``) and the tables it scored."""
    entry: dict[str, Any] = {
        "configuration": group.configuration,
        "seed": group.seed,
        "folds": group.folds,
        "jobs": {str(fold): job.name for fold, job in sorted(group.jobs.items())},
        "out_of_fold": None,
        "fold_ensemble": None,
    }
    tables: dict[str, ScoredTable] = {}
    if group.problems:
        entry["out_of_fold_reason"] = entry["fold_ensemble_reason"] = "; ".join(group.problems)
        return entry, tables
    first = group.jobs[0]
    config = OmegaConf.load(first / CONFIG)
    results = json.loads((first / RESULTS).read_text())
    ordinal = bool(results.get("ordinal", "kappa" in results.get("test", {}).get("combined", {})))
    settings = bootstrap_settings(config)  # type: ignore[arg-type]
    try:
        pool, no_ensemble = _check_splits(group)
    except (FgsslError, OSError) as error:
        entry["out_of_fold_reason"] = entry["fold_ensemble_reason"] = str(error)
        return entry, tables
    try:
        tables["oof"] = out_of_fold(_read(group, "val"), pool)
        entry["out_of_fold"] = score_predictions(
            tables["oof"], ordinal=ordinal, settings=settings, split="out_of_fold"
        )
    except (FgsslError, OSError) as error:
        entry["out_of_fold_reason"] = str(error)
    try:
        if no_ensemble is not None:
            raise FgsslError(no_ensemble)
        tables["ensemble"] = fold_ensemble(_read(group, "test"))
        entry["fold_ensemble"] = score_predictions(
            tables["ensemble"], ordinal=ordinal, settings=settings, split="test"
        )
        entry["fold_ensemble"]["members"] = list(entry["jobs"].values())
        entry["fold_ensemble"]["combine"] = "mean of the folds' class probabilities"
    except (FgsslError, OSError) as error:
        entry["fold_ensemble_reason"] = str(error)
    return entry, tables


_FILES = {"oof": "oof_predictions", "ensemble": "fold_ensemble_test"}


def write_fold_report(
    multirun_dir: Path, out_dir: Path, runs: pd.DataFrame
) -> tuple[str, dict[str, Path]]:
    """Score every cross-validation of the sweep (:func:`fold_groups`, :func:`cross_validate`)
    and write ``cross_validation.json`` and the joined tables into ``out_dir`` (with a
    ``_<n>`` suffix per group when there are several). Returns the Markdown section for
    ``report.md`` ("" and no file when no group has two folds: the sweep is not over the
    folds) and the paths by name."""
    groups = fold_groups(multirun_dir, runs)
    if not any(len(group.jobs) > 1 for group in groups):  # no sweep over the folds
        return "", {}
    entries, paths = [], {}
    for number, group in enumerate(groups, 1):
        entry, tables = cross_validate(group)
        suffix = "" if len(groups) == 1 else f"_{number}"
        for name, table in tables.items():
            path = out_dir / f"{_FILES[name]}{suffix}.csv"
            rows = prediction_table(table.ids, table.labels, table.probabilities, table.class_names)
            paths[f"{_FILES[name]}{suffix}"] = write_csv_atomically(path, rows, exact=True)
            entry[f"{_FILES[name]}_csv"] = path.name
        for what in ("out_of_fold", "fold_ensemble"):
            if entry[what] is None:
                log.warning(
                    "cross-validation `%s` (seed %s): no %s: %s",
                    group.configuration,
                    group.seed,
                    what.replace("_", "-"),
                    entry[f"{what}_reason"],
                )
        entries.append(entry)
    paths["cross_validation"] = write_text_atomically(
        out_dir / REPORT_JSON, json.dumps({"groups": entries}, indent=2, allow_nan=False) + "\n"
    )
    return fold_markdown(entries, runs), paths


def _official(runs: pd.DataFrame) -> str:
    monitor = str(runs["monitor"].dropna().iloc[0]) if runs["monitor"].notna().any() else ""
    return monitor.rsplit("/", 1)[-1] if monitor.startswith("val/") else "acc"


def _scored_cell(section: dict[str, Any] | None, metric: str) -> str:
    if section is None:
        return "–"
    value = section["metrics"].get(metric)
    if value is None:
        return "null"
    interval = section["intervals"].get(
        "test" if "test" in section["intervals"] else "out_of_fold", {}
    )
    bounds = interval.get("combined", {}).get(metric, {})
    if bounds.get("low") is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{bounds['low']:.3f}, {bounds['high']:.3f}]"


def _folds_cell(runs: pd.DataFrame, jobs: list[str], metric: str) -> str:
    column = f"test/combined/{metric}"
    if column not in runs.columns:
        return "–"
    values = runs.loc[runs["job"].astype(str).isin(jobs), column].dropna()
    if values.empty:
        return "–"
    spread = "" if len(values) < 2 else f" ± {values.std(ddof=1):.3f}"
    return f"{values.mean():.3f}{spread}" + (
        "" if len(values) == len(jobs) else f" ({len(values)} of {len(jobs)})"
    )


def fold_markdown(entries: list[dict[str, Any]], runs: pd.DataFrame) -> str:
    """The "Cross-validation" section of ``report.md``: per group, each metric out of fold,
    of the fold ensemble on the test split (with their bootstrap intervals) and the folds'
    own test mean ± sample sd, then the reasons of what could not be scored."""
    official = _official(runs)
    lines = [
        "## Cross-validation",
        "",
        "Out-of-fold: each training image scored by the fold that held it out. Fold "
        "ensemble: the mean of the folds' class probabilities on their shared test split. "
        "Folds' own test: mean ± sample sd over the folds. [low, high]: bootstrap interval "
        f"(`{REPORT_JSON}`). *: the official metric.",
    ]
    for entry in entries:
        sections = [entry["out_of_fold"], entry["fold_ensemble"]]
        images = ["" if s is None else f", {s['images']} images" for s in sections]
        lines += [
            "",
            f"`{entry['configuration']}`, seed {entry['seed']}, {entry['folds']} folds "
            f"(jobs {', '.join(entry['jobs'].values())})",
            "",
            f"| metric | out-of-fold{images[0]} | fold ensemble, test{images[1]} "
            "| folds' own test |",
            "|---|---|---|---|",
        ]
        names = next((list(s["metrics"]) for s in sections if s is not None), [official])
        for name in names:
            label = f"{name} *" if name == official else name
            cells = [_scored_cell(s, name) for s in sections]
            lines.append(
                f"| {label} | {cells[0]} | {cells[1]} | "
                f"{_folds_cell(runs, list(entry['jobs'].values()), name)} |"
            )
        for what in ("out_of_fold", "fold_ensemble"):
            if entry[what] is None:
                reason = entry[f"{what}_reason"].replace("|", r"\|")
                lines += ["", f"No {what.replace('_', '-')}: {reason}"]
    return "\n".join(lines)
