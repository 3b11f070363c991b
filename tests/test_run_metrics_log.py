"""The metrics log of a resumed phase: trimmed to the finished epochs, then continued."""

from __future__ import annotations

import csv
from pathlib import Path

from fgssl.run.metrics_log import ContinuingCSVLogger, trim_metrics_log

# Lightning's layout: learning rates logged without an epoch as each epoch starts.
LOG = """epoch,lr,loss,step
,0.1,,0
0,,0.9,1
,0.05,,2
1,,0.7,3
,0.01,,4
2,,0.6,5
"""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_trimming_keeps_the_finished_epochs_and_their_learning_rates(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text(LOG)
    trim_metrics_log(log, last_epoch=1)
    assert [(row["epoch"], row["step"]) for row in _rows(log)] == [
        ("", "0"),
        ("0", "1"),
        ("", "2"),
        ("1", "3"),
    ]


def test_a_fresh_phase_starts_without_the_old_log(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text(LOG)
    trim_metrics_log(log, last_epoch=None)
    assert not log.exists()


def test_the_logger_appends_rows_with_new_columns_to_the_old_ones(tmp_path: Path) -> None:
    (tmp_path / "phase").mkdir()
    (tmp_path / "phase" / "metrics.csv").write_text(LOG)
    logger = ContinuingCSVLogger(save_dir=tmp_path, name="phase", version="")
    logger.log_metrics({"loss": 0.5, "acc": 0.8, "epoch": 3}, step=7)
    logger.save()
    rows = _rows(tmp_path / "phase" / "metrics.csv")
    assert len(rows) == 7 and rows[1]["loss"] == "0.9" and rows[1]["acc"] == ""
    assert (rows[-1]["loss"], rows[-1]["acc"], rows[-1]["step"]) == ("0.5", "0.8", "7")
