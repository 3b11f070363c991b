"""``report.html`` of a run directory: one self-contained page (:mod:`fgssl.plots.html`:
figures embedded, no script, no network); a sweep's page is :mod:`fgssl.run.sweep_html`.

A run's page shows its summary, the test metrics of both heads with their bootstrap
intervals, per-class precision and recall (from the confusion matrices), the confusion
matrices, calibration, the referable-DR view (graded DR data), the training curves, the
jigsaw schedule, the Grad-CAM panels, the SSL evaluation (after a pretrain phase) and the
config. A part the run did not write is shown as a note saying so, never left out silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fgssl.metrics import METRIC_DESCRIPTIONS
from fgssl.plots.html import HtmlPage, Section
from fgssl.run.sweep_html import write_sweep_html
from fgssl.rundir import RELIABILITY_DIAGRAM, REPORT_HTML, RunDir

__all__ = ["RUN_SECTIONS", "write_run_html", "write_sweep_html"]  # the sweep page: sweep_html

RUN_SECTIONS = (
    "summary",
    "metrics",
    "per-class",
    "confusion",
    "calibration",
    "curves",
    "jigsaw",
    "gradcam",
    "config",
)
"""The sections every run page has (plus ``screening`` and ``ssl-eval`` when they apply)."""

_FIGURES = {
    "confusion": ("confusion_matrix.png", "Confusion matrices"),
    "calibration": (RELIABILITY_DIAGRAM, "Reliability diagram"),
    "curves": ("training_curves.png", "Training curves"),
    "jigsaw": ("jigsaw_schedule.png", "Jigsaw schedule"),
    "gradcam": ("gradcam.png", "Grad-CAM"),
}
_MISSING_FIGURE = "not written (figures.enabled=false, or drawing it failed: see the run's log)"


def _interval_text(interval: Mapping[str, Any] | None) -> str:
    if not interval:
        return "–"
    low, high = interval.get("low"), interval.get("high")
    if low is None or high is None:
        return f"null ({interval.get('reason', 'undefined')})"
    undefined = interval.get("undefined_resamples") or 0
    text = f"{low:.4f} – {high:.4f}"
    return f"{text} ({undefined} undefined resamples left out)" if undefined else text


def _figure(section: Section, run_dir: Path, name: str) -> None:
    file, alt = _FIGURES[name]
    if (run_dir / file).is_file():
        section.image(run_dir / file, alt)
    else:
        section.text(f"{file}: {_MISSING_FIGURE}", note=True)


def _metrics(page: HtmlPage, results: Mapping[str, Any]) -> None:
    section = page.section("Test metrics", "metrics")
    test = results.get("test") or {}
    intervals = (results.get("intervals") or {}).get("test") or {}
    heads = [head for head, values in test.items() if isinstance(values, Mapping)]
    if not heads:
        section.text("results.json holds no test metrics", note=True)
        return
    settings = (results.get("intervals") or {}).get("settings")
    confidence = f"{settings['confidence']:.0%}" if settings else "95%"
    names = list(dict.fromkeys(n for h in heads for n in test[h]))
    header = ["metric", *(f"{h}{x}" for h in heads for x in ("", f" {confidence} interval"))]
    rows = [
        [
            f"{name} ({METRIC_DESCRIPTIONS.get(name, name)})",
            *(
                cell
                for h in heads
                for cell in (test[h].get(name), _interval_text(intervals.get(h, {}).get(name)))
            ),
        ]
        for name in names
    ]
    section.table(header, rows)
    if settings:
        section.text(
            f"Intervals: {settings['method']}, {settings['resamples']} resamples, seed "
            f"{settings['seed']}, from the per-image test predictions.",
            note=True,
        )
    else:
        section.text("results.json holds no intervals (a run of an older fgssl)", note=True)
    if isinstance(test.get("loss"), int | float):
        section.text(f"test loss (cross-entropy of the concat head): {test['loss']:.4f}")
    monitor = results.get("monitor")
    if monitor:
        section.text(f"Checkpoint chosen by {monitor}: {results.get('best_val_score')}")


def _per_class(page: HtmlPage, results: Mapping[str, Any]) -> None:
    section = page.section("Per class", "per-class")
    names = list(results.get("class_names") or [])
    confusion = results.get("confusion_matrix") or {}
    if not names or not confusion:
        section.text("results.json holds no confusion matrix", note=True)
        return
    for head, matrix in confusion.items():
        rows = []
        for c, name in enumerate(names):
            support = sum(matrix[c])
            predicted = sum(row[c] for row in matrix)
            rows.append(
                [
                    name,
                    matrix[c][c] / predicted if predicted else None,
                    matrix[c][c] / support if support else None,
                    support,
                ]
            )
        section.table(["class", "precision", "recall", "support"], rows, caption=head)
    section.text(
        "null: a class never predicted has no precision, one without test images no recall.",
        note=True,
    )


def _calibration(page: HtmlPage, results: Mapping[str, Any], run_dir: Path) -> None:
    section = page.section("Calibration", "calibration")
    calibration = results.get("calibration")
    if calibration:
        intervals = (results.get("intervals") or {}).get("test") or {}
        rows = [
            [head, values.get("ece"), _interval_text(intervals.get(head, {}).get("ece"))]
            for head, values in (calibration.get("heads") or {}).items()
        ]
        section.table(["head", "ECE", "interval"], rows)
        section.text(str(calibration.get("binning", "")), note=True)
    else:
        section.text("results.json holds no calibration", note=True)
    _figure(section, run_dir, "calibration")


def _screening(page: HtmlPage, results: Mapping[str, Any]) -> None:
    screening = results.get("screening")
    if not screening:
        return
    section = page.section("Referable DR screening", "screening")
    section.text(
        f"{screening['definition']}; prediction: {screening['prediction']}; score: "
        f"{screening['score']}. {screening['referable_images']} referable and "
        f"{screening['non_referable_images']} non-referable test images."
    )
    rows = [
        [name, value, _interval_text(screening["intervals"].get(name))]
        for name, value in screening["metrics"].items()
    ]
    section.table(["metric", "value", "interval"], rows)


def _ssl_eval(page: HtmlPage, results: Mapping[str, Any]) -> None:
    ssl = results.get("ssl_eval")
    if not ssl:
        return
    section = page.section("Frozen pretrained features", "ssl-eval")
    protocols = {k: v for k, v in ssl.items() if isinstance(v, Mapping)}
    names = list(dict.fromkeys(n for v in protocols.values() for n in v))
    section.table(
        ["metric", *protocols], [[n, *(p.get(n) for p in protocols.values())] for n in names]
    )


def write_run_html(
    run_dir: str | os.PathLike[str], path: str | os.PathLike[str] | None = None
) -> Path:
    """Write the run's page (``<run dir>/report.html`` unless ``path``) from its
    results.json, figures and config.yaml; returns its path."""
    run = RunDir(run_dir)
    results: dict[str, Any] = json.loads(run.results.read_text()) if run.results.is_file() else {}
    page = HtmlPage(f"fgssl run {run.root.name}", subtitle=str(run.root.resolve()))
    summary = page.section("Summary", "summary")
    if not results:
        summary.text("results.json is missing: the run has not finished its test", note=True)
    timings = results.get("timings") or {}
    summary.table(
        ["item", "value"],
        [
            ["classes", ", ".join(results.get("class_names") or [])],
            ["monitor", results.get("monitor")],
            ["precision of the test", results.get("precision")],
            ["best validation score", results.get("best_val_score")],
            ["best checkpoint", results.get("best_checkpoint")],
            *([name, f"{seconds:.0f} s"] for name, seconds in timings.items()),
        ],
    )
    _metrics(page, results)
    _per_class(page, results)
    _figure(page.section("Confusion matrices", "confusion"), run.root, "confusion")
    _calibration(page, results, run.root)
    _screening(page, results)
    _figure(page.section("Training curves", "curves"), run.root, "curves")
    _figure(page.section("Jigsaw schedule", "jigsaw"), run.root, "jigsaw")
    _figure(page.section("Grad-CAM", "gradcam"), run.root, "gradcam")
    _ssl_eval(page, results)
    config = page.section("Config", "config")
    if run.config.is_file():
        config.pre(run.config.read_text())
    else:
        config.text("config.yaml is missing", note=True)
    return page.write(path or run.root / REPORT_HTML)
