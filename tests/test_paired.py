"""Paired comparison of two prediction tables (fgssl.evaluation.paired, fgssl-compare):
estimates and intervals against scikit-learn on the same resamples, the pairing itself,
matching by id and class name, refusals and the undefined."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score

from fgssl.cli.compare import main as compare_main
from fgssl.errors import DataLayoutError
from fgssl.evaluation.bootstrap import BootstrapSettings, bootstrap_intervals, resample_indices
from fgssl.evaluation.paired import paired_differences
from fgssl.evaluation.prediction_table import ScoredTable, prediction_table

CLASSES = ["mel", "nv", "bcc"]


def _table(ids, labels, probabilities, classes=CLASSES, path="a.csv") -> ScoredTable:
    probabilities = np.asarray(probabilities)
    return ScoredTable(Path(path), list(ids), np.asarray(labels), probabilities, classes)


def _random(seed: int, n: int = 120, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    logits = rng.normal(size=(n, classes)) + 1.5 * np.eye(classes)[labels] * rng.random((n, 1))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def test_differences_and_intervals_are_sklearns_on_the_same_resamples():
    labels, first = _random(0)
    _, second = _random(1)
    ids = [f"img{i}" for i in range(len(labels))]
    settings = BootstrapSettings(resamples=200, seed=3)
    result = paired_differences(
        _table(ids, labels, first), _table(ids, labels, second, path="b.csv"), settings=settings
    )
    a, b = first.argmax(1), second.argmax(1)
    expected = balanced_accuracy_score(labels, a) - balanced_accuracy_score(labels, b)
    assert result["balanced_acc"].difference == pytest.approx(expected)
    assert result["acc"].first == pytest.approx(accuracy_score(labels, a))
    rows = np.concatenate(list(resample_indices(labels, settings)))
    draws = [
        balanced_accuracy_score(labels[r], a[r]) - balanced_accuracy_score(labels[r], b[r])
        for r in rows
    ]
    low, high = np.quantile(draws, [0.025, 0.975])
    assert result["balanced_acc"].interval.low == pytest.approx(low)
    assert result["balanced_acc"].interval.high == pytest.approx(high)


def test_images_and_classes_are_matched_by_id_and_name():
    labels, first = _random(2)
    _, second = _random(4)
    ids = [f"img{i}" for i in range(len(labels))]
    plain = paired_differences(
        _table(ids, labels, first), _table(ids, labels, second, path="b.csv")
    )
    order = np.random.default_rng(0).permutation(len(ids))
    columns = [2, 0, 1]  # bcc, mel, nv
    remap = np.argsort(columns)
    shuffled = _table(
        [ids[i] for i in order],
        remap[labels[order]],
        second[order][:, columns],
        classes=[CLASSES[c] for c in columns],
        path="b.csv",
    )
    moved = paired_differences(_table(ids, labels, first), shuffled)
    for metric, value in plain.items():
        assert moved[metric].difference == pytest.approx(value.difference), metric
        assert moved[metric].interval.low == pytest.approx(value.interval.low), metric


def test_the_pairing_shows_a_gain_that_separate_intervals_cannot():
    # 400 images; the second run is the first with 20 more images wrong, never better.
    n = 400
    labels = np.arange(n) % 2
    right = np.ones(n, bool)
    right[:40] = False
    first_predicted = np.where(right, labels, 1 - labels)
    second_predicted = first_predicted.copy()
    worse = np.flatnonzero(right)[:20]
    second_predicted[worse] = 1 - labels[worse]
    ids = [str(i) for i in range(n)]
    first = _table(ids, labels, np.eye(2)[first_predicted] * 0.8 + 0.1, classes=["a", "b"])
    second = _table(ids, labels, np.eye(2)[second_predicted] * 0.8 + 0.1, classes=["a", "b"])
    result = paired_differences(first, second, metrics=["acc"])["acc"]
    assert result.difference == pytest.approx(20 / n)
    assert result.interval.low > 0  # never worse on any image: every resample favours it
    separate = bootstrap_intervals(
        {"first": first.probabilities, "second": second.probabilities}, labels
    )
    assert separate["first"]["acc"].low < separate["second"]["acc"].high  # overlapping


def test_a_table_against_itself_differs_by_zero_with_the_zero_width_warning():
    labels, probabilities = _random(5)
    ids = [str(i) for i in range(len(labels))]
    table = _table(ids, labels, probabilities)
    result = paired_differences(table, table, metrics=["balanced_acc", "auroc"])
    for value in result.values():
        assert value.difference == 0.0
        assert (value.interval.low, value.interval.high) == (0.0, 0.0)
        assert "same value" in value.interval.warning


def test_graded_tables_compare_their_quadratic_kappa():
    labels, first = _random(6, n=150, classes=5)
    _, second = _random(7, n=150, classes=5)
    ids = [str(i) for i in range(150)]
    grades = ["0", "1", "2", "3", "4"]
    result = paired_differences(
        _table(ids, labels, first, grades), _table(ids, labels, second, grades), ordinal=True
    )
    kappa = [cohen_kappa_score(labels, p.argmax(1), weights="quadratic") for p in (first, second)]
    assert result["kappa"].difference == pytest.approx(kappa[0] - kappa[1])


def test_an_undefined_metric_is_null_with_its_reason():
    ids = ["a", "b", "c", "d"]
    labels = np.zeros(4, np.int64)  # one class present: AUROC undefined
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    table = _table(ids, labels, probabilities, classes=["x", "y"])
    auroc = paired_differences(table, table, metrics=["auroc"])["auroc"]
    assert auroc.first is None and auroc.difference is None
    assert auroc.interval.low is None and "undefined" in auroc.interval.reason


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("ids", "do not hold the same images"),
        ("classes", "classes are matched by name"),
        ("labels", "label 1 image(s) differently"),
    ],
)
def test_other_images_classes_or_labels_are_refused_naming_both_files(change, words):
    labels, probabilities = _random(8, n=30)
    ids = [str(i) for i in range(30)]
    first = _table(ids, labels, probabilities, path="runA.csv")
    other_ids, other_labels, classes = list(ids), labels.copy(), list(CLASSES)
    if change == "ids":
        other_ids[0] = "elsewhere"
    elif change == "classes":
        classes[2] = "akiec"
    else:
        other_labels[3] = (other_labels[3] + 1) % 3
    second = _table(other_ids, other_labels, probabilities, classes, path="runB.csv")
    with pytest.raises(DataLayoutError) as error:
        paired_differences(first, second)
    assert words in str(error.value) and "runB.csv" in str(error.value)


def _run(directory: Path, labels, probabilities, classes, *, ordinal: bool) -> Path:
    (directory / "predictions").mkdir(parents=True)
    ids = [f"ISIC_{i:07d}" for i in range(len(labels))]
    prediction_table(ids, labels, probabilities, classes).to_csv(
        directory / "predictions" / "test.csv", index=False
    )
    (directory / "results.json").write_text(json.dumps({"ordinal": ordinal}))
    return directory


def test_fgssl_compare_prints_and_writes_the_paired_table(tmp_path, capsys):
    labels, first = _random(9, n=100, classes=5)
    _, second = _random(10, n=100, classes=5)
    grades = ["0", "1", "2", "3", "4"]
    a = _run(tmp_path / "a", labels, first, grades, ordinal=True)
    b = _run(tmp_path / "b", labels, second, grades, ordinal=True)
    output = tmp_path / "diff.json"
    assert compare_main([str(a), str(b), "--resamples", "100", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "| kappa |" in printed and "100 images, paired" in printed
    saved = json.loads(output.read_text())
    kappa = [cohen_kappa_score(labels, p.argmax(1), weights="quadratic") for p in (first, second)]
    assert saved["metrics"]["kappa"]["difference"] == pytest.approx(kappa[0] - kappa[1])
    assert saved["bootstrap"]["paired"] and saved["ordinal"]


def test_fgssl_compare_refuses_in_one_line(tmp_path, capsys):
    labels, probabilities = _random(11, n=30)
    a = _run(tmp_path / "a", labels, probabilities, CLASSES, ordinal=False)
    assert compare_main([str(a), str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "holds no test predictions" in error
    assert compare_main([str(a), str(a), "--metrics", "kappa"]) == 2
    assert "--metrics" in capsys.readouterr().err
    assert compare_main([str(a), str(a), "--resamples", "0"]) == 2
    assert "--resamples" in capsys.readouterr().err
    (a / "results.json").write_text("{not json")
    assert compare_main([str(a), str(a)]) == 2
    assert "results.json" in capsys.readouterr().err
