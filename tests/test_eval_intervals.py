"""fgssl-eval's intervals, calibration and referable-DR view, recomputed from the
predictions.csv it saves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fgssl.cli import eval as eval_cli
from fgssl.evaluation.bootstrap import BootstrapSettings, bootstrap_intervals
from fgssl.evaluation.calibration import expected_calibration_error
from fgssl.evaluation.screening import referable_dr
from fgssl.thresholds import FittedThresholds
from helpers import one_thread

single_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.mark.slow
def test_eval_intervals_follow_from_the_saved_predictions(tiny_run: Path, tmp_path: Path, capsys):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    argv = [str(run), "data.num_workers=0", "--device", "cpu", "--resamples", "300"]
    assert eval_cli.main([*argv, "--confidence", "0.9"]) == 0
    printed = capsys.readouterr().out
    assert "combined 90% interval" in printed and "300 resamples" in printed
    out = run / "eval" / "test"
    results = json.loads((out / "results.json").read_text())
    assert (out / "reliability_diagram.png").is_file()
    settings = BootstrapSettings(resamples=300, confidence=0.9, seed=0)
    assert results["intervals"]["settings"] == settings.to_json()

    table = pd.read_csv(out / "predictions.csv")
    names = results["class_names"]
    probabilities = table[[f"prob_{n}" for n in names]].to_numpy()
    labels = table["label"].to_numpy()
    cuts = FittedThresholds.from_json(results["ordinal_thresholds"])  # the checkpoint's
    expected = bootstrap_intervals(
        {"combined": probabilities}, labels, ordinal=True, class_names=names,
        settings=settings, ece=True, thresholds=cuts,
    )["combined"]  # fmt: skip
    got = results["intervals"]["test"]["combined"]
    assert set(got) == set(expected) == {*results["metrics"]["combined"], "ece"}
    for name, interval in expected.items():
        assert got[name]["low"] == pytest.approx(interval.low, abs=1e-6, nan_ok=True), name
        assert got[name]["high"] == pytest.approx(interval.high, abs=1e-6, nan_ok=True), name
    ece = results["calibration"]["heads"]["combined"]["ece"]
    assert ece == pytest.approx(expected_calibration_error(probabilities, labels), abs=1e-6)
    screening = referable_dr(probabilities, labels, settings).to_json()
    assert results["screening"]["metrics"] == pytest.approx(screening["metrics"], abs=1e-6)
    assert set(results["intervals"]["test"]) == {"combined", "concat"}


def test_eval_refuses_bad_interval_options_before_loading(tmp_path: Path, capsys):
    missing = str(tmp_path / "no-run")
    assert eval_cli.main([missing, "--resamples", "0"]) == 2
    assert "--resamples must be at least 1, got 0" in capsys.readouterr().err
    assert eval_cli.main([missing, "--confidence", "95"]) == 2
    assert "--confidence must be a number in (0, 1)" in capsys.readouterr().err
