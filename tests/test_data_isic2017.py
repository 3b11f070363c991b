"""ISIC2017DataModule on a tree in the official Part 3 layout."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from fgssl.data import ISIC2017DataModule
from fgssl.errors import ConfigError, DataLayoutError, DataNotFoundError
from layouts import ISIC2017_SPLITS, make_isic2017


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("isic2017") / "isic2017"
    return root, make_isic2017(root)


@pytest.fixture
def tree_copy(tree: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree[0], tmp_path / "isic2017"))


def datamodule(root: Path, **kwargs: object) -> ISIC2017DataModule:
    options: dict[str, object] = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)
    options.update(kwargs)
    dm = ISIC2017DataModule(root, **options)  # type: ignore[arg-type]
    dm.setup()
    return dm


def expected_label(row: pd.Series, task: str) -> int:
    melanoma, keratosis = row["melanoma"] == "1.0", row["seborrheic_keratosis"] == "1.0"
    if task == "melanoma":
        return int(melanoma)
    if task == "seborrheic_keratosis":
        return int(keratosis)
    return 0 if melanoma else 1 if keratosis else 2


@pytest.mark.parametrize(
    ("task", "class_names", "metric"),
    [
        ("melanoma", ("other", "melanoma"), "auroc"),
        ("seborrheic_keratosis", ("other", "seborrheic_keratosis"), "auroc"),
        ("three_class", ("melanoma", "seborrheic_keratosis", "nevus"), "mean_auroc"),
    ],
)
def test_official_splits_and_labels_per_task(
    tree: tuple[Path, dict[str, pd.DataFrame]], task: str, class_names: tuple, metric: str
) -> None:
    root, truths = tree
    assert any(root.joinpath(ISIC2017_SPLITS["train"][0]).glob("*_superpixels.png"))
    dm = datamodule(root, task=task)
    assert tuple(dm.class_names) == class_names and dm.official_metric == metric
    assert dm.splits is not None
    for split, truth in truths.items():
        table = dm.splits[split]
        assert list(table["id"]) == list(truth["image_id"])  # the official split, as it is
        expected = [expected_label(row, task) for _, row in truth.iterrows()]
        assert table["label"].tolist() == expected
        assert all(p.endswith(".jpg") and "_superpixels" not in p for p in table["path"])
    assert len(set(dm.splits["train"]["label"])) == len(class_names)


def test_nevus_is_both_columns_zero(tree: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    root, truths = tree
    dm = datamodule(root, task="three_class")
    assert dm.splits is not None
    train, truth = dm.splits["train"], truths["train"]
    nevi = truth[(truth["melanoma"] == "0.0") & (truth["seborrheic_keratosis"] == "0.0")]
    assert set(train.loc[train["id"].isin(nevi["image_id"]), "label"]) == {2}


@pytest.mark.parametrize("phase", ["finetune", "pretrain"])
def test_one_batch(tree: tuple[Path, dict[str, pd.DataFrame]], phase: str) -> None:
    dm = datamodule(tree[0], phase=phase)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.long and set(batch["label"].tolist()) <= {0, 1}
    assert ("view" in batch) == (phase == "pretrain")


@pytest.mark.parametrize(("melanoma", "keratosis"), [("1.0", "1.0"), ("2.0", "0.0"), ("yes", "0")])
def test_invalid_label_rows(tree_copy: Path, melanoma: str, keratosis: str) -> None:
    path = tree_copy / ISIC2017_SPLITS["val"][1]
    table = pd.read_csv(path, dtype=str)
    table.loc[1, ["melanoma", "seborrheic_keratosis"]] = [melanoma, keratosis]
    table.to_csv(path, index=False)
    with pytest.raises(
        DataLayoutError,
        match=rf"1 row.*Validation_Part3_GroundTruth\.csv.*at most one.*{table.loc[1, 'image_id']}",
    ):
        datamodule(tree_copy)


def test_wrong_header(tree_copy: Path) -> None:
    path = tree_copy / ISIC2017_SPLITS["train"][1]
    pd.read_csv(path, dtype=str).rename(columns={"image_id": "image"}).to_csv(path, index=False)
    with pytest.raises(DataLayoutError, match=r"\['image_id'\].*expected a header with"):
        datamodule(tree_copy)


def test_test_images_without_ground_truth(tree_copy: Path) -> None:
    (tree_copy / ISIC2017_SPLITS["test"][1]).unlink()
    with pytest.raises(DataNotFoundError, match=r"test ground truth.*Test_v2_Part3_GroundTruth"):
        datamodule(tree_copy)


def test_missing_training_folder(tree_copy: Path) -> None:
    shutil.rmtree(tree_copy / ISIC2017_SPLITS["train"][0])
    with pytest.raises(DataNotFoundError, match=r"ISIC-2017_Training_Data"):
        datamodule(tree_copy)


def test_without_validation_and_test_sets(
    tree_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for split in ("val", "test"):
        folder, csv = ISIC2017_SPLITS[split][:2]
        shutil.rmtree(tree_copy / folder)
        (tree_copy / csv).unlink()
    with caplog.at_level(logging.WARNING):
        dm = datamodule(tree_copy, task="three_class")
    assert "no ISIC 2017 val set" in caplog.text
    assert dm.splits is not None
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == ISIC2017_SPLITS["train"][2]
    assert dm.splits["test"].equals(dm.splits["val"])


def test_unknown_task(tree: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    with pytest.raises(ConfigError, match=r"task must be one of.*'nevus'"):
        ISIC2017DataModule(tree[0], task="nevus")  # type: ignore[arg-type]
