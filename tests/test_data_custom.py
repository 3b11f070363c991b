"""Users' own data (FolderDataModule, CSVDataModule), and what every data module offers:
label fraction, class weights, the weighted sampler, the written split."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fgssl.data import CSVDataModule, FolderDataModule, ISIC2018DataModule
from fgssl.errors import ConfigError, DataLayoutError, DataNotFoundError, MissingImagesError
from layouts import FOLDER_CLASSES, make_csv_tree, make_folder_tree, make_isic2018

SMALL: dict[str, object] = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder_tree(tmp_path_factory.mktemp("folder") / "images")


@pytest.fixture
def csv_root(tmp_path: Path) -> Path:
    make_csv_tree(tmp_path / "data")
    return tmp_path / "data"


def folder_module(root: Path, **kwargs: object) -> FolderDataModule:
    dm = FolderDataModule(root, **{**SMALL, **kwargs})  # type: ignore[arg-type]
    dm.setup()
    return dm


def csv_module(root: Path, **kwargs: object) -> CSVDataModule:
    dm = CSVDataModule(root, **{**SMALL, **kwargs})  # type: ignore[arg-type]
    dm.setup()
    return dm


# ---------------------------------------------------------------------------- folders
def test_folder_classes_counts_and_stratified_split(folder_root: Path) -> None:
    dm = folder_module(folder_root, seed=1)
    assert tuple(dm.class_names) == ("benign", "malignant", "uncertain")
    assert dm.splits is not None
    train, val = dm.splits["train"], dm.splits["val"]
    assert len(train) + len(val) == sum(FOLDER_CLASSES.values()) == 22
    assert set(val["label"]) == {0, 1, 2}  # stratified: every class validated
    assert dm.splits["test"].equals(val)
    every = pd.concat([train, val])
    assert every["id"].str.contains("visit2/").sum() == 5  # nested folders are read
    assert not every["path"].str.contains(r"\.DS_Store|notes\.txt").any()
    for row in every.itertuples():
        assert row.id.split("/")[0] == dm.class_names[row.label]
    again = folder_module(folder_root, seed=1)
    assert again.splits is not None and list(again.splits["val"]["id"]) == list(val["id"])


def test_folder_with_validation_folder_and_given_class_order(tmp_path: Path) -> None:
    train = make_folder_tree(tmp_path / "train")
    make_folder_tree(tmp_path / "val", {"benign": 2, "malignant": 2, "uncertain": 1}, seed=1)
    dm = folder_module(train, val_root="../val", class_names=["uncertain", "benign", "malignant"])
    assert dm.splits is not None
    assert len(dm.splits["train"]) == 22 and len(dm.splits["val"]) == 5
    assert dm.splits["val"]["path"].str.contains("/val/").all()
    uncertain = dm.splits["train"][dm.splits["train"]["id"].str.startswith("uncertain/")]
    assert set(uncertain["label"]) == {0}


def test_folder_errors(folder_root: Path, tmp_path: Path) -> None:
    with pytest.raises(
        DataLayoutError, match=r"class folder\(s\) \['uncertain'\].*data.class_names"
    ):
        folder_module(folder_root, class_names=["benign", "malignant"])
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataLayoutError, match=r"no sub-folders.*one folder of images per class"):
        folder_module(flat)
    with pytest.raises(DataNotFoundError, match=r"image folder.*'/no/such/images'"):
        folder_module(Path("/no/such/images"))


def test_folder_with_the_real_fundus_photograph(tmp_path: Path) -> None:
    """A real photograph (1411 x 1411) among small generated ones: decoded and batched."""
    skimage_data = pytest.importorskip("skimage.data")
    root = make_folder_tree(tmp_path / "eyes", {"healthy": 4, "diseased": 4})
    retina = skimage_data.retina()
    cv2.imwrite(str(root / "diseased" / "retina.png"), retina[..., ::-1])
    dm = folder_module(root, val_fraction=0.25, seed=0)
    assert dm.splits is not None
    table = pd.concat([dm.splits["train"], dm.splits["val"]])
    assert "diseased/retina.png" in set(table["id"])
    split = "train" if "diseased/retina.png" in set(dm.splits["train"]["id"]) else "val"
    index = list(dm.splits[split]["id"]).index("diseased/retina.png")
    item = dm.dataset(split, pipeline="eval")[index]
    assert item["image"].shape == (3, 32, 32) and item["label"] == dm.class_names.index("diseased")
    # a fundus photograph: red dominates blue after normalisation is undone
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    pixels = item["image"] * std[:, None, None] + mean[:, None, None]
    assert pixels[0].mean() > pixels[2].mean()


# -------------------------------------------------------------------------------- CSV
def test_csv_string_labels_grouped_split(csv_root: Path) -> None:
    dm = csv_module(csv_root, group_column="patient", val_fraction=0.25, seed=0)
    assert tuple(dm.class_names) == ("keratosis", "melanoma", "nevus")  # sorted
    assert dm.splits is not None
    written = pd.read_csv(csv_root / "labels.csv")
    patient = dict(zip(written["path"], written["patient"], strict=True))
    train, val = dm.splits["train"], dm.splits["val"]
    assert len(train) + len(val) == 24
    assert not {patient[i] for i in train["id"]} & {patient[i] for i in val["id"]}
    truth = dict(zip(written["path"], written["label"], strict=True))
    assert all(
        dm.class_names[lab] == truth[i] for i, lab in zip(train["id"], train["label"], strict=True)
    )
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in train["path"])


def test_csv_integer_labels_and_paths_without_extension(tmp_path: Path) -> None:
    table = make_csv_tree(tmp_path, integer_labels=True)
    table["path"] = table["path"].str.removesuffix(".png")
    table.to_csv(tmp_path / "labels.csv", index=False)
    dm = csv_module(tmp_path)
    assert tuple(dm.class_names) == ("1", "2", "3")  # integer labels sorted numerically
    assert dm.splits is not None
    train = dm.splits["train"]
    labels = dict(zip(table["path"], table["label"], strict=True))
    assert all(
        int(labels[i]) - 1 == lab for i, lab in zip(train["id"], train["label"], strict=True)
    )
    indexed = csv_module(tmp_path, class_names=["none", "mild", "severe", "extreme"])
    assert indexed.splits is not None  # with class names, integers are indices into them
    assert set(indexed.splits["train"]["label"]) == {1, 2, 3}


def test_csv_split_column_and_separate_files(csv_root: Path) -> None:
    table = pd.read_csv(csv_root / "labels.csv")
    table["fold"] = ["train"] * 16 + ["Validation"] * 4 + ["test"] * 4
    table.to_csv(csv_root / "labels.csv", index=False)
    dm = csv_module(csv_root, split_column="fold")
    assert dm.splits is not None
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [16, 4, 4]
    assert list(dm.splits["test"]["id"]) == list(table["path"][20:])
    table[:16].to_csv(csv_root / "train.csv", index=False)
    table[16:].to_csv(csv_root / "holdout.csv", index=False)
    separate = csv_module(csv_root, csv="train.csv", val_csv="holdout.csv")
    assert separate.splits is not None
    assert len(separate.splits["train"]) == 16 and len(separate.splits["val"]) == 8
    with pytest.raises(ConfigError, match="either split_column or val_csv"):
        CSVDataModule(csv_root, split_column="fold", val_csv="holdout.csv")
    table.loc[3, "fold"] = "holdout"
    table.to_csv(csv_root / "labels.csv", index=False)
    with pytest.raises(DataLayoutError, match=r"unknown value.*'holdout'.*split column 'fold'"):
        csv_module(csv_root, split_column="fold")


def test_csv_errors(csv_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(
        DataLayoutError, match=r"lacks the column\(s\) \['image'\].*\['image', 'label'\]"
    ):
        csv_module(csv_root, path_column="image")
    with pytest.raises(
        DataLayoutError,
        match=r"label\(s\) \['nevus'\] in .*labels\.csv' \(8 image\(s\), e\.g\. scans/p00_0\.png, "
        r".*not among the classes \['keratosis', 'melanoma'\].*add them to data\.class_names",
    ):
        csv_module(csv_root, class_names=["keratosis", "melanoma"])
    with pytest.raises(DataNotFoundError, match=r"image list CSV not found.*other\.csv"):
        csv_module(csv_root, csv="other.csv")
    for name in ("p01_0.png", "p02_1.png"):
        (csv_root / "scans" / name).unlink()
    with pytest.raises(
        MissingImagesError, match=r"2 of 24 images.*scans/p01_0\.png, scans/p02_1\.png"
    ):
        csv_module(csv_root)
    with caplog.at_level(logging.WARNING):
        dm = csv_module(csv_root, missing_images="skip")
    assert "2 of 24 images" in caplog.text
    assert dm.splits is not None and len(dm.splits["train"]) + len(dm.splits["val"]) == 22
    table = pd.read_csv(csv_root / "labels.csv", dtype=str, keep_default_na=False)
    table.loc[5, "label"] = ""
    table.to_csv(csv_root / "labels.csv", index=False)
    with pytest.raises(
        DataLayoutError, match=r"1 row\(s\).*no label in 'label'.*line\(s\) 7 \(''\)"
    ):
        csv_module(csv_root)


@pytest.mark.parametrize("kind", ["folder", "csv"])
@pytest.mark.parametrize("phase", ["finetune", "pretrain"])
def test_one_batch(folder_root: Path, csv_root: Path, kind: str, phase: str) -> None:
    dm = (
        folder_module(folder_root, phase=phase)
        if kind == "folder"
        else csv_module(csv_root, phase=phase)
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (4,) and batch["label"].dtype == torch.long
    assert ("view" in batch) == (phase == "pretrain")
    assert next(iter(dm.val_dataloader()))["image"].shape[1:] == (3, 32, 32)


# ------------------------------------------------ label fraction, imbalance, split.csv
@pytest.fixture(scope="module")
def isic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_isic2018(tmp_path_factory.mktemp("isic") / "isic2018").root


def test_label_fraction_finetunes_on_a_stratified_share(isic_root: Path, tmp_path: Path) -> None:
    dm = ISIC2018DataModule(isic_root, label_fraction=0.25, seed=3, **SMALL)  # type: ignore[arg-type]
    dm.setup()
    assert dm.splits is not None
    train = dm.splits["train"]
    kept = dm.table("train")
    assert len(train) == 41 and 9 <= len(kept) <= 12
    assert set(kept["label"]) == set(range(7))  # every class keeps at least one label
    assert Counter(kept["label"])[1] == 4  # NV: a quarter of 16
    dm.enter_phase("pretrain")
    assert len(dm.dataset("train")) == 41  # self-supervision sees every training image
    dm.enter_phase("finetune")
    assert len(dm.dataset("train")) == len(kept)
    written = pd.read_csv(dm.write_split(tmp_path / "split.csv"))
    rows = written[written["split"] == "train"]
    assert rows["labelled"].sum() == len(kept) and set(rows.loc[rows["labelled"], "id"]) == set(
        kept["id"]
    )
    assert written.loc[written["split"] != "train", "labelled"].all()
    other = ISIC2018DataModule(isic_root, label_fraction=0.25, seed=4, **SMALL)  # type: ignore[arg-type]
    assert set(other.table("train")["id"]) != set(kept["id"])


def test_balanced_class_weights(isic_root: Path) -> None:
    dm = ISIC2018DataModule(isic_root, **SMALL)  # type: ignore[arg-type]
    weights = dm.class_weights("balanced")
    assert weights is not None and len(weights) == 7
    counts = [6, 16, 4, 3, 6, 3, 3]
    assert weights == pytest.approx([41 / (7 * c) for c in counts])
    assert dm.class_weights(None) is None and dm.class_weights("none") is None
    assert dm.class_weights([1, 2, 1, 1, 1, 1, 1]) == [1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match=r"7 non-negative weights"):
        dm.class_weights([1.0, 2.0])
    with pytest.raises(ConfigError, match=r"'balanced' or a list"):
        dm.class_weights("inverse")


def test_weighted_sampler_balances_the_classes(isic_root: Path) -> None:
    kwargs = {**SMALL, "batch_size": 41}
    plain = ISIC2018DataModule(isic_root, **kwargs)  # type: ignore[arg-type]
    weighted = ISIC2018DataModule(isic_root, sampler="weighted", **kwargs)  # type: ignore[arg-type]

    def nv_share(dm: ISIC2018DataModule) -> float:
        labels = torch.cat([b["label"] for _ in range(10) for b in dm.train_dataloader()])
        return float((labels == 1).float().mean())

    assert nv_share(plain) == pytest.approx(16 / 41)
    assert nv_share(weighted) < 0.25  # about 1/7 instead of 16/41
    weighted.enter_phase("pretrain")  # self-supervision ignores labels: no reweighting
    assert weighted.train_dataloader().sampler.weights is None


def test_bad_module_options(isic_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"label_fraction must be in \(0, 1\]"):
        ISIC2018DataModule(isic_root, label_fraction=0.0)
    with pytest.raises(ConfigError, match=r"sampler must be null or 'weighted'"):
        ISIC2018DataModule(isic_root, sampler="balanced")
    with pytest.raises(ConfigError, match=r"verify_images must be one of"):
        ISIC2018DataModule(isic_root, verify_images="full")
    with pytest.raises(ConfigError, match=r"val_fraction=1.5"):
        ISIC2018DataModule(isic_root, val_fraction=1.5)
