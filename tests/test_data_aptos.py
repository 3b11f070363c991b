"""APTOS2019DataModule on trees in the Kaggle layout, and the demo generator."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fgssl.data import APTOS2019DataModule, make_demo_aptos, read_rgb
from fgssl.errors import DataLayoutError, DataNotFoundError, ImageReadError, MissingImagesError


def datamodule(root: Path, **kwargs: object) -> APTOS2019DataModule:
    options: dict[str, object] = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)
    options.update(kwargs)
    dm = APTOS2019DataModule(root, **options)  # type: ignore[arg-type]
    dm.setup()
    return dm


def test_reads_the_kaggle_layout(aptos_root: Path) -> None:
    dm = datamodule(aptos_root)
    assert dm.num_classes == 5 and dm.class_names[4] == "Proliferative DR"
    assert dm.splits is not None
    labels = pd.read_csv(aptos_root / "train.csv")
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == len(labels) == 60
    assert len(dm.splits["val"]) == 12  # 20 %
    assert dm.splits["test"].equals(dm.splits["val"])  # test labels were never released
    assert len(dm.splits["predict"]) == 6 and set(dm.splits["predict"]["label"]) == {-1}
    truth = dict(zip(labels["id_code"], labels["diagnosis"], strict=True))
    for split in ("train", "val"):
        table = dm.splits[split]
        assert all(truth[i] == label for i, label in zip(table["id"], table["label"], strict=True))
        assert all(
            Path(p).name == f"{i}.png" for i, p in zip(table["id"], table["path"], strict=True)
        )
    assert not set(dm.splits["train"]["id"]) & set(dm.splits["val"]["id"])


def test_split_is_stratified_seeded_and_written(aptos_root: Path, tmp_path: Path) -> None:
    dm = datamodule(aptos_root, seed=3)
    assert dm.splits is not None
    overall = pd.read_csv(aptos_root / "train.csv")["diagnosis"].value_counts(normalize=True)
    val = dm.splits["val"]["label"].value_counts(normalize=True)
    assert (val.reindex(overall.index, fill_value=0) - overall).abs().max() < 0.1
    again = datamodule(aptos_root, seed=3)
    other = datamodule(aptos_root, seed=4)
    assert again.splits is not None and other.splits is not None
    assert list(again.splits["val"]["id"]) == list(dm.splits["val"]["id"])
    assert list(other.splits["val"]["id"]) != list(dm.splits["val"]["id"])
    written = pd.read_csv(dm.write_split(tmp_path / "run" / "split.csv"), dtype={"id": str})
    assert set(written["split"]) == {"train", "val", "test", "predict"}
    val_rows = written[written["split"] == "val"]
    assert list(val_rows["id"]) == list(dm.splits["val"]["id"])


def test_held_out_test_split(aptos_root: Path) -> None:
    dm = datamodule(aptos_root, val_fraction=0.2, test_fraction=0.2)
    assert dm.splits is not None
    sizes = {name: len(dm.splits[name]) for name in ("train", "val", "test")}
    assert sizes == {"train": 36, "val": 12, "test": 12}
    ids = [set(dm.splits[name]["id"]) for name in ("train", "val", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


@pytest.mark.parametrize("phase", ["finetune", "pretrain"])
def test_batches_follow_the_data_contract(aptos_root: Path, phase: str) -> None:
    dm = datamodule(aptos_root, phase=phase)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.long and batch["label"].shape == (4,)
    assert ("view" in batch) == (phase == "pretrain")
    if phase == "pretrain":
        assert batch["view"].shape == batch["image"].shape
        assert not torch.equal(batch["view"], batch["image"])
    # ImageNet normalisation: black background maps to -mean/std
    assert batch["image"].min() < -1.5
    val = next(iter(dm.val_dataloader()))
    assert "view" not in val and val["image"].shape[1:] == (3, 32, 32)


def test_jpeg_images_and_the_real_fundus_photograph(aptos_copy: Path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    table = pd.read_csv(aptos_copy / "train.csv", dtype=str)
    first, second = table["id_code"][:2]
    (aptos_copy / "train_images" / f"{first}.png").unlink()
    retina = skimage_data.retina()  # a real 1411 x 1411 colour fundus photograph
    cv2.imwrite(str(aptos_copy / "train_images" / f"{first}.jpg"), retina[..., ::-1])
    png = read_rgb(aptos_copy / "train_images" / f"{second}.png")
    (aptos_copy / "train_images" / f"{second}.png").unlink()
    cv2.imwrite(str(aptos_copy / "train_images" / f"{second}.JPG"), png[..., ::-1])
    dm = datamodule(aptos_copy)
    images = dm.split_table()
    assert len(images[images["split"].isin(["train", "val"])]) == 60
    index = {split: list(t["id"]) for split, t in (dm.splits or {}).items()}
    split = "train" if first in index["train"] else "val"
    item = dm.dataset(split, pipeline="eval")[index[split].index(first)]
    assert item["image"].shape == (3, 32, 32)
    decoded = read_rgb(aptos_copy / "train_images" / f"{first}.jpg")
    assert decoded.shape == (1411, 1411, 3) and decoded.dtype == np.uint8
    assert decoded[..., 0].mean() > decoded[..., 2].mean()  # fundus: red dominates, RGB order


def test_missing_root() -> None:
    with pytest.raises(DataNotFoundError, match=r"APTOS 2019 data root.*'/no/such/aptos'"):
        datamodule(Path("/no/such/aptos"))


def test_missing_train_csv(aptos_copy: Path) -> None:
    (aptos_copy / "train.csv").unlink()
    with pytest.raises(DataNotFoundError, match=r"train\.csv"):
        datamodule(aptos_copy)


def test_wrong_header_lists_the_expected_columns(aptos_copy: Path) -> None:
    table = pd.read_csv(aptos_copy / "train.csv", dtype=str)
    table.rename(columns={"diagnosis": "grade"}).to_csv(aptos_copy / "train.csv", index=False)
    with pytest.raises(
        DataLayoutError, match=r"\['diagnosis'\].*\['id_code', 'diagnosis'\].*'grade'"
    ):
        datamodule(aptos_copy)


@pytest.mark.parametrize("bad", ["7", "-1", "two", "2.5"])
def test_labels_outside_the_grades(aptos_copy: Path, bad: str) -> None:
    table = pd.read_csv(aptos_copy / "train.csv", dtype=str)
    table.loc[3, "diagnosis"] = bad
    table.to_csv(aptos_copy / "train.csv", index=False)
    with pytest.raises(DataLayoutError, match=rf"1 row.*0\.\.4.*{table.loc[3, 'id_code']}='{bad}'"):
        datamodule(aptos_copy)


def test_missing_images_are_listed_with_their_count(aptos_copy: Path) -> None:
    ids = pd.read_csv(aptos_copy / "train.csv", dtype=str)["id_code"][:7]
    for i in ids:
        (aptos_copy / "train_images" / f"{i}.png").unlink()
    with pytest.raises(MissingImagesError, match=rf"7 of 60 images.*{ids[0]}.*missing_images=skip"):
        datamodule(aptos_copy)


def test_missing_images_can_be_skipped_with_a_logged_count(
    aptos_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = pd.read_csv(aptos_copy / "train.csv", dtype=str)["id_code"][:3]
    for i in ids:
        (aptos_copy / "train_images" / f"{i}.png").unlink()
    with caplog.at_level(logging.WARNING):
        dm = datamodule(aptos_copy, missing_images="skip")
    assert "3 of 60 images" in caplog.text
    assert dm.splits is not None
    kept = set(dm.splits["train"]["id"]) | set(dm.splits["val"]["id"])
    assert len(kept) == 57 and not kept & set(ids)


def test_corrupt_image_is_named(aptos_copy: Path) -> None:
    path = next((aptos_copy / "train_images").glob("*.png"))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ImageReadError, match=path.name):
        read_rgb(path)


def test_batch_size_larger_than_the_training_split(aptos_root: Path) -> None:
    dm = datamodule(aptos_root, batch_size=100)
    with pytest.raises(ValueError, match="fewer than batch_size=100"):
        dm.train_dataloader()


def test_demo_generator_is_deterministic_and_reused(tmp_path: Path) -> None:
    first = make_demo_aptos(tmp_path / "a", num_train=10, num_test=2, size=32, seed=5)
    second = make_demo_aptos(tmp_path / "b", num_train=10, num_test=2, size=32, seed=5)
    table = pd.read_csv(first / "train.csv", dtype=str)
    assert table.equals(pd.read_csv(second / "train.csv", dtype=str))
    image = table["id_code"][0] + ".png"
    assert (first / "train_images" / image).read_bytes() == (
        second / "train_images" / image
    ).read_bytes()
    stamp = (first / "train_images" / image).stat().st_mtime_ns
    make_demo_aptos(first, num_train=10, num_test=2, size=32, seed=5)  # already there: reused
    assert (first / "train_images" / image).stat().st_mtime_ns == stamp
    assert {p.name for p in first.iterdir()} >= {"train.csv", "test.csv", "sample_submission.csv"}


def test_demo_generator_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not an fgssl demo folder"):
        make_demo_aptos(tmp_path / "mine", num_train=4, size=16)
