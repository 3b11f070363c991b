"""Splits: no image in two splits however they were given; grouped draws hold out the share
asked, never split a group, and give images without a group id a group of their own."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from fgssl.data import CSVDataModule, FolderDataModule, ISIC2019DataModule
from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.draws import grouped_stratified_split, stratified_split
from fgssl.data.splits import assemble_splits
from fgssl.errors import DataLayoutError
from layouts import make_csv_tree, make_folder_tree, write_image
from layouts_more import make_isic2019

SMALL: dict[str, object] = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)


def setup(cls: type, root: Path, **kwargs: object) -> ImageClassificationDataModule:
    dm = cls(root, **{**SMALL, **kwargs})
    dm.setup()
    return dm


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def pairs(classes: list[int]) -> tuple[list[int], list[str]]:
    """Labels and groups of one group of two images per entry of ``classes``."""
    labels = [c for c in classes for _ in range(2)]
    groups = [f"g{i}" for i in range(len(classes)) for _ in range(2)]
    return labels, groups


# ------------------------------------------------------------ the grouped share drawn
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3, 0.4, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_split_holds_out_the_share_asked(fraction: float, seed: int) -> None:
    """30 pairs, 20 of class 0 and 10 of class 1: every asked share is reachable by whole
    pairs and per class (hand count: fraction x 40 and x 20 images). One fold of
    StratifiedGroupKFold held out 1/round(1/fraction): 20 images for 0.3, 30 for 0.4."""
    labels, groups = pairs([0] * 20 + [1] * 10)
    kept, held = grouped_stratified_split(labels, groups, fraction, seed=seed)
    held_labels = np.asarray(labels)[held]
    assert len(held) == round(fraction * 60)
    assert [int((held_labels == c).sum()) for c in (0, 1)] == [
        round(fraction * 40),
        round(fraction * 20),
    ]
    assert sorted([*kept, *held]) == list(range(60))


@pytest.mark.parametrize("fraction", [0.15, 0.2, 0.3, 0.45])
def test_grouped_split_of_unequal_groups_is_within_an_image(fraction: float) -> None:
    """Groups of 1 to 5 images (six of each size, 90 images): the share asked is reached
    to within one image (a group of one is always there to close the gap)."""
    sizes = [1, 2, 3, 4, 5] * 6
    groups = [f"g{i}" for i, size in enumerate(sizes) for _ in range(size)]
    labels = [i % 3 for i, size in enumerate(sizes) for _ in range(size)]
    for seed in range(10):
        _, held = grouped_stratified_split(labels, groups, fraction, seed=seed)
        assert abs(len(held) - fraction * 90) <= 1, (seed, len(held))


def test_groups_never_straddle_and_seeds_differ() -> None:
    rng = np.random.default_rng(7)
    groups = [f"p{g}" for g in rng.integers(0, 80, 300)]
    labels = rng.integers(0, 4, 300).tolist()
    drawn = set()
    for seed in range(8):
        kept, held = grouped_stratified_split(labels, groups, 0.25, seed=seed)
        assert sorted([*kept, *held]) == list(range(300))
        assert not {groups[i] for i in kept} & {groups[i] for i in held}
        drawn.add(tuple(held))
    assert len(drawn) == 8


def test_stratification_of_patients_with_two_eyes() -> None:
    """2,000 patients, two eyes each, the grades of EyePACS' proportions (the eyes of one
    patient often differ): each grade's held-out count is within 2 images of 20 %."""
    rng = np.random.default_rng(0)
    first = rng.choice(5, size=2000, p=[0.73, 0.07, 0.15, 0.025, 0.025])
    second = np.where(rng.random(2000) < 0.8, first, rng.choice(5, size=2000))
    labels = np.stack([first, second], axis=1).ravel().tolist()
    groups = [str(i // 2) for i in range(4000)]
    _, held = grouped_stratified_split(labels, groups, 0.2, seed=3)
    assert len(held) == 800
    expected = 0.2 * np.bincount(labels, minlength=5)
    assert np.abs(np.bincount(np.asarray(labels)[held], minlength=5) - expected).max() <= 2


def test_groups_of_one_image_are_the_stratified_split() -> None:
    labels = [i % 3 for i in range(50)]
    for seed in range(3):
        grouped = grouped_stratified_split(labels, [f"i{i}" for i in range(50)], 0.3, seed=seed)
        plain = stratified_split(labels, 0.3, seed=seed)
        assert all(np.array_equal(a, b) for a, b in zip(grouped, plain, strict=True))


def test_splits_without_groups_are_scikit_learns() -> None:
    """The draws without groups are those before grouped draws changed: scikit-learn's
    stratified train_test_split, the test split first, then val_fraction / (1 -
    test_fraction) of the rest."""
    table = pd.DataFrame(
        {"id": [f"x{i}" for i in range(40)], "path": [f"/d/x{i}.png" for i in range(40)]}
    ).assign(label=[i % 4 for i in range(40)])
    splits = assemble_splits(table, val_fraction=0.2, test_fraction=0.25, seed=5)
    rows = np.arange(40)
    rest, test = train_test_split(rows, test_size=0.25, random_state=5, stratify=table["label"])
    rest = np.sort(rest)
    kept, val = train_test_split(
        rest, test_size=0.2 / 0.75, random_state=5, stratify=table["label"][rest]
    )
    for name, expected in (("train", kept), ("val", val), ("test", test)):
        assert splits[name]["id"].tolist() == [f"x{i}" for i in np.sort(expected)]


def test_the_share_obtained_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    labels, groups = pairs([0] * 20 + [1] * 10)
    table = pd.DataFrame(
        {"id": [f"x{i}" for i in range(60)], "path": [f"/d/x{i}.png" for i in range(60)]}
    ).assign(label=labels, patient=groups)
    with caplog.at_level(logging.INFO, logger="fgssl.data.splits"):
        assemble_splits(
            table, val_fraction=0.3, test_fraction=0.1, group_column="patient", group_name="pid"
        )
    assert "test split: held out 6 of 60 images (10.0 %, asked 10 %) by pid" in caplog.text
    assert "validation split: held out 18 of 60 images (30.0 %, asked 30 %) by pid" in (caplog.text)
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_groups_too_large_for_the_share(caplog: pytest.LogCaptureFixture) -> None:
    """Two groups of 10: 20 % cannot be had; one group (50 %) is held out, with a
    warning. One group: nothing can be held out, refused in one line."""
    table = pd.DataFrame(
        {"id": [f"x{i}" for i in range(20)], "path": [f"/d/x{i}.png" for i in range(20)]}
    ).assign(label=[i % 2 for i in range(20)], patient=["a"] * 10 + ["b"] * 10)
    with caplog.at_level(logging.WARNING, logger="fgssl.data.splits"):
        splits = assemble_splits(table, group_column="patient", group_name="pid")
    assert len(splits["val"]) == 10 and splits["val"]["patient"].nunique() == 1
    assert "validation split: held out 10 of 20 images (50.0 %, asked 20 %) by pid" in (caplog.text)
    with pytest.raises(DataLayoutError) as error:
        assemble_splits(table.assign(patient="a"), group_column="patient", group_name="pid")
    assert one_line(error) == (
        "cannot hold out the validation split (20% of 20 training images by pid): only 1 "
        "group: nothing to hold out by group"
    )


# ---------------------------------------------------------- images without a group id
def make_patients_csv(root: Path) -> pd.DataFrame:
    """60 images: 6 patients of 4 images (24) and 36 images without a patient id; labels
    cycle over 3 classes."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(60):
        path = f"scans/{index:02d}.png"
        write_image(root / path, index % 3, rng, size=(8, 8))
        patient = f"P{index // 4}" if index < 24 else ("" if index % 2 else "  ")
        rows.append({"path": path, "label": f"c{index % 3}", "patient": patient})
    table = pd.DataFrame(rows)
    table.to_csv(root / "labels.csv", index=False)
    return table


def test_blank_group_cells_are_groups_of_their_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """All 36 blank cells once formed one group: validation got 5 of 60 images and none
    without an id. Now each is its own group: 12 of 60 (20 %) are validated."""
    table = make_patients_csv(tmp_path)
    with caplog.at_level(logging.INFO):
        dm = setup(CSVDataModule, tmp_path, group_column="patient", val_fraction=0.2, seed=0)
    assert (
        "36 of 60 training images have no 'patient' (data.group_column): each is a group of "
        "its own in the splits drawn from them"
    ) in caplog.text
    val, train = dm.splits["val"], dm.splits["train"]
    assert len(val) == 12
    patient = dict(zip(table["path"], table["patient"].str.strip(), strict=True))
    assert any(patient[i] == "" for i in val["id"]) and any(patient[i] == "" for i in train["id"])
    named = [{patient[i] for i in t["id"]} - {""} for t in (train, val)]
    assert not named[0] & named[1]


def test_isic2019_images_without_lesion_id_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = make_isic2019(tmp_path / "isic2019")
    metadata = pd.read_csv(tree.root / "ISIC_2019_Training_Metadata.csv", dtype=str)
    blank = int(metadata["lesion_id"].isna().sum())  # pandas reads the empty cells as NaN
    assert blank > 0
    with caplog.at_level(logging.WARNING):
        dm = setup(ISIC2019DataModule, tree.root, seed=1)
    assert (
        f"{blank} of {len(metadata)} training images have no lesion_id in "
        "ISIC_2019_Training_Metadata.csv"
    ) in caplog.text
    train, val = dm.splits["train"], dm.splits["val"]
    assert not {tree.groups[i] for i in train["id"]} & {tree.groups[i] for i in val["id"]}


# ------------------------------------------------------------- no image in two splits
@pytest.mark.parametrize("option", ["val_root", "test_root"])
def test_a_folder_given_as_its_own_validation_or_test_set(tmp_path: Path, option: str) -> None:
    root = make_folder_tree(tmp_path / "images", {"benign": 4, "malignant": 3})
    split = "val" if option == "val_root" else "test"
    first = str(root / "benign" / "benign_000.jpg")  # the first image of the training scan
    expected = f"7 image file(s) are listed more than once, e.g. {first!r} (train and {split})"
    for given in (root, tmp_path / "link"):  # the folder itself, and a link to it
        if given.name == "link":
            os.symlink(root, given)
        with pytest.raises(DataLayoutError) as error:
            setup(FolderDataModule, root, **{option: str(given)})
        assert one_line(error).startswith(expected), one_line(error)
    assert one_line(error).count("(train and") == 5  # the first five


@pytest.mark.parametrize("option", ["val_csv", "test_csv"])
def test_the_training_csv_given_as_validation_or_test_set(tmp_path: Path, option: str) -> None:
    table = make_csv_tree(tmp_path)
    split = "val" if option == "val_csv" else "test"
    with pytest.raises(DataLayoutError) as error:
        setup(CSVDataModule, tmp_path, **{option: "labels.csv"})
    assert one_line(error).startswith(
        f"24 id(s) are listed more than once, e.g. {table['path'][0]!r} (train and {split})"
    )


def test_one_csv_as_both_validation_and_test_set_is_one_split(tmp_path: Path) -> None:
    table = make_csv_tree(tmp_path)
    table.iloc[:18].to_csv(tmp_path / "labels.csv", index=False)
    table.iloc[18:].to_csv(tmp_path / "held.csv", index=False)
    dm = setup(CSVDataModule, tmp_path, val_csv="held.csv", test_csv="held.csv")
    assert dm.splits["test"]["id"].tolist() == dm.splits["val"]["id"].tolist()
    assert len(dm.splits["val"]) == 6 and len(dm.splits["train"]) == 18


class OverlappingReader(ImageClassificationDataModule):
    """A reader of its own (no assemble_splits) whose test split repeats two training
    images, one of them through a link."""

    class_names = ("a", "b")

    def read_splits(self) -> SplitTables:
        paths = sorted(str(p) for p in (self.root / "scans").glob("*.png"))
        os.symlink(paths[1], self.root / "alias.png")
        table = pd.DataFrame({"id": [Path(p).stem for p in paths], "path": paths})
        table = table.assign(label=[i % 2 for i in range(len(table))])
        alias = table.iloc[[1]].assign(path=str(self.root / "alias.png"))
        test = pd.concat([table.iloc[[0]], alias])
        return {"train": table.iloc[:20], "val": table.iloc[20:], "test": test}


def test_every_reader_passes_the_check(tmp_path: Path) -> None:
    table = make_csv_tree(tmp_path)
    with pytest.raises(DataLayoutError) as error:
        setup(OverlappingReader, tmp_path)
    first, second = (str(tmp_path / p) for p in sorted(table["path"])[:2])
    assert one_line(error) == (
        f"2 image file(s) are listed more than once, e.g. {first!r} (train and test), "
        f"{second!r} (train and test): an image must be listed once, in one split"
    )


def test_a_class_missing_from_the_held_out_split_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One image of class 1 among 20 pairs of class 0: a fifth of it is nearer none than
    one, so the validation split has none, and says so."""
    labels, groups = pairs([0] * 20)
    table = pd.DataFrame(
        {"id": [f"x{i}" for i in range(41)], "path": [f"/d/x{i}.png" for i in range(41)]}
    ).assign(label=[*labels, 1], patient=[*groups, "lonely"])
    with caplog.at_level(logging.WARNING, logger="fgssl.data.splits"):
        splits = assemble_splits(table, group_column="patient", seed=4)
    assert set(splits["val"]["label"]) == {0} and len(splits["val"]) == 8
    assert "validation split: no image of the class(es) of label [1] (too few images or groups" in (
        caplog.text
    )
