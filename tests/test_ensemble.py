"""A run's per-image predictions (predictions/test.csv, val.csv), and ensembles of several
runs in fgssl-eval and fgssl-predict: the mean of the members' probabilities (classes
matched by name), refused in one line when the members cannot be averaged."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from sklearn import metrics as skm

from fgssl.cli import eval as eval_cli
from fgssl.cli import predict as predict_cli
from fgssl.errors import ConfigError
from fgssl.evaluation.checkpoints import LoadedRun
from fgssl.evaluation.ensemble import THRESHOLDS_NOT_APPLIED, check_preprocessing
from fgssl.evaluation.prediction_table import read_prediction_table
from fgssl.evaluation.thresholds import THRESHOLDED_COLUMNS
from fgssl.rundir import BEST_CHECKPOINT, RunDir
from helpers import one_thread

CLASSES = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]
ORDER = [4, 2, 0, 1, 3]
"""The permuted member's output column c is class ORDER[c]."""

single_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that write where they are started (an ensemble's ./eval-ensemble) write
    into the test's folder."""
    monkeypatch.chdir(tmp_path)


def member(tiny_run: Path, dest: Path, change: Callable[[dict], None]) -> Path:
    """A run directory holding tiny_run's config and split and its best checkpoint changed
    by ``change`` (the loaded checkpoint dict, edited in place)."""
    dest.mkdir(parents=True)
    for name in ("config.yaml", "split.csv"):
        shutil.copy(tiny_run / name, dest / name)
    checkpoint = torch.load(tiny_run / "finetune" / BEST_CHECKPOINT, weights_only=False)
    change(checkpoint)
    (dest / "finetune" / BEST_CHECKPOINT).parent.mkdir(parents=True)
    torch.save(checkpoint, dest / "finetune" / BEST_CHECKPOINT)
    return dest


def perturb_and_permute(checkpoint: dict) -> None:
    """Other weights, and the classes in ORDER: the classifier rows and the class names."""
    generator = torch.Generator().manual_seed(0)
    state = checkpoint["state_dict"]
    for key, value in state.items():
        if value.is_floating_point() and key.startswith("net.classifiers"):
            state[key] = value + 0.5 * torch.randn(value.shape, generator=generator)
    for key in [k for k in state if k.startswith("net.classifiers.")]:
        state[key] = state[key][ORDER]
    checkpoint["hyper_parameters"]["class_names"] = [CLASSES[i] for i in ORDER]


@pytest.fixture(scope="module")
def other(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second member: other classifier weights, its classes in another order."""
    return member(tiny_run, tmp_path_factory.mktemp("other") / "run", perturb_and_permute)


def evaluate(*args: str) -> int:
    return eval_cli.main([*args, "data.num_workers=0", "--device", "cpu"])


def probabilities(path: Path) -> np.ndarray:
    table = pd.read_csv(path, dtype={"id": str})
    return table[[f"prob_{name}" for name in CLASSES]].to_numpy()


# ------------------------------------------------------------- the run's predictions
def test_a_run_writes_the_predictions_its_test_scored_and_its_validation_ones(
    tiny_run: Path, tmp_path: Path
) -> None:
    """predictions/test.csv names every test image once and rescores to results.json
    (scikit-learn); predictions/val.csv is what fgssl-eval gives on the validation split."""
    run = RunDir(tiny_run)
    split = pd.read_csv(run.split, dtype={"id": str})
    results = json.loads(run.results.read_text())
    test = read_prediction_table(run.predictions("test"))
    assert sorted(test.ids) == sorted(split.loc[split["split"] == "test", "id"])
    predicted = test.probabilities.argmax(1)
    assert results["test"]["combined"]["acc"] == pytest.approx(
        skm.accuracy_score(test.labels, predicted), abs=1e-6
    )
    assert results["test"]["combined"]["kappa"] == pytest.approx(
        skm.cohen_kappa_score(test.labels, predicted, weights="quadratic"), abs=1e-6
    )
    assert results["ordinal"] is True and results["tta"] is None
    val = read_prediction_table(run.predictions("val"))
    assert sorted(val.ids) == sorted(split.loc[split["split"] == "val", "id"])
    assert evaluate(str(tiny_run), "--split", "val", "--output", str(tmp_path / "v")) == 0
    evaluated = pd.read_csv(tmp_path / "v" / "predictions.csv", dtype={"id": str})
    assert evaluated["id"].tolist() == val.ids
    np.testing.assert_allclose(
        val.probabilities, probabilities(tmp_path / "v" / "predictions.csv"), atol=1e-6
    )


# ---------------------------------------------------------------------- ensembles
def test_ensemble_eval_is_the_mean_of_its_members_by_class_name(
    tiny_run: Path, other: Path, tmp_path: Path
) -> None:
    for name, run in (("first", tiny_run), ("second", other)):
        assert evaluate(str(run), "--output", str(tmp_path / name)) == 0
    assert evaluate(str(tiny_run), str(other)) == 0  # written to ./eval-ensemble/test
    first, second = (probabilities(tmp_path / n / "predictions.csv") for n in ("first", "second"))
    assert np.abs(first - second).max() > 0.01  # the members differ
    both = probabilities(tmp_path / "eval-ensemble" / "test" / "predictions.csv")
    np.testing.assert_allclose(both, (first + second) / 2, atol=1e-6)
    results = json.loads((tmp_path / "eval-ensemble" / "test" / "results.json").read_text())
    assert results["ensemble"]["members"] == [
        str(tiny_run / "finetune" / BEST_CHECKPOINT),
        str(other / "finetune" / BEST_CHECKPOINT),
    ]
    assert results["ensemble"]["member_class_names"][1] == [CLASSES[i] for i in ORDER]
    labels = pd.read_csv(tmp_path / "eval-ensemble" / "test" / "predictions.csv")["label"]
    assert results["metrics"]["combined"]["acc"] == pytest.approx(
        skm.accuracy_score(labels.to_numpy(), both.argmax(1))
    )


def test_ensemble_predict_of_a_sweep_directory(
    tiny_run: Path, other: Path, aptos_root: Path, tmp_path: Path, capsys
) -> None:
    """A sweep directory stands for its finished jobs; the output is their mean, and
    <output>_ensemble.json names them."""
    sweep = tmp_path / "sweep"
    for job, run in enumerate((tiny_run, other)):
        (sweep / str(job) / ".hydra").mkdir(parents=True)
        for name in ("config.yaml", "split.csv"):
            shutil.copy(run / name, sweep / str(job) / name)
        (sweep / str(job) / "finetune" / "checkpoints").mkdir(parents=True)
        (sweep / str(job) / "finetune" / BEST_CHECKPOINT).symlink_to(
            run / "finetune" / BEST_CHECKPOINT
        )
    images = str(aptos_root / "test_images")
    outputs = {}
    for name, models in (
        ("first", [str(tiny_run)]),
        ("second", [str(other)]),
        ("both", [str(sweep)]),
    ):
        outputs[name] = tmp_path / f"{name}.csv"
        assert predict_cli.main([*models, images, "-o", str(outputs[name]), "--device", "cpu"]) == 0
    first, second, both = (probabilities(outputs[n]) for n in ("first", "second", "both"))
    np.testing.assert_allclose(both, (first + second) / 2, atol=1e-6)
    facts = json.loads((tmp_path / "both_ensemble.json").read_text())
    assert facts["members"] == [str(sweep / j / "finetune" / BEST_CHECKPOINT) for j in "01"]
    assert "ensemble of 2 checkpoints" in capsys.readouterr().out


def copy_with(tiny_run: Path, dest: Path, edit: Callable[[dict], None]) -> Path:
    """A member whose config.yaml is tiny_run's edited by ``edit``."""
    run = member(tiny_run, dest, lambda checkpoint: None)
    config = yaml.safe_load((run / "config.yaml").read_text())
    edit(config)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["data"].update(image_size=40), "data.image_size is 32 in"),
        (lambda c: c["data"].update(mean=[0.5, 0.5, 0.5]), "data.mean is [0.485, 0.456, 0.406] in"),
        (lambda c: c["data"].update(preprocess="shades_of_gray"), "data.preprocess is None in"),
        (lambda c: c["trainer"].update(precision="bf16-mixed"), "different precisions"),
        (lambda c: c.update(tta="d4"), "different tta ([(), ('identity', 'hflip'"),
    ],
)
def test_members_that_cannot_be_averaged_are_refused_in_one_line(
    tiny_run: Path, aptos_root: Path, tmp_path: Path, capsys, edit: Callable, message: str
) -> None:
    second = copy_with(tiny_run, tmp_path / "second", edit)
    assert evaluate(str(tiny_run), str(second)) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("fgssl-eval: error: ") and message in error and "\n" not in error
    images = str(aptos_root / "test_images")
    assert (
        predict_cli.main([str(tiny_run), str(second), images, "-o", str(tmp_path / "p.csv")]) == 2
    )
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_members_of_other_classes_or_given_twice_are_refused(
    tiny_run: Path, tmp_path: Path, capsys
) -> None:
    def rename(checkpoint: dict) -> None:
        checkpoint["hyper_parameters"]["class_names"] = [*CLASSES[:4], "PDR"]

    renamed = member(tiny_run, tmp_path / "renamed", rename)
    assert evaluate(str(tiny_run), str(renamed)) == 2
    assert "only in the checkpoint: ['PDR']" in capsys.readouterr().err
    assert evaluate(str(tiny_run), str(tiny_run / "finetune" / BEST_CHECKPOINT)) == 2
    assert "is given twice" in capsys.readouterr().err


def test_an_ensemble_refuses_a_split_a_member_did_not_record(
    tiny_run: Path, tmp_path: Path, capsys
) -> None:
    """Folds validate on other images: scoring one fold's validation split with the other
    fold, which trained on it, is refused."""
    second = member(tiny_run, tmp_path / "second", lambda checkpoint: None)
    split = pd.read_csv(second / "split.csv", dtype={"id": str})
    moved = split.index[split["split"] == "val"][0]
    split.loc[moved, "split"] = "train"
    split.to_csv(second / "split.csv", index=False)
    assert evaluate(str(tiny_run), str(second), "--split", "val") == 2
    assert "the 'val' split rebuilt from the data" in capsys.readouterr().err


def test_tta_options(tiny_run: Path, tmp_path: Path, capsys) -> None:
    assert evaluate(str(tiny_run), "--tta", "--tta-views", "d4") == 2
    assert "--tta and --tta-views: give one" in capsys.readouterr().err
    assert evaluate(str(tiny_run), "--tta-views", "hflip,flop") == 2
    assert "--tta-views: unknown view(s) ['flop']" in capsys.readouterr().err
    out = tmp_path / "d4"
    assert evaluate(str(tiny_run), "--tta-views", "d4", "--output", str(out)) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["tta"] == [
        "identity",
        "hflip",
        "vflip",
        "rot180",
        "transpose",
        "rot90",
        "rot270",
        "antitranspose",
    ]


def test_calibrating_an_ensemble_is_refused(
    tiny_run: Path, other: Path, aptos_root: Path, tmp_path: Path, capsys
) -> None:
    images = str(aptos_root / "test_images")
    argv = [str(tiny_run), str(other), images, "-o", str(tmp_path / "p.csv"), "--calibrate"]
    assert predict_cli.main(argv) == 2
    assert "--calibrate fits T on one run's validation split" in capsys.readouterr().err


def test_a_single_member_keeps_its_thresholds_an_ensemble_applies_none(
    tiny_run: Path, other: Path, aptos_root: Path, tmp_path: Path, capsys, caplog
) -> None:
    """Each member's ordinal thresholds were fitted on its own validation split: one
    checkpoint cuts its grades by them, an ensemble of two by none (a warning and the facts
    say so), and its Kaggle submission is the argmax."""
    stored = torch.load(tiny_run / "finetune" / BEST_CHECKPOINT, weights_only=False)
    assert stored["fgssl"]["ordinal_thresholds"]["heads"]["combined"]["thresholds"]
    assert evaluate(str(tiny_run), "--output", str(tmp_path / "one")) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert "kappa_thresholded" in one["metrics"]["combined"] and "ordinal_thresholds" in one
    assert set(THRESHOLDED_COLUMNS) <= set(pd.read_csv(tmp_path / "one" / "predictions.csv"))
    caplog.clear()
    assert evaluate(str(tiny_run), str(other), "--output", str(tmp_path / "two")) == 0
    warned = [r.getMessage() for r in caplog.records if THRESHOLDS_NOT_APPLIED in r.getMessage()]
    assert len(warned) == 1
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert "kappa_thresholded" not in two["metrics"]["combined"]
    assert "ordinal_thresholds" not in two
    assert two["ensemble"]["ordinal_thresholds"] == THRESHOLDS_NOT_APPLIED
    columns = set(pd.read_csv(tmp_path / "two" / "predictions.csv"))
    assert not set(THRESHOLDED_COLUMNS) & columns
    images, out = str(aptos_root / "test_images"), tmp_path / "p.csv"
    argv = [str(tiny_run), str(other), images, "-o", str(out), "--device", "cpu"]
    assert predict_cli.main([*argv, "--submission", str(tmp_path / "s.csv")]) == 0
    assert not set(THRESHOLDED_COLUMNS) & set(pd.read_csv(out))
    facts = json.loads((tmp_path / "p_ensemble.json").read_text())
    assert facts["ordinal_thresholds"] == THRESHOLDS_NOT_APPLIED
    assert "diagnosis = prediction)" in capsys.readouterr().out
    predicted = pd.read_csv(out).set_index("id")["prediction"]
    submitted = pd.read_csv(tmp_path / "s.csv").set_index("id_code")["diagnosis"]
    assert submitted.loc[predicted.index].tolist() == predicted.tolist()


def fundus_member(radius: int | None, name: str = "fundus_crop") -> LoadedRun:
    """A member without a checkpoint whose run config (32 px images) preprocesses with
    ``name`` at ``radius`` (None: the default radius, image_size = 32)."""
    data = {"image_size": 32, "preprocess": name, "preprocess_radius": radius}
    config = OmegaConf.create({"data": data})
    return LoadedRun(module=None, checkpoint=Path(f"r{radius}.ckpt"), run_dir=None, config=config)  # type: ignore[arg-type]


def test_members_must_share_the_preprocessing_and_its_radius() -> None:
    """data.preprocess_radius left unset is its default (data.image_size here), so it agrees
    with the same radius given; another radius or preprocessing is refused."""
    check_preprocessing([fundus_member(None), fundus_member(32)])
    with pytest.raises(ConfigError, match=r"data.preprocess_radius is 32 in 'rNone.ckpt' but 40"):
        check_preprocessing([fundus_member(None), fundus_member(40)])
    with pytest.raises(ConfigError, match=r"data.preprocess is 'fundus_crop' in .* 'ben_graham'"):
        check_preprocessing([fundus_member(None), fundus_member(None, "ben_graham")])


def test_an_ensemble_reads_its_images_with_the_members_preprocessing(
    tiny_run: Path, aptos_root: Path, tmp_path: Path
) -> None:
    """Two copies of one checkpoint whose runs used Shades of Gray predict as the single
    copy does, and unlike the checkpoint without it: the ensemble's reader preprocesses."""

    def shades(config: dict) -> None:
        config["data"]["preprocess"] = "shades_of_gray"

    copies = [copy_with(tiny_run, tmp_path / name, shades) for name in ("a", "b")]
    images = str(aptos_root / "test_images")
    outputs = {}
    for name, models in (("plain", [tiny_run]), ("one", copies[:1]), ("both", copies)):
        outputs[name] = tmp_path / f"{name}.csv"
        argv = [*map(str, models), images, "-o", str(outputs[name]), "--device", "cpu"]
        assert predict_cli.main(argv) == 0
    plain, one, both = (probabilities(outputs[n]) for n in ("plain", "one", "both"))
    np.testing.assert_allclose(both, one, rtol=1e-5, atol=0)
    # the tiny network is nearly certain: its inputs tell in the small probabilities
    assert not np.allclose(one, plain, rtol=1e-2, atol=0)
