"""ISIC2018DataModule on trees in the official Task 3 and the HAM10000 layouts."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from fgssl.data import ISIC2018DataModule
from fgssl.errors import DataLayoutError, DataNotFoundError, MissingImagesError
from layouts import ISIC2018_CLASSES, ISIC2018Tree, make_ham10000, make_isic2018

TRUTH = "ISIC2018_Task3_{0}_GroundTruth/ISIC2018_Task3_{0}_GroundTruth.csv"


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> ISIC2018Tree:
    return make_isic2018(tmp_path_factory.mktemp("isic2018") / "isic2018")


@pytest.fixture
def official_copy(official: ISIC2018Tree, tmp_path: Path) -> ISIC2018Tree:
    root = Path(shutil.copytree(official.root, tmp_path / "isic2018"))
    return ISIC2018Tree(root, official.labels, official.lesions, official.train_ids)


@pytest.fixture(scope="module")
def ham(tmp_path_factory: pytest.TempPathFactory) -> ISIC2018Tree:
    return make_ham10000(tmp_path_factory.mktemp("ham") / "ham10000")


def datamodule(root: Path, **kwargs: object) -> ISIC2018DataModule:
    options: dict[str, object] = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)
    options.update(kwargs)
    dm = ISIC2018DataModule(root, **options)  # type: ignore[arg-type]
    dm.setup()
    return dm


def lesions_of(tree: ISIC2018Tree, table: pd.DataFrame) -> set[str]:
    return {tree.lesions[i] for i in table["id"]}


def test_official_layout_counts_labels_and_splits(official: ISIC2018Tree) -> None:
    for split in ("Training", "Validation", "Test"):  # as downloaded, extras included
        assert (official.root / TRUTH.format(split)).parent.joinpath("LICENSE.txt").is_file()
    assert not (official.root / "ISIC2018_Task3_Test_Input" / "ISIC_0035068.jpg").exists()
    dm = datamodule(official.root)
    assert dm.class_names == ISIC2018_CLASSES and dm.num_classes == 7
    assert dm.official_metric == "balanced_acc"
    assert dm.splits is not None
    assert list(dm.splits["train"]["id"]) == official.train_ids  # all, in the CSV's order
    assert list(dm.splits["val"]["id"]) == official.val_ids  # the official validation set
    assert list(dm.splits["test"]["id"]) == official.test_ids  # without ISIC_0035068
    for table in dm.splits.values():
        assert all(
            official.labels[i] == label
            for i, label in zip(table["id"], table["label"], strict=True)
        )
        assert all(Path(p).suffix == ".jpg" for p in table["path"])
    counts = dm.splits["train"]["label"].value_counts().sort_index().tolist()
    assert counts == [6, 16, 4, 3, 6, 3, 3]  # MEL, NV, BCC, AKIEC, BKL, DF, VASC


def test_split_from_training_keeps_each_lesion_on_one_side(official: ISIC2018Tree) -> None:
    dm = datamodule(official.root, val_fraction=0.2, seed=2)
    assert dm.splits is not None
    train, val = dm.splits["train"], dm.splits["val"]
    assert len(train) + len(val) == len(official.train_ids)
    assert 5 <= len(val) <= 12  # about a fifth, by whole lesions
    assert not lesions_of(official, train) & lesions_of(official, val)
    assert set(train["label"]) == set(range(7))  # stratified: every class still trains
    assert not set(val["id"]) & set(official.val_ids)  # the official validation set unused
    other = datamodule(official.root, val_fraction=0.2, seed=3)
    assert other.splits is not None and set(other.splits["val"]["id"]) != set(val["id"])


@pytest.mark.parametrize(
    ("options", "drawn"),
    [
        ({}, None),  # the official validation and test sets: nothing is drawn
        ({"val_fraction": 0.2}, "the validation split is"),
        ({"test_fraction": 0.2}, "the test split is"),
        ({"val_fraction": 0.2, "test_fraction": 0.2}, "the validation and test splits are"),
    ],
)
def test_without_lesion_groupings_a_drawn_split_warns(
    official_copy: ISIC2018Tree,
    caplog: pytest.LogCaptureFixture,
    options: dict[str, float],
    drawn: str | None,
) -> None:
    (official_copy.root / "ISIC2018_Task3_Training_LesionGroupings.csv").unlink()
    with caplog.at_level(logging.WARNING):
        dm = datamodule(official_copy.root, **options)
    assert dm.splits is not None and len(dm.splits["val"]) > 0
    if drawn is None:
        assert "LesionGroupings" not in caplog.text
    else:
        assert (
            f"no ISIC2018_Task3_Training_LesionGroupings.csv in {official_copy.root}: {drawn} "
            "drawn from the training images image by image"
        ) in caplog.text


def test_without_validation_and_test_sets(tmp_path: Path) -> None:
    tree = make_isic2018(tmp_path / "isic", validation=False, test=False)
    dm = datamodule(tree.root)
    assert dm.splits is not None
    train, val = dm.splits["train"], dm.splits["val"]
    assert len(train) + len(val) == len(tree.train_ids)
    assert not lesions_of(tree, train) & lesions_of(tree, val)
    assert dm.splits["test"].equals(val)


def test_ham10000_layout(ham: ISIC2018Tree) -> None:
    dm = datamodule(ham.root, seed=1)
    assert dm.splits is not None
    train, val = dm.splits["train"], dm.splits["val"]
    assert sorted([*train["id"], *val["id"]]) == sorted(ham.train_ids)
    assert not lesions_of(ham, train) & lesions_of(ham, val)
    assert {Path(p).parent.name for p in train["path"]} == {
        "HAM10000_images_part_1",
        "HAM10000_images_part_2",
    }
    assert all(ham.labels[i] == lab for i, lab in zip(train["id"], train["label"], strict=True))


@pytest.mark.parametrize("phase", ["finetune", "pretrain"])
def test_one_batch(official: ISIC2018Tree, phase: str) -> None:
    dm = datamodule(official.root, phase=phase)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (4,) and batch["label"].dtype == torch.long
    assert ("view" in batch) == (phase == "pretrain")
    test = next(iter(dm.test_dataloader()))
    assert test["image"].shape == (4, 3, 32, 32)


def test_row_that_is_not_one_hot(official_copy: ISIC2018Tree) -> None:
    path = official_copy.root / TRUTH.format("Training")
    table = pd.read_csv(path, dtype=str)
    table.loc[2, "MEL"] = table.loc[2, "NV"] = "1.0"
    table.loc[2, "BCC"] = table.loc[2, "AKIEC"] = table.loc[2, "BKL"] = "0.0"
    table.loc[2, "DF"] = table.loc[2, "VASC"] = "0.0"
    table.to_csv(path, index=False)
    image = table.loc[2, "image"]
    with pytest.raises(
        DataLayoutError, match=rf"1 row.*Training_GroundTruth\.csv.*not one-hot.*{image}"
    ):
        datamodule(official_copy.root)


def test_wrong_ground_truth_header_lists_the_expected_columns(official_copy: ISIC2018Tree) -> None:
    path = official_copy.root / TRUTH.format("Validation")
    pd.read_csv(path, dtype=str).rename(columns={"VASC": "vascular"}).to_csv(path, index=False)
    with pytest.raises(DataLayoutError, match=r"\['VASC'\].*\['image', 'MEL', 'NV'.*'vascular'"):
        datamodule(official_copy.root)


def test_unknown_class_name_in_ham10000(ham: ISIC2018Tree, tmp_path: Path) -> None:
    root = Path(shutil.copytree(ham.root, tmp_path / "ham"))
    table = pd.read_csv(root / "HAM10000_metadata.csv", dtype=str)
    table.loc[4, "dx"] = "melanoma"
    table.to_csv(root / "HAM10000_metadata.csv", index=False)
    with pytest.raises(DataLayoutError, match=r"unknown dx value.*'melanoma'.*'akiec'"):
        datamodule(root)


def test_missing_folders_and_files(official_copy: ISIC2018Tree, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=r"no ISIC 2018 data.*HAM10000_metadata\.csv"):
        datamodule(tmp_path / "empty")
    (official_copy.root / TRUTH.format("Test")).unlink()
    with pytest.raises(
        DataNotFoundError, match=r"Test ground truth not found.*Test_GroundTruth\.csv"
    ):
        datamodule(official_copy.root)
    shutil.rmtree(official_copy.root / "ISIC2018_Task3_Training_GroundTruth")
    with pytest.raises(DataNotFoundError, match=r"Training_GroundTruth\.csv"):
        datamodule(official_copy.root)


def test_missing_images_are_listed_or_skipped(
    official_copy: ISIC2018Tree, caplog: pytest.LogCaptureFixture
) -> None:
    gone = official_copy.train_ids[:3]
    for image in gone:
        (official_copy.root / "ISIC2018_Task3_Training_Input" / f"{image}.jpg").unlink()
    total = len(official_copy.train_ids)
    with pytest.raises(MissingImagesError, match=rf"3 of {total} images.*{gone[0]}"):
        datamodule(official_copy.root)
    with caplog.at_level(logging.WARNING):
        dm = datamodule(official_copy.root, missing_images="skip")
    assert f"3 of {total} images" in caplog.text
    assert dm.splits is not None and len(dm.splits["train"]) == total - 3
