"""What fgssl-predict does with the images it could not predict: listed on stderr and in
``<output>_failed.csv``, the others still predicted (exit status 1); none predicted at all
is an error, and no predictions file is written."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from fgssl.atomic import write_csv_atomically
from fgssl.errors import DataNotFoundError, ImageReadError
from fgssl.evaluation.predict import NO_FILE, Predictions

__all__ = ["SHOWN_FAILURES", "report_failures", "require_some"]

PROG = "fgssl-predict"
SHOWN_FAILURES = 20


def require_some(predictions: Predictions, output: Path) -> None:
    """Raise (no predictions CSV is written) when no image could be predicted, naming the
    first failure; all of them are written to ``<output>_failed.csv``."""
    if len(predictions.table) or not predictions.failures:
        return
    failed_csv = _write_failures(predictions, output)
    image_id, reason = predictions.failures[0]
    error = (
        DataNotFoundError
        if all(r.startswith(NO_FILE) for _, r in predictions.failures)
        else ImageReadError
    )
    raise error(
        f"none of the {len(predictions.failures)} images could be predicted, so no "
        f"predictions are written (all listed in {failed_csv}), e.g. {image_id!r}: {reason}"
    )


def _write_failures(predictions: Predictions, output: Path) -> Path:
    failed_csv = output.with_name(f"{output.stem}_failed.csv")
    failed_csv.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomically(failed_csv, pd.DataFrame(predictions.failures, columns=["id", "reason"]))
    return failed_csv


def report_failures(predictions: Predictions, output: Path) -> int:
    """0 when every image was predicted; else 1, the unread images listed on stderr (the
    first :data:`SHOWN_FAILURES`) and in ``<output>_failed.csv``."""
    if not predictions.failures:
        return 0
    failed_csv = _write_failures(predictions, output)
    print(
        f"{PROG}: error: {len(predictions.failures)} image(s) could not be read and were not "
        f"predicted (all listed in {failed_csv}):",
        file=sys.stderr,
    )
    for image_id, reason in predictions.failures[:SHOWN_FAILURES]:
        print(f"  {image_id}: {reason}", file=sys.stderr)
    if len(predictions.failures) > SHOWN_FAILURES:
        print(f"  ... and {len(predictions.failures) - SHOWN_FAILURES} more", file=sys.stderr)
    return 1
