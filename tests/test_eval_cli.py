"""fgssl-eval, fgssl-predict and fgssl-ssl-eval on a tiny trained run: files, rows, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fgssl.cli import eval as eval_cli
from fgssl.cli import predict as predict_cli
from fgssl.cli import ssl_eval as ssl_eval_cli
from helpers import one_thread

BIN = Path(sys.executable).parent
CLASSES = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]

single_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny run (commands write into the run directory)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def test_eval_writes_results_report_and_figure(run_copy: Path, capsys) -> None:
    assert eval_cli.main([str(run_copy), "data.num_workers=0", "--device", "cpu"]) == 0
    out_dir = run_copy / "eval" / "test"
    results = json.loads((out_dir / "results.json").read_text())
    split = pd.read_csv(run_copy / "split.csv")
    num_test = int((split["split"] == "test").sum())
    assert results["num_images"] == num_test and results["official_metric"] == "kappa"
    for head in ("combined", "concat"):
        metrics = results["metrics"][head]
        assert {"acc", "balanced_acc", "f1", "precision", "recall", "auroc", "kappa"} <= set(
            metrics
        )
        assert all(-1.0 <= v <= 1.0 for v in metrics.values())
        assert np.array(results["confusion_matrix"][head]).sum() == num_test
    # The best checkpoint on the same split scores what training's test step reported.
    trained = json.loads((run_copy / "results.json").read_text())
    assert results["metrics"]["combined"]["kappa"] == pytest.approx(
        trained["test"]["combined"]["kappa"], abs=1e-5
    )
    assert results["confusion_matrix"] == trained["confusion_matrix"]
    assert results["precision"] == trained["precision"] == "32-true"  # evaluated alike
    per_class = pd.read_csv(out_dir / "per_class.csv")
    assert len(per_class) == 2 * len(CLASSES)
    assert per_class.groupby("head")["support"].sum().tolist() == [num_test, num_test]
    predictions = pd.read_csv(out_dir / "predictions.csv", dtype={"id": str})
    assert set(predictions["id"]) == set(split.loc[split["split"] == "test", "id"].astype(str))
    assert (out_dir / "confusion_matrix.png").stat().st_size > 1000
    assert "kappa *" in capsys.readouterr().out


def test_eval_refuses_a_split_that_changed_since_training(run_copy: Path, capsys) -> None:
    split = pd.read_csv(run_copy / "split.csv")
    test_rows = split.index[split["split"] == "test"]
    split.loc[test_rows[0], "split"] = "train"
    split.to_csv(run_copy / "split.csv", index=False)
    assert eval_cli.main([str(run_copy), "data.num_workers=0"]) == 2
    assert "differs from the one the run recorded" in capsys.readouterr().err
    assert eval_cli.main([str(run_copy), "data.num_workers=0", "--ignore-split-file"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{run}/nothing.ckpt"], "does not exist"),
        (["{run}/split.csv"], "is not a PyTorch checkpoint"),
        (["{run}", "--split", "predict"], "has no labels to score against"),
        (["{run}", "--split", "holdout"], "has no 'holdout' split"),
        (["{run}", "data.no_such_key=1"], "cannot apply overrides"),
    ],
)
def test_eval_errors_are_one_line(run_copy: Path, capsys, args: list[str], message: str) -> None:
    argv = [a.format(run=run_copy) for a in args]
    assert eval_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgssl-eval: error: ") and message in err
    assert "Traceback" not in err


def test_eval_a_bare_checkpoint_needs_a_config(run_copy: Path, tmp_path: Path, capsys) -> None:
    lone = tmp_path / "lone.ckpt"
    shutil.copy(run_copy / "finetune/checkpoints/last.ckpt", lone)
    assert eval_cli.main([str(lone)]) == 2
    assert "pass the run's config with --config" in capsys.readouterr().err
    out = tmp_path / "out"
    argv = [str(lone), "--config", str(run_copy / "config.yaml"), "--output", str(out)]
    assert eval_cli.main([*argv, "data.num_workers=0"]) == 0
    assert (out / "results.json").is_file()


def test_predict_folder_with_an_unreadable_image(
    run_copy: Path, aptos_root: Path, tmp_path: Path, capsys
) -> None:
    folder = Path(shutil.copytree(aptos_root / "test_images", tmp_path / "images"))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    output = tmp_path / "out" / "predictions.csv"
    submission = tmp_path / "out" / "submission.csv"
    argv = [str(run_copy), str(folder), "-o", str(output), "--submission", str(submission)]
    assert predict_cli.main([*argv, "--tta", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "1 image(s) could not be read" in err and "broken" in err
    assert "submission" in err and not submission.exists()  # Kaggle needs every image
    table = pd.read_csv(output, dtype={"id": str})
    num_images = len(list((aptos_root / "test_images").iterdir()))
    assert len(table) == num_images and "broken" not in set(table["id"])
    probabilities = table[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    failed = pd.read_csv(output.with_name("predictions_failed.csv"))
    assert failed["id"].tolist() == ["broken"]


def test_predict_aptos_test_csv(run_copy: Path, aptos_root: Path, tmp_path: Path) -> None:
    output = tmp_path / "p.csv"
    submission = tmp_path / "submission.csv"
    argv = [str(run_copy), str(aptos_root / "test.csv"), "-o", str(output)]
    argv += ["--image-dir", str(aptos_root / "test_images"), "--submission", str(submission)]
    assert predict_cli.main(argv) == 0
    table = pd.read_csv(output, dtype={"id": str})
    expected = pd.read_csv(aptos_root / "test.csv", dtype=str)["id_code"]
    assert sorted(table["id"]) == sorted(expected)
    kaggle = pd.read_csv(submission, dtype={"id_code": str})
    assert list(kaggle.columns) == ["id_code", "diagnosis"]
    assert kaggle["id_code"].tolist() == table["id"].tolist()
    # the grades cut by the run's ordinal thresholds (fitted for QWK, Kaggle's metric)
    assert kaggle["diagnosis"].tolist() == table["prediction_thresholded"].tolist()
    assert kaggle["diagnosis"].between(0, 4).all()


def test_predict_ids_with_extensions_and_nothing_to_predict(
    run_copy: Path, aptos_root: Path, tmp_path: Path, capsys
) -> None:
    ids = pd.read_csv(aptos_root / "test.csv", dtype=str)["id_code"]
    listed = tmp_path / "with_extensions.csv"
    pd.DataFrame({"id_code": ids + ".png"}).to_csv(listed, index=False)
    output = tmp_path / "p.csv"
    argv = [str(run_copy), str(listed), "--image-dir", str(aptos_root / "test_images")]
    assert predict_cli.main([*argv, "-o", str(output)]) == 0
    assert sorted(pd.read_csv(output, dtype={"id": str})["id"]) == sorted(ids + ".png")
    pd.DataFrame({"id_code": ["nothing1", "nothing2"]}).to_csv(listed, index=False)
    empty = tmp_path / "empty.csv"
    assert predict_cli.main([*argv, "-o", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgssl-predict: error: none of the 2 listed images was found")
    assert "(expected <id> with an image extension in" in err and "'nothing1'" in err
    assert not empty.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda run, tmp: [str(tmp / "none.ckpt"), str(run)], "does not exist"),
        (lambda run, tmp: [str(run / "config.yaml"), str(run)], "not a PyTorch checkpoint"),
        (lambda run, tmp: [str(run), str(tmp / "no-images")], "does not exist"),
        (lambda run, tmp: [str(run), str(run / "finetune")], "no images in"),
    ],
)
def test_predict_errors_are_one_line(run_copy: Path, tmp_path: Path, capsys, make, message) -> None:
    assert predict_cli.main([*make(run_copy, tmp_path), "-o", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgssl-predict: error: ") and message in err


def test_ssl_eval_of_the_pretrained_checkpoint(run_copy: Path, capsys) -> None:
    assert ssl_eval_cli.main([str(run_copy), "data.num_workers=0", "--knn-k", "5"]) == 0
    results = json.loads((run_copy / "ssl_eval_pretrain_backbone_test.json").read_text())
    assert results["checkpoint"].endswith("pretrain/checkpoints/last.ckpt")
    assert results["settings"]["knn_k"] == 5
    for protocol in ("linear_probe", "knn"):
        assert 0.0 <= results[protocol]["balanced_acc"] <= 1.0
        assert -1.0 <= results[protocol]["kappa"] <= 1.0
    assert "linear_probe" in capsys.readouterr().out
    assert ssl_eval_cli.main([str(run_copy), "data.num_workers=0", "--random-init"]) == 0
    reference = json.loads((run_copy / "ssl_eval_random_init_backbone_test.json").read_text())
    assert reference["random_init"] is True and not results["random_init"]
    assert reference["knn"] != results["knn"]  # other weights, other neighbours


def test_console_scripts_are_registered() -> None:
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    for name, target in [
        ("fgssl-eval", "fgssl.cli.eval:cli"),
        ("fgssl-predict", "fgssl.cli.predict:cli"),
        ("fgssl-ssl-eval", "fgssl.cli.ssl_eval:cli"),
        ("fgssl-report", "fgssl.cli.report:cli"),
    ]:
        assert scripts.get(name) == target


@pytest.mark.slow
def test_installed_command_fails_with_one_line(tmp_path: Path) -> None:
    torch.save({"x": 1}, tmp_path / "x.ckpt")
    images = tmp_path / "images"  # valid inputs: fgssl-predict reads them before the checkpoint
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.png")
    result = subprocess.run(
        [str(BIN / "fgssl-predict"), str(tmp_path / "x.ckpt"), str(images)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"fgssl-predict: error: {str(tmp_path / 'x.ckpt')!r} is a PyTorch file but not a "
        "Lightning checkpoint (no 'state_dict')"
    ]
