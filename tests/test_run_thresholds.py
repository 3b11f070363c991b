"""Ordinal thresholds in a run: fitted on the validation split of the tested checkpoint,
scored by the test, kept in the checkpoint and results.json, used by fgssl-eval and
fgssl-predict; the ordinal_thresholds setting."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from fgssl.cli import eval as eval_cli
from fgssl.cli import predict as predict_cli
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.checkpoints import load_checkpoint
from fgssl.evaluation.inference import predict_probabilities
from fgssl.run.loading import load_run
from fgssl.run.thresholds import (
    fit_run_thresholds,
    log_fitted_thresholds,
    results_record,
    store_thresholds,
    validation_is_test,
    wants_thresholds,
)
from fgssl.thresholds import (
    FittedThresholds,
    HeadThresholds,
    cut_grades,
    expected_grade,
    fit_thresholds,
)
from helpers import RandomDataModule, one_thread, tiny_module, tiny_trainer

CLASSES = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]
BEST = "finetune/checkpoints/best.ckpt"

single_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def qwk(labels, predicted) -> float:
    return float(cohen_kappa_score(labels, predicted, weights="quadratic", labels=range(5)))


def test_the_run_keeps_its_thresholds_in_results_and_checkpoint(tiny_run: Path) -> None:
    results = json.loads((tiny_run / "results.json").read_text())
    record = results["ordinal_thresholds"]
    split = pd.read_csv(tiny_run / "split.csv")
    assert record["fitted_on"] == "val" and record["checkpoint"] == "best.ckpt"
    assert record["images"] == int((split["split"] == "val").sum())
    assert record["class_names"] == CLASSES and record["test_is_validation"] is False
    for head in ("combined", "concat"):
        assert "kappa_thresholded" in results["test"][head]  # beside kappa (argmax)
        cuts = record["heads"][head]["thresholds"]
        assert len(cuts) == 4 and cuts == sorted(set(cuts))
    stored = torch.load(tiny_run / BEST, weights_only=True)["fgssl"]["ordinal_thresholds"]
    assert stored == {
        k: v for k, v in record.items() if k not in ("checkpoint", "test_is_validation")
    }
    assert load_run(tiny_run).module.ordinal_thresholds == FittedThresholds.from_json(record)
    last = load_checkpoint(tiny_run / "finetune/checkpoints/last.ckpt")
    assert last.ordinal_thresholds is None  # the thresholds belong to the tested checkpoint
    # the extra validation pass logged nothing: one validation row per finetune epoch
    logged = pd.read_csv(tiny_run / "finetune/metrics.csv")["val/combined/kappa"].notna().sum()
    assert logged == 2


def test_eval_refits_the_same_thresholds_and_scores_them_like_the_test(
    run_copy: Path, capsys
) -> None:
    """fgssl-eval of the validation split gives the probabilities the run fitted on: fitting
    them again gives the stored thresholds; on the test split, kappa_thresholded is the QWK
    of predictions.csv's thresholded grades (scikit-learn) and the run's test value."""
    assert eval_cli.main([str(run_copy), "data.num_workers=0", "--split", "val"]) == 0
    val = pd.read_csv(run_copy / "eval/val/predictions.csv")
    probabilities = val[[f"prob_{c}" for c in CLASSES]].to_numpy()
    refit = fit_thresholds(probabilities, val["label"].to_numpy())
    stored = load_run(run_copy).module.ordinal_thresholds
    assert stored is not None and stored.heads["combined"].thresholds is not None
    np.testing.assert_allclose(refit.thresholds, stored.heads["combined"].thresholds, atol=1e-6)
    assert eval_cli.main([str(run_copy), "data.num_workers=0"]) == 0
    assert "kappa_thresholded" in capsys.readouterr().out
    evaluated = json.loads((run_copy / "eval/test/results.json").read_text())
    trained = json.loads((run_copy / "results.json").read_text())
    table = pd.read_csv(run_copy / "eval/test/predictions.csv")
    value = evaluated["metrics"]["combined"]["kappa_thresholded"]
    assert value == pytest.approx(qwk(table["label"], table["prediction_thresholded"]))
    assert value == pytest.approx(trained["test"]["combined"]["kappa_thresholded"], abs=1e-6)
    assert evaluated["ordinal_thresholds"]["heads"]["combined"]["thresholds"] == list(
        stored.heads["combined"].thresholds
    )


def store(run: Path, cuts: tuple[float, ...] | None, names=tuple(CLASSES)) -> None:
    heads = {"combined": HeadThresholds(cuts, None if cuts else "the labels hold one grade")}
    store_thresholds(run / BEST, FittedThresholds(names, {**heads, "concat": heads["combined"]}))


def test_eval_and_predict_cut_with_the_checkpoint_thresholds(
    run_copy: Path, aptos_root: Path, tmp_path: Path, capsys
) -> None:
    """Thresholds written into the checkpoint by hand: fgssl-eval's kappa_thresholded and
    fgssl-predict's columns and Kaggle file follow them, by scikit-learn and by hand."""
    cuts = (1.9, 2.0, 2.05, 3.0)
    store(run_copy, cuts)
    assert eval_cli.main([str(run_copy), "data.num_workers=0"]) == 0
    table = pd.read_csv(run_copy / "eval/test/predictions.csv")
    grades = table[[f"prob_{c}" for c in CLASSES]].to_numpy() @ np.arange(5)
    np.testing.assert_allclose(table["expected_grade"], grades, atol=1e-9)
    assert table["prediction_thresholded"].tolist() == cut_grades(grades, cuts).tolist()
    evaluated = json.loads((run_copy / "eval/test/results.json").read_text())
    assert evaluated["metrics"]["combined"]["kappa_thresholded"] == pytest.approx(
        qwk(table["label"], cut_grades(grades, cuts))
    )
    output, submission = tmp_path / "p.csv", tmp_path / "submission.csv"
    argv = [str(run_copy), str(aptos_root / "test.csv"), "-o", str(output), "--submission"]
    argv += [str(submission), "--image-dir", str(aptos_root / "test_images")]
    assert predict_cli.main(argv) == 0
    assert "diagnosis = prediction_thresholded" in capsys.readouterr().out
    predicted = pd.read_csv(output, dtype={"id": str})
    expected = cut_grades(predicted[[f"prob_{c}" for c in CLASSES]].to_numpy() @ np.arange(5), cuts)
    assert predicted["prediction_thresholded"].tolist() == expected.tolist()
    assert predicted["class_thresholded"].tolist() == [CLASSES[g] for g in expected]
    kaggle = pd.read_csv(submission, dtype={"id_code": str})
    assert kaggle["diagnosis"].tolist() == expected.tolist()


def test_eval_without_fitted_thresholds_reports_null_and_why(run_copy: Path, caplog) -> None:
    store(run_copy, None)
    assert eval_cli.main([str(run_copy), "data.num_workers=0"]) == 0
    evaluated = json.loads((run_copy / "eval/test/results.json").read_text())
    assert evaluated["metrics"]["combined"]["kappa_thresholded"] is None
    assert "kappa_thresholded is undefined (null)" in caplog.text
    assert "the labels hold one grade" in caplog.text
    table = pd.read_csv(run_copy / "eval/test/predictions.csv")
    assert "prediction_thresholded" not in table


def test_malformed_thresholds_in_a_checkpoint_are_refused(run_copy: Path) -> None:
    state = torch.load(run_copy / BEST, weights_only=True)
    state["fgssl"]["ordinal_thresholds"]["heads"]["combined"]["thresholds"] = [2.0, 1.0, 3, 4]
    torch.save(state, run_copy / BEST)
    with pytest.raises(CheckpointError, match=r"malformed ordinal thresholds.*not increasing"):
        load_run(run_copy)


@pytest.mark.parametrize(
    ("setting", "ordinal", "expected"),
    [("auto", True, True), ("auto", False, False), (True, True, True), (False, True, False)],
)
def test_the_setting(setting, ordinal: bool, expected: bool) -> None:
    cfg = {"ordinal_thresholds": setting}
    assert wants_thresholds(cfg, SimpleNamespace(ordinal=ordinal)) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("setting", "message"),
    [(True, "not grades"), ("yes", "expected auto, true or false"), (1, "expected auto")],
)
def test_bad_settings_are_refused(setting, message: str) -> None:
    with pytest.raises(ConfigError, match=f"ordinal_thresholds=.*{message}"):
        wants_thresholds({"ordinal_thresholds": setting}, SimpleNamespace(ordinal=False))  # type: ignore[arg-type]


def test_required_thresholds_on_ungraded_data_stop_the_run_before_its_data(
    compose_config, tmp_path: Path
) -> None:
    from fgssl.run.pipeline import run_training

    cfg = compose_config(
        "data=isic2018", f"data.root={tmp_path / 'absent'}", "ordinal_thresholds=true"
    )
    with pytest.raises(ConfigError, match="ordinal_thresholds=true, but the classes of"):
        run_training(cfg, tmp_path / "run")


def test_a_test_split_that_is_the_validation_split_is_flagged(caplog) -> None:
    """APTOS without test labels tests on the validation split: the thresholded kappa is then
    scored on the images it was fitted on, which results.json and a warning say."""
    val = pd.DataFrame({"id": ["a", "b", "c"]})
    same = SimpleNamespace(splits={"val": val, "test": val.copy()})
    other = SimpleNamespace(splits={"val": val, "test": pd.DataFrame({"id": ["d"]})})
    assert validation_is_test(same) and not validation_is_test(other)  # type: ignore[arg-type]
    fitted = FittedThresholds(tuple(CLASSES), {"combined": HeadThresholds((0.5, 1.5, 2.5, 3.5))})
    assert results_record(fitted, same, "/x/best.ckpt")["test_is_validation"] is True  # type: ignore[arg-type]
    with caplog.at_level("WARNING"):
        log_fitted_thresholds(fitted, same)  # type: ignore[arg-type]
    assert "the test split is the validation split" in caplog.text


def test_a_trainer_fits_on_the_checkpoints_validation_and_tests_with_them(
    tmp_path: Path, caplog
) -> None:
    """In a Lightning trainer: the thresholds are those fitted on the checkpoint's own
    validation probabilities (predicted again outside the trainer), and the test's
    kappa_thresholded is scikit-learn's QWK of its probabilities cut by them; a head without
    thresholds logs NaN, with a warning naming why."""
    module = tiny_module(ordinal=True, class_names=["a", "b", "c"])
    data = RandomDataModule()
    trainer = tiny_trainer(limit_train_batches=2)
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    fitted = fit_run_thresholds(trainer, module, data, str(tmp_path / "x.ckpt"))  # type: ignore[arg-type]
    again = predict_probabilities(module.net, data.val_dataloader())
    reference = fit_thresholds(again["combined"].numpy(), again["label"].numpy())
    assert fitted.images == len(again["label"]) == 16
    assert reference.thresholds is not None and fitted.heads["combined"].thresholds is not None
    np.testing.assert_allclose(fitted.heads["combined"].thresholds, reference.thresholds, atol=1e-6)
    module.ordinal_thresholds = FittedThresholds(
        fitted.class_names,
        {"combined": fitted.heads["combined"], "concat": HeadThresholds(None, "a reason")},
    )
    trainer.test(module, datamodule=data, verbose=False)
    p, labels = module.test_predictions["combined"]
    cut = cut_grades(expected_grade(p), fitted.heads["combined"].thresholds)
    logged = trainer.callback_metrics
    assert float(logged["test/combined/kappa_thresholded"]) == pytest.approx(
        cohen_kappa_score(labels, cut, weights="quadratic", labels=[0, 1, 2]), abs=1e-6
    )
    assert math.isnan(float(logged["test/concat/kappa_thresholded"]))
    assert "kappa_thresholded is undefined (null) on the test split" in caplog.text
    assert "no thresholds were fitted: a reason" in caplog.text
