"""The numbers of k-fold cross-validation: out-of-fold predictions and the fold ensemble
(fgssl.evaluation.cross_validation), and the sweep report that finds fold sweeps and writes
them (fgssl.run.fold_report), checked against scikit-learn and hand-computed means."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm

from fgssl.errors import DataLayoutError
from fgssl.evaluation.cross_validation import fold_ensemble, out_of_fold, score_predictions
from fgssl.evaluation.prediction_table import (
    ScoredTable,
    prediction_table,
    read_prediction_table,
)
from fgssl.run.report import write_report

CLASSES = ["a", "b", "c"]


def table(
    ids: list[str], labels: list[int], seed: int, classes: list[str] = CLASSES
) -> ScoredTable:
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(len(classes)), size=len(ids))
    return ScoredTable(Path(f"fold{seed}.csv"), ids, np.array(labels), probabilities, classes)


def sklearn_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    predicted = probabilities.argmax(1)
    return {
        "acc": skm.accuracy_score(labels, predicted),
        "balanced_acc": skm.balanced_accuracy_score(labels, predicted),
        "f1": skm.f1_score(labels, predicted, average="macro"),
        "kappa": skm.cohen_kappa_score(labels, predicted, weights="quadratic"),
        "auroc": skm.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"),
    }


# ------------------------------------------------------------- out of fold, ensemble
def test_out_of_fold_joins_the_folds_and_scores_as_scikit_learn() -> None:
    folds = [
        table([f"i{k}_{j}" for j in range(20)], [j % 3 for j in range(20)], seed=k)
        for k in range(3)
    ]
    # the third fold lists its classes in another order: matched by name
    reordered = folds[2]
    order = [2, 0, 1]
    folds[2] = ScoredTable(
        reordered.path,
        reordered.ids,
        np.array([order.index(label) for label in reordered.labels]),
        reordered.probabilities[:, order],
        [CLASSES[i] for i in order],
    )
    pool = [i for f in folds for i in f.ids]
    joined = out_of_fold(folds, pool)
    labels = np.concatenate([f.labels for f in (*folds[:2], reordered)])
    probabilities = np.concatenate([f.probabilities for f in (*folds[:2], reordered)])
    np.testing.assert_array_equal(joined.labels, labels)
    np.testing.assert_allclose(joined.probabilities, probabilities)
    scored = score_predictions(joined, ordinal=True)
    for name, value in sklearn_scores(labels, probabilities).items():
        assert scored["metrics"][name] == pytest.approx(value, abs=1e-12), name
    interval = scored["intervals"]["test"]["combined"]["kappa"]
    assert interval["low"] <= scored["metrics"]["kappa"] <= interval["high"]
    assert scored["images"] == 60


def test_out_of_fold_refuses_an_image_twice_or_missing_or_other_classes() -> None:
    first = table(["x", "y"], [0, 1], seed=0)
    second = table(["z", "y"], [2, 1], seed=1)
    with pytest.raises(DataLayoutError, match=r"validation images of two folds, e\.g\. 'y'"):
        out_of_fold([first, second])
    third = table(["z"], [2], seed=2)
    with pytest.raises(DataLayoutError, match=r"1 never scored \(e.g. \['w'\]\)"):
        out_of_fold([first, third], pool=["x", "y", "z", "w"])
    other = table(["z"], [0], seed=3, classes=["a", "b", "d"])
    with pytest.raises(DataLayoutError, match="are not those of the other folds"):
        out_of_fold([first, other])


def test_fold_ensemble_is_the_mean_of_the_folds_image_by_image() -> None:
    """Hand computation: two folds list the same three images in different orders."""
    first = ScoredTable(
        Path("0.csv"), ["p", "q", "r"], np.array([0, 1, 2]),
        np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]), CLASSES,
    )  # fmt: skip
    second = ScoredTable(
        Path("1.csv"), ["r", "p", "q"], np.array([2, 0, 1]),
        np.array([[0.3, 0.3, 0.4], [0.2, 0.4, 0.4], [0.6, 0.2, 0.2]]), CLASSES,
    )  # fmt: skip
    ensemble = fold_ensemble([first, second])
    assert ensemble.ids == ["p", "q", "r"]
    np.testing.assert_allclose(
        ensemble.probabilities, [[0.4, 0.35, 0.25], [0.4, 0.35, 0.25], [0.2, 0.2, 0.6]]
    )
    # p: b 0.35 < a 0.4 -> a; q: a 0.4 (label b); r: c
    assert score_predictions(ensemble, ordinal=False)["metrics"]["acc"] == pytest.approx(2 / 3)


def test_fold_ensemble_refuses_other_images_or_labels() -> None:
    first = table(["p", "q"], [0, 1], seed=0)
    with pytest.raises(DataLayoutError, match="the folds' test splits differ"):
        fold_ensemble([first, table(["p", "s"], [0, 1], seed=1)])
    with pytest.raises(DataLayoutError, match="labels image 'q' otherwise"):
        fold_ensemble([first, table(["p", "q"], [0, 2], seed=1)])


def test_prediction_tables_read_back_and_bad_ones_are_named(tmp_path: Path) -> None:
    scored = table(["x", "007"], [0, 2], seed=0)
    path = tmp_path / "p.csv"
    prediction_table(scored.ids, scored.labels, scored.probabilities, CLASSES).to_csv(
        path, index=False
    )
    back = read_prediction_table(path)
    assert back.ids == ["x", "007"] and back.class_names == CLASSES  # ids stay strings
    np.testing.assert_allclose(back.probabilities, scored.probabilities)
    path.write_text("id,label,prob_a\nx,0,0.5\nx,0,0.5\n")
    with pytest.raises(DataLayoutError, match="lists 1 id\\(s\\) twice"):
        read_prediction_table(path)
    path.write_text("id,label,prob_a\nx,3,0.5\n")
    with pytest.raises(DataLayoutError, match=r"labels must be class indices 0\.\.0"):
        read_prediction_table(path)


# ------------------------------------------------------------------- the sweep report
def write_job(
    sweep: Path,
    job: int,
    fold: int | None,
    splits: dict[str, list[str]],
    labels: dict[str, int],
    seed: int = 0,
    extra: tuple[str, ...] = (),
) -> None:
    """A finished fgssl-train job as the report reads it: overrides, config, results,
    split.csv and its predictions (seeded probabilities)."""
    root = sweep / str(job)
    (root / ".hydra").mkdir(parents=True)
    overrides = [*extra, *([f"data.fold={fold}"] if fold is not None else []), f"seed={seed}"]
    (root / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"seed": seed, "data": {"fold": fold, "folds": 3}, "intervals": {"resamples": 200}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [(i, labels[i], s) for s in ("train", "val", "test") for i in splits[s]]
    pd.DataFrame(rows, columns=["id", "label", "split"]).to_csv(root / "split.csv", index=False)
    rng = np.random.default_rng(100 * seed + job)
    acc = {}
    for split in ("val", "test"):
        ids = splits[split]
        probabilities = rng.dirichlet(np.ones(3), size=len(ids))
        folder = root / "predictions"
        folder.mkdir(exist_ok=True)
        y = np.array([labels[i] for i in ids])
        prediction_table(ids, y, probabilities, CLASSES).to_csv(
            folder / f"{split}.csv", index=False
        )
        acc[split] = float((probabilities.argmax(1) == y).mean())
    results = {
        "monitor": "val/combined/kappa",
        "class_names": CLASSES,
        "ordinal": True,
        "test": {"combined": {"acc": acc["test"], "kappa": 0.5}},
    }
    (root / "results.json").write_text(json.dumps(results))


def fold_sweep(
    sweep: Path, *, shared_test: bool = True, folds: tuple[int, ...] = (0, 1, 2), seed: int = 0
) -> None:
    """Jobs of folds ``folds`` of 3 (job numbers from 3 x seed) of 24 images: 6 test images
    (``shared_test``; else each fold tests on its validation fold), 18 in the folds."""
    ids = [f"img{i:02d}" for i in range(24)]
    labels = {i: n % 3 for n, i in enumerate(ids)}
    test = ids[:6] if shared_test else None
    pool = ids[6:]
    parts = [pool[(k + seed) % 3 :: 3] for k in range(3)]
    for job, k in enumerate(folds, start=3 * seed):
        val = parts[k]
        splits = {"train": [i for i in pool if i not in val], "val": val, "test": test or val}
        write_job(sweep, job, k, splits, labels, seed=seed)


def read_back(sweep: Path, split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    tables = [
        read_prediction_table(sweep / str(j) / "predictions" / f"{split}.csv") for j in range(3)
    ]
    return (
        [i for t in tables for i in t.ids],
        np.concatenate([t.labels for t in tables]),
        np.concatenate([t.probabilities for t in tables]),
    )


def test_the_report_of_a_fold_sweep_scores_out_of_fold_and_the_ensemble(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    fold_sweep(sweep)
    paths = write_report(sweep)
    report = json.loads(paths["cross_validation"].read_text())["groups"]
    assert len(report) == 1 and report[0]["jobs"] == {"0": "0", "1": "1", "2": "2"}
    ids, labels, probabilities = read_back(sweep, "val")
    oof = report[0]["out_of_fold"]
    assert oof["images"] == 18
    for name, value in sklearn_scores(labels, probabilities).items():
        assert oof["metrics"][name] == pytest.approx(value, abs=1e-12), name
    written = read_prediction_table(sweep / "oof_predictions.csv")
    assert written.ids == ids
    # the ensemble: the mean of the three folds' test probabilities, by hand
    tables = [read_prediction_table(sweep / str(j) / "predictions" / "test.csv") for j in range(3)]
    mean = sum(t.probabilities for t in tables) / 3
    ensemble = report[0]["fold_ensemble"]
    assert ensemble["members"] == ["0", "1", "2"]
    expected = sklearn_scores(tables[0].labels, mean)
    assert ensemble["metrics"]["acc"] == pytest.approx(expected["acc"])
    assert ensemble["metrics"]["kappa"] == pytest.approx(expected["kappa"])
    np.testing.assert_allclose(
        read_prediction_table(sweep / "fold_ensemble_test.csv").probabilities, mean
    )
    markdown = (sweep / "report.md").read_text()
    assert "## Cross-validation" in markdown
    assert "## Cross-validation" in paths["html"].read_text()
    assert f"| kappa * | {expected_cell(oof, 'out_of_fold', 'kappa')} |" in markdown
    folds_acc = pd.Series(
        [
            json.loads((sweep / str(j) / "results.json").read_text())["test"]["combined"]["acc"]
            for j in range(3)
        ]
    )
    assert f"{folds_acc.mean():.3f} ± {folds_acc.std(ddof=1):.3f} |" in markdown


def expected_cell(section: dict, split: str, metric: str) -> str:
    bounds = section["intervals"][split]["combined"][metric]
    return f"{section['metrics'][metric]:.3f} [{bounds['low']:.3f}, {bounds['high']:.3f}]"


def test_a_missing_fold_or_test_splits_that_differ_are_reasons_not_numbers(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "missing"
    fold_sweep(sweep, folds=(0, 2))
    entry = json.loads(write_report(sweep)["cross_validation"].read_text())["groups"][0]
    assert entry["out_of_fold"] is None and entry["fold_ensemble"] is None
    assert "2 of 3 folds finished (no results for fold(s) [1])" in entry["out_of_fold_reason"]
    assert "No out-of-fold: 2 of 3 folds finished" in (sweep / "report.md").read_text()
    sweep = tmp_path / "no-test"
    fold_sweep(sweep, shared_test=False)
    entry = json.loads(write_report(sweep)["cross_validation"].read_text())["groups"][0]
    assert entry["out_of_fold"]["images"] == 18
    assert entry["fold_ensemble"] is None
    assert "each fold's test split is its validation fold" in entry["fold_ensemble_reason"]
    assert not (sweep / "fold_ensemble_test.csv").exists()


def test_folds_of_other_data_are_refused(tmp_path: Path) -> None:
    """A fold whose validation images overlap another's (another seed's draw)."""
    sweep = tmp_path / "sweep"
    fold_sweep(sweep)
    other = read_prediction_table(sweep / "0" / "predictions" / "val.csv")
    extra = pd.read_csv(sweep / "1" / "predictions" / "val.csv", dtype={"id": str})
    extra.loc[0, "id"] = other.ids[0]  # fold 1 now also scores one of fold 0's images
    extra.to_csv(sweep / "1" / "predictions" / "val.csv", index=False)
    entry = json.loads(write_report(sweep)["cross_validation"].read_text())["groups"][0]
    assert entry["out_of_fold"] is None
    assert f"e.g. {other.ids[0]!r}" in entry["out_of_fold_reason"]
    assert entry["fold_ensemble"] is not None  # the test split is still shared


def test_each_seed_of_a_fold_sweep_is_its_own_cross_validation(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    fold_sweep(sweep, seed=0)
    fold_sweep(sweep, seed=1)
    paths = write_report(sweep)
    groups = json.loads(paths["cross_validation"].read_text())["groups"]
    assert [(g["seed"], g["jobs"]) for g in groups] == [
        ("0", {"0": "0", "1": "1", "2": "2"}),
        ("1", {"0": "3", "1": "4", "2": "5"}),
    ]
    assert all(g["out_of_fold"]["images"] == 18 for g in groups)
    assert {"oof_predictions_1", "oof_predictions_2", "fold_ensemble_test_2"} <= set(paths)


def test_a_sweep_without_folds_has_no_cross_validation(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    ids = [f"i{n}" for n in range(9)]
    splits = {"train": ids[:5], "val": ids[5:7], "test": ids[7:]}
    for job, seed in enumerate((0, 1)):
        write_job(sweep, job, None, splits, {i: n % 3 for n, i in enumerate(ids)}, seed=seed)
    paths = write_report(sweep)
    assert "cross_validation" not in paths
    assert "Cross-validation" not in (sweep / "report.md").read_text()
