"""A class is a name, not a position: a checkpoint's classes matched to the data's by name
(fgssl.evaluation.classes), refused when the names differ or are unknown; a pretrain
checkpoint refused where a trained classifier is needed; the names carried by exported
models; a resumed run refused on data of other classes."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import accuracy_score, roc_auc_score

from fgssl.cli import eval as eval_cli
from fgssl.cli import export as export_cli
from fgssl.cli import predict as predict_cli
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.classes import match_classes
from fgssl.evaluation.scoring import per_class_report, score
from fgssl.run.checkpointing import check_checkpoint_classes
from fgssl.run.loading import load_run
from fgssl.rundir import RunDir
from helpers import one_thread

single_thread = pytest.fixture(autouse=True)(one_thread)
APTOS = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]


# --------------------------------------------------------------------- matching by name
def test_a_perfect_checkpoint_stays_perfect_on_data_listing_its_classes_in_another_order(
    caplog,
) -> None:
    """The issue's example: AUROC 1.0 became 0.0 when the classes were matched by position."""
    checkpoint, data = ["benign", "malignant"], ["malignant", "benign"]
    truth = ["benign", "malignant", "malignant", "benign", "malignant"]
    # a perfect model: probability 0.9 on the true class, in the checkpoint's column order
    probabilities = torch.tensor([[0.9, 0.1] if t == "benign" else [0.1, 0.9] for t in truth])
    labels = torch.tensor([data.index(t) for t in truth])  # the data's label order
    with caplog.at_level(logging.WARNING):
        match = match_classes(checkpoint, data, checkpoint="m.ckpt")
    assert match.order == [1, 0] and match.reordered
    assert "another order" in caplog.text and "['malignant', 'benign']" in caplog.text
    outputs = match.to_data_order({"combined": probabilities, "label": labels})
    assert torch.equal(outputs["label"], labels)
    scores = score(outputs["combined"], labels)
    malignant = np.array([t == "malignant" for t in truth])
    assert scores["auroc"] == pytest.approx(roc_auc_score(malignant, probabilities[:, 1])) == 1.0
    assert scores["acc"] == 1.0
    assert score(probabilities, labels)["auroc"] == 0.0  # by position, as before


def test_per_class_scores_after_matching_are_sklearns_by_name() -> None:
    checkpoint, data = ["a", "b", "c"], ["c", "a", "b"]
    generator = np.random.default_rng(0)
    truth = generator.choice(checkpoint, size=40)
    probabilities = torch.tensor(generator.dirichlet(np.ones(3), size=40))
    for row, name in enumerate(truth):  # some signal, so that the AUROCs differ by class
        probabilities[row, checkpoint.index(name)] += 0.3 * (name != "b")
    probabilities /= probabilities.sum(dim=1, keepdim=True)
    labels = torch.tensor([data.index(t) for t in truth])
    match = match_classes(checkpoint, data, checkpoint="m.ckpt")
    report = per_class_report(
        match.to_data_order({"combined": probabilities})["combined"], labels, data
    )
    for name in checkpoint:
        expected = roc_auc_score(truth == name, probabilities[:, checkpoint.index(name)].numpy())
        assert report.set_index("class").loc[name, "auroc"] == pytest.approx(expected)
    assert not match_classes(checkpoint, checkpoint, checkpoint="m.ckpt").reordered


@pytest.mark.parametrize(
    ("checkpoint", "data", "message"),
    [
        (["a", "b"], ["a", "c"], "only in the data: ['c'], only in the checkpoint: ['b']"),
        (["a", "b", "c"], ["a", "b"], "only in the checkpoint: ['c']"),
        (None, ["a", "b"], "records no class names"),
        (["a", "a"], ["a", "b"], "lists class name(s) ['a'] more than once"),
    ],
)
def test_classes_that_cannot_be_matched_by_name_are_refused(checkpoint, data, message) -> None:
    with pytest.raises(ConfigError) as error:
        match_classes(checkpoint, data, checkpoint="m.ckpt", data="test split")
    assert message in str(error.value) and "m.ckpt" in str(error.value)
    if checkpoint is not None and len(set(checkpoint)) == len(checkpoint):
        assert str(checkpoint) in str(error.value) and str(data) in str(error.value)


# --------------------------------------------------------- fgssl-eval on another site's data
@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def _site_folder(aptos_root: Path, folder: Path, names: list[str] = APTOS) -> Path:
    """APTOS's labelled images sorted into one folder per grade name (another site's
    layout): sorted by name, the folders are not in the checkpoint's class order."""
    table = pd.read_csv(aptos_root / "train.csv", dtype={"id_code": str})
    for image_id, grade in zip(table["id_code"], table["diagnosis"], strict=True):
        (folder / names[grade]).mkdir(parents=True, exist_ok=True)
        shutil.copy(aptos_root / "train_images" / f"{image_id}.png", folder / names[grade])
    return folder


def test_eval_on_class_folders_in_another_order_scores_by_name(
    run_copy: Path, aptos_root: Path, tmp_path: Path, caplog
) -> None:
    site = _site_folder(aptos_root, tmp_path / "site")
    out = tmp_path / "eval"
    argv = [str(run_copy), "data._target_=fgssl.data.FolderDataModule", f"data.root={site}"]
    argv += ["--ignore-split-file", "--output", str(out), "--device", "cpu"]
    with caplog.at_level(logging.WARNING):
        assert eval_cli.main(argv) == 0
    assert "in another order" in caplog.text
    results = json.loads((out / "results.json").read_text())
    assert results["class_names"] == sorted(APTOS) != APTOS
    assert results["checkpoint_class_names"] == APTOS
    table = pd.read_csv(out / "predictions.csv")
    truth = np.array([path.split("/")[0] for path in table["id"]])  # the folder: its class
    probabilities = table[[f"prob_{name}" for name in APTOS]].to_numpy()
    predicted = np.array(APTOS)[probabilities.argmax(axis=1)]
    assert results["metrics"]["combined"]["acc"] == pytest.approx(accuracy_score(truth, predicted))
    per_class = pd.read_csv(out / "per_class.csv").query("head == 'combined'").set_index("class")
    for c, name in enumerate(APTOS):
        if 0 < (truth == name).sum() < len(truth):
            expected = roc_auc_score(truth == name, probabilities[:, c])
            assert per_class.loc[name, "auroc"] == pytest.approx(expected, abs=1e-6)
    # the probabilities of each image by class name are fgssl-predict's (the checkpoint's order)
    images = tmp_path / "flat"
    images.mkdir()
    for path in table["id"]:
        shutil.copy(site / path, images / Path(path).name)
    predicted_csv = tmp_path / "predicted.csv"
    assert predict_cli.main([str(run_copy), str(images), "-o", str(predicted_csv)]) == 0
    theirs = pd.read_csv(predicted_csv, dtype={"id": str}).set_index("id")
    ours = table.assign(id=[Path(p).stem for p in table["id"]]).set_index("id")
    columns = [f"prob_{name}" for name in APTOS]
    np.testing.assert_allclose(ours[columns], theirs.loc[ours.index, columns], atol=1e-5)


def test_eval_refuses_class_folders_of_other_names(
    run_copy: Path, aptos_root: Path, tmp_path: Path, capsys
) -> None:
    renamed = ["Normal", *APTOS[1:]]
    site = _site_folder(aptos_root, tmp_path / "site", renamed)
    argv = [str(run_copy), "data._target_=fgssl.data.FolderDataModule", f"data.root={site}"]
    assert eval_cli.main([*argv, "--ignore-split-file", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgssl-eval: error: ") and "Traceback" not in err
    assert str(sorted(renamed)) in err and str(APTOS) in err
    assert "only in the data: ['Normal'], only in the checkpoint: ['No DR']" in err
    assert not (tmp_path / "o").exists()


def test_calibrating_on_validation_images_of_other_classes_is_refused_before_predicting(
    run_copy: Path, aptos_root: Path, tmp_path: Path, capsys
) -> None:
    site = _site_folder(aptos_root, tmp_path / "site", ["Normal", *APTOS[1:]])
    config = OmegaConf.load(run_copy / "config.yaml")
    config.data._target_, config.data.root = "fgssl.data.FolderDataModule", str(site)
    OmegaConf.save(config, run_copy / "config.yaml")
    output = tmp_path / "p.csv"
    argv = [str(run_copy), str(aptos_root / "test_images"), "-o", str(output), "--calibrate"]
    assert predict_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgssl-predict: error: ") and "for --calibrate" in err
    assert "only in the data: ['Normal'], only in the checkpoint: ['No DR']" in err
    assert not output.exists()


def _without_class_names(checkpoint: Path, target: Path) -> Path:
    saved = torch.load(checkpoint, weights_only=True)
    saved["hyper_parameters"]["class_names"] = None
    torch.save(saved, target)
    return target


def test_a_checkpoint_without_class_names_is_not_scored_and_predicts_by_index(
    run_copy: Path, aptos_root: Path, tmp_path: Path, capsys, caplog
) -> None:
    nameless = _without_class_names(
        RunDir(run_copy).best_checkpoint, run_copy / "finetune/checkpoints/nameless.ckpt"
    )
    assert eval_cli.main([str(nameless), "--output", str(tmp_path / "o")]) == 2
    assert "records no class names" in capsys.readouterr().err
    output = tmp_path / "p.csv"
    with caplog.at_level(logging.WARNING):
        assert (
            predict_cli.main([str(nameless), str(aptos_root / "test_images"), "-o", str(output)])
            == 0
        )
    assert "records no class names" in caplog.text
    columns = [c for c in pd.read_csv(output).columns if c.startswith("prob_")]
    assert columns == [f"prob_{c}" for c in range(5)]


# ------------------------------------------------------------------ the pretrain checkpoint
@pytest.mark.parametrize("command", ["eval", "predict", "export"])
def test_a_pretrain_checkpoint_is_refused_naming_the_finetune_one(
    run_copy: Path, aptos_root: Path, tmp_path: Path, capsys, command: str
) -> None:
    run = RunDir(run_copy)
    pretrain = str(run.last_checkpoint("pretrain"))
    argv = {
        "eval": (eval_cli, [pretrain]),
        "predict": (
            predict_cli,
            [pretrain, str(aptos_root / "test_images"), "-o", str(tmp_path / "p.csv")],
        ),
        "export": (export_cli, [pretrain, "-o", str(tmp_path / "x")]),
    }
    module, args = argv[command]
    assert module.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fgssl-{command}: error: ") and "Traceback" not in err
    assert "pretrain-phase checkpoint" in err and "never trained" in err
    assert repr(str(run.best_checkpoint)) in err
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "x").exists()
    assert not (run_copy / "eval").exists()


def test_the_refusal_of_a_pretrain_checkpoint_without_its_run(
    run_copy: Path, tmp_path: Path
) -> None:
    lone = tmp_path / "lone.ckpt"
    shutil.copy(RunDir(run_copy).last_checkpoint("pretrain"), lone)
    with pytest.raises(CheckpointError, match=r"<run dir>/finetune/checkpoints/best\.ckpt"):
        load_run(lone).require_classifier()
    # a run that has not finetuned yet: the checkpoint it will write, and how to continue
    shutil.rmtree(run_copy / "finetune")
    with pytest.raises(CheckpointError, match=r"none is there yet.*resume="):
        load_run(RunDir(run_copy).last_checkpoint("pretrain")).require_classifier()


# -------------------------------------------------------------------- a resumed run's classes
def test_a_resumed_finetune_refuses_data_of_other_classes() -> None:
    saved = {"hyper_parameters": {"class_names": ["a", "b", "c"]}}
    check_checkpoint_classes(saved, "last.ckpt", ["a", "b", "c"])
    check_checkpoint_classes({"hyper_parameters": {}}, "last.ckpt", ["x", "y"])  # no names
    with pytest.raises(
        CheckpointError, match=r"\['b', 'a', 'c'\].*\['a', 'b', 'c'\] \(in another order\)"
    ):
        check_checkpoint_classes(saved, "last.ckpt", ["b", "a", "c"])
    with pytest.raises(CheckpointError, match=r"other classes"):
        check_checkpoint_classes(saved, "last.ckpt", ["a", "b", "d"])
