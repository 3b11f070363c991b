"""Results tables of a Hydra multirun: each configuration's metrics, mean ± std over seeds
(the runs themselves: :mod:`fgssl.run.sweep_runs`)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fgssl.atomic import write_csv_atomically, write_text_atomically
from fgssl.errors import DataLayoutError, DataNotFoundError
from fgssl.run.failures import FailedJob, read_failures
from fgssl.run.fold_report import write_fold_report
from fgssl.run.sweep_html import write_sweep_html
from fgssl.run.sweep_runs import collect_runs, unquoted
from fgssl.rundir import REPORT_HTML

__all__ = [
    "add_run_intervals",
    "collect_runs",
    "default_metrics",
    "failures_markdown",
    "resolve_metrics",
    "summarize",
    "to_markdown",
    "write_report",
]

log = logging.getLogger(__name__)


def default_metrics(runs: pd.DataFrame) -> list[str]:
    """The official metric (from the runs' monitor) of both heads (and, for kappa, the
    combined prediction's ``kappa_thresholded``), then accuracy, balanced
    accuracy, macro F1 and AUROC of the combined prediction, the linear-probe and k-NN
    official metric when any run has them, and the wall time."""
    monitor = str(runs["monitor"].dropna().iloc[0]) if runs["monitor"].notna().any() else ""
    official = monitor.rsplit("/", 1)[-1] if monitor.startswith("val/") else "acc"
    candidates = [
        f"test/combined/{official}",
        f"test/concat/{official}",
        f"test/combined/{official}_thresholded",  # graded runs' ordinal thresholds
        *(f"test/combined/{m}" for m in ("acc", "balanced_acc", "f1", "auroc") if m != official),
        f"ssl_eval/linear_probe/{official}",
        f"ssl_eval/knn/{official}",
        "timings/total_seconds",
    ]
    return [c for c in candidates if c in runs.columns]


def resolve_metrics(runs: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Column names of ``names``; ``combined/kappa`` is short for ``test/combined/kappa``."""
    resolved = []
    for name in names:
        column = name if name in runs.columns else f"test/{name}"
        if column not in runs.columns:
            numeric = [c for c in runs.columns if c not in ("job", "overrides", "seed", "monitor")]
            raise DataLayoutError(
                f"no metric {name!r} in the runs' results.json: choose from {numeric}"
            )
        resolved.append(column)
    return resolved


def summarize(runs: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per configuration (in job order): ``configuration``, ``seeds`` (the number of
    runs) and, per metric, ``<metric> mean``, ``<metric> std`` (sample standard deviation,
    ddof=1; NaN for a single value) and ``<metric> n`` (the runs that have a value). Runs
    where a metric is missing or undefined (null) are left out of its statistics, never
    counted as 0."""
    grouped = runs.groupby("configuration", sort=False)
    table = pd.DataFrame({"seeds": grouped.size()})
    for metric in metrics:
        table[f"{metric} mean"] = grouped[metric].mean()
        table[f"{metric} std"] = grouped[metric].std(ddof=1)
        table[f"{metric} n"] = grouped[metric].count()
    return table.reset_index()


def _cell(
    mean: float, std: float, count: int, runs: int, seconds: bool, interval: tuple[float, float]
) -> str:
    if count == 0 or math.isnan(mean):
        return "–"
    digits = 0 if seconds else 3
    text = f"{mean:.{digits}f}"
    text = text if math.isnan(std) else f"{text} ± {std:.{digits}f}"
    if not any(math.isnan(bound) for bound in interval):
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text if count == runs else f"{text} ({count} of {runs})"


def add_run_intervals(summary: pd.DataFrame, runs: pd.DataFrame, metrics: Sequence[str]) -> None:
    """``<metric> low`` and ``<metric> high`` columns of ``summary``: the bootstrap interval
    (results.json's ``intervals.test...``) of the one run of a configuration; NaN where a
    configuration has several runs (their spread is the std) or the interval is undefined."""
    for metric in metrics:
        for bound in ("low", "high"):
            column = f"intervals/{metric}/{bound}"
            values = []
            for record in summary.to_dict("records"):
                rows = runs[runs["configuration"] == record["configuration"]]
                single = len(rows) == 1 and column in runs.columns
                values.append(float(rows[column].iloc[0]) if single else math.nan)
            summary[f"{metric} {bound}"] = values


def _label(metric: str) -> str:
    if metric == "timings/total_seconds":
        return "wall time (s)"
    return metric.removeprefix("test/")


def to_markdown(summary: pd.DataFrame, metrics: Sequence[str]) -> str:
    """A Markdown table: one row per configuration, ``mean ± std`` cells (of the runs that
    have a value: ``(k of n)`` when only k of them do; ``–`` when none does)."""
    header = ["configuration", "seeds", *(_label(m) for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary.to_dict("records"):
        cells = [f"`{row['configuration']}`", str(row["seeds"])]
        cells += [
            _cell(
                row[f"{m} mean"],
                row[f"{m} std"],
                int(row[f"{m} n"]),
                int(row["seeds"]),
                m.startswith("timings/"),
                (row.get(f"{m} low", math.nan), row.get(f"{m} high", math.nan)),
            )
            for m in metrics
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    multirun_dir: str | os.PathLike[str],
    *,
    metrics: Sequence[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` (mean and std per configuration, and the interval
    of a configuration's only run), ``runs.csv`` (one row per job) and ``report.html`` (the
    table and each metric against each swept key) for a multirun directory; returns their
    paths by name. A fold sweep (jobs with ``data.fold``) adds its cross-validation:
    ``cross_validation.json``, the out-of-fold and fold-ensemble tables and a section of
    ``report.md`` (:mod:`fgssl.run.fold_report`).

    ``report.md`` also lists the jobs that failed with one of fgssl's errors and their
    reason; when every job failed, it is the only file written."""
    failed = read_failures(multirun_dir)
    try:
        runs = collect_runs(multirun_dir)
    except DataNotFoundError:
        if not failed:
            raise
        return _write_failures_only(multirun_dir, output_dir, failed)
    columns = resolve_metrics(runs, metrics) if metrics else default_metrics(runs)
    summary = summarize(runs, columns)
    add_run_intervals(summary, runs, columns)
    out = Path(output_dir or multirun_dir)
    out.mkdir(parents=True, exist_ok=True)
    common = runs.attrs["common_overrides"]
    folds_text, fold_paths = write_fold_report(Path(multirun_dir).expanduser(), out, runs)
    text = [
        f"Results of `{Path(multirun_dir)}`: test metrics, mean ± sample standard deviation "
        "over seeds.",
        f"Common overrides: `{' '.join(common)}`." if common else "",
        "",
        to_markdown(summary, columns),
        "",
        "–: no run has a value; (k of n): only k of the n runs have one (the metric is "
        "undefined, null, or missing in the others); [low, high]: the bootstrap interval of "
        "a configuration's only run (results.json's intervals).",
        "",
        *([folds_text, ""] if folds_text else []),
        *([failures_markdown(failed, common=common), ""] if failed else []),
    ]
    paths = {"markdown": out / "report.md", "csv": out / "report.csv", "runs": out / "runs.csv"}
    paths.update(fold_paths)
    write_text_atomically(paths["markdown"], "\n".join(text))
    write_csv_atomically(paths["csv"], summary)
    write_csv_atomically(paths["runs"], runs.drop(columns=["overrides"]))
    paths["html"] = write_sweep_html(
        runs,
        summary,
        columns,
        out / REPORT_HTML,
        title=f"fgssl sweep {Path(multirun_dir).name}",
        notes=[
            *([folds_text] if folds_text else []),
            *([failures_markdown(failed, common=common)] if failed else []),
        ],
    )
    return paths


def failures_markdown(failed: Sequence[FailedJob], common: Sequence[str] = ()) -> str:
    """A Markdown section listing the failed jobs (see :mod:`fgssl.run.failures`) with their
    overrides (less those in ``common``, as the results table shows them) and one-line
    reason."""
    lines = [
        f"Failed jobs ({len(failed)}; not in the results):",
        "",
        "| job | overrides | error |",
        "|---|---|---|",
    ]
    for job in failed:
        reason = f"{job.type}: {job.error}" if job.type else job.error
        reason = reason.replace("|", r"\|")  # a literal bar in a table cell
        overrides = [o for o in map(unquoted, job.overrides) if o not in common]
        lines.append(f"| {job.job} | `{' '.join(overrides)}` | {reason} |")
    return "\n".join(lines)


def _write_failures_only(
    multirun_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None,
    failed: Sequence[FailedJob],
) -> dict[str, Path]:
    out = Path(output_dir or multirun_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = f"No job of `{Path(multirun_dir)}` finished.\n\n{failures_markdown(failed)}\n"
    return {"markdown": write_text_atomically(out / "report.md", text)}
