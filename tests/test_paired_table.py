"""scripts/paired_table.py: the runs of one method paired with the other methods' runs of the
same setting and seed, each difference scikit-learn's, and the tally of the intervals."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from fgssl.evaluation.prediction_table import prediction_table

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "paired_table.py"
spec = importlib.util.spec_from_file_location("paired_table", SCRIPT)
assert spec is not None and spec.loader is not None
paired_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paired_table)

CLASSES = ["akiec", "bcc", "nv"]


def _run(folder: Path, labels: np.ndarray, predicted: np.ndarray) -> None:
    (folder / "predictions").mkdir(parents=True)
    probabilities = np.eye(3)[predicted] * 0.7 + 0.1
    ids = [f"ISIC_{i:07d}" for i in range(len(labels))]
    table = prediction_table(ids, labels, probabilities, CLASSES)
    table.to_csv(folder / "predictions" / "test.csv", index=False)
    (folder / "results.json").write_text(json.dumps({"ordinal": False}))


def test_pairs_by_setting_and_seed_with_sklearns_differences(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 3
    predicted = {}
    for seed in (0, 1):
        truth_kept = rng.random(300) < 0.8
        better = np.where(truth_kept, labels, (labels + 1) % 3)
        worse = better.copy()
        worse[:60] = (labels[:60] + 1) % 3  # the baseline misses 60 more images
        predicted[seed] = (better, worse)
        _run(tmp_path / f"fgssl_f0.1_s{seed}", labels, better)
        _run(tmp_path / f"baseline_f0.1_s{seed}", labels, worse)
    _run(tmp_path / "fgssl_f0.05_s0", labels, labels)  # no baseline of its setting: left out
    (tmp_path / "baseline_f0.05_s1").mkdir()
    table = paired_table.compare(tmp_path, "fgssl", ["baseline", "pmg"], ["balanced_acc"])
    assert len(table) == 2 and set(table["setting"]) == {"f0.1"}
    for row in table.itertuples():
        better, worse = predicted[row.seed]
        expected = balanced_accuracy_score(labels, better) - balanced_accuracy_score(labels, worse)
        assert np.isclose(row.difference, expected)
        assert row.verdict == "above 0"
    assert paired_table.main([str(tmp_path), "--metrics", "balanced_acc"]) == 0
    out = capsys.readouterr().out
    assert "| f0.1 | fgssl - baseline | balanced_acc | 2 |" in out and "| 2 / 0 / 0 |" in out


def test_runs_named_by_method_and_seed_alone(tmp_path: Path) -> None:
    labels = np.arange(90) % 3
    _run(tmp_path / "fgssl_s4", labels, labels)
    _run(tmp_path / "baseline_s4", labels, (labels + 1) % 3)
    (row,) = paired_table.compare(tmp_path, "fgssl", ["baseline"], ["acc"]).itertuples()
    assert (row.setting, row.seed, row.difference) == ("-", 4, 1.0)


def test_verdicts_of_intervals() -> None:
    assert paired_table._verdict(0.01, 0.2) == "above 0"
    assert paired_table._verdict(-0.01, 0.2) == "overlaps 0"
    assert paired_table._verdict(-0.3, -0.1) == "below 0"
    assert paired_table._verdict(None, None) == "undefined"
