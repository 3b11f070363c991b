"""Duplicate images: ids listed twice (every reader and fgssl-predict's inputs), and
byte-identical files under different names (data.duplicates=error|warn|ignore)."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fgssl.cli import predict as predict_cli
from fgssl.data import (
    APTOS2019DataModule,
    CSVDataModule,
    FolderDataModule,
    ISIC2017DataModule,
    ISIC2018DataModule,
)
from fgssl.data import duplicates as duplicates_module
from fgssl.data import splits as splits_module
from fgssl.data.draws import _join, split_off, stratified_split
from fgssl.data.duplicates import content_keys
from fgssl.errors import ConfigError, DataLayoutError
from fgssl.evaluation.predict import images_from_csv, images_from_folder
from layouts import (
    ISIC2017_SPLITS,
    make_csv_tree,
    make_folder_tree,
    make_ham10000,
    make_isic2017,
    make_isic2018,
    repeat_rows,
)

SMALL: dict[str, object] = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)
TRUTH_2018 = "ISIC2018_Task3_{0}_GroundTruth/ISIC2018_Task3_{0}_GroundTruth.csv"


def setup(cls: type, root: Path, **kwargs: object):
    dm = cls(root, **{**SMALL, **kwargs})
    dm.setup()
    return dm


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------ ids listed twice
def test_aptos_train_csv_ids_listed_twice(aptos_copy: Path) -> None:
    csv = aptos_copy / "train.csv"
    ids = pd.read_csv(csv, dtype=str)["id_code"].tolist()
    repeat_rows(csv, "id_code", {ids[2]: 2})
    repeat_rows(csv, "id_code", {ids[5]: 3}, diagnosis="4")  # a conflicting grade
    with pytest.raises(DataLayoutError) as error:
        setup(APTOS2019DataModule, aptos_copy)
    assert one_line(error) == (
        f"{str(csv)!r} lists 2 id_code value(s) more than once (5 rows), e.g. "
        f"{ids[2]!r} (2 rows), {ids[5]!r} (3 rows); 1 of them with conflicting diagnosis, "
        f"e.g. {ids[5]!r}: each image must be listed once"
    )


def test_aptos_test_csv_ids_listed_twice(aptos_copy: Path) -> None:
    csv = aptos_copy / "test.csv"
    first = pd.read_csv(csv, dtype=str)["id_code"].iloc[0]
    repeat_rows(csv, "id_code", {first: 2})
    with pytest.raises(DataLayoutError, match=rf"lists 1 id_code value\(s\).*'{first}' \(2 rows\)"):
        setup(APTOS2019DataModule, aptos_copy)


def test_an_id_that_names_two_files_is_refused(aptos_copy: Path) -> None:
    first = pd.read_csv(aptos_copy / "train.csv", dtype=str)["id_code"].iloc[0]
    images = aptos_copy / "train_images"
    shutil.copy(images / f"{first}.png", images / f"{first}.jpg")
    with pytest.raises(DataLayoutError) as error:
        setup(APTOS2019DataModule, aptos_copy)
    assert f"1 listed id(s) name more than one image file in {str(images)!r}" in one_line(error)
    assert f"{first!r}: '{first}.jpg', '{first}.png'" in str(error.value)


@pytest.mark.parametrize("split", ["Training", "Validation", "Test"])
def test_isic2018_ground_truth_lists_an_image_twice(tmp_path: Path, split: str) -> None:
    tree = make_isic2018(tmp_path / "isic")
    image = {"Training": tree.train_ids, "Validation": tree.val_ids, "Test": tree.test_ids}
    repeat_rows(tree.root / TRUTH_2018.format(split), "image", {image[split][1]: 2})
    with pytest.raises(DataLayoutError) as error:
        setup(ISIC2018DataModule, tree.root)
    assert re.search(
        rf"{split}_GroundTruth\.csv' lists 1 image value\(s\) more than once \(2 rows\), "
        rf"e.g. '{image[split][1]}' \(2 rows\): each image must be listed once$",
        one_line(error),
    )


def test_isic2018_image_in_training_and_validation(tmp_path: Path) -> None:
    tree = make_isic2018(tmp_path / "isic")
    val_id = tree.val_ids[0]
    truth = pd.read_csv(tree.root / TRUTH_2018.format("Validation"), dtype=str)
    training_truth = tree.root / TRUTH_2018.format("Training")
    pd.concat([pd.read_csv(training_truth, dtype=str), truth.iloc[:1]]).to_csv(
        training_truth, index=False
    )
    shutil.copy(
        tree.root / "ISIC2018_Task3_Validation_Input" / f"{val_id}.jpg",
        tree.root / "ISIC2018_Task3_Training_Input",
    )
    with pytest.raises(DataLayoutError) as error:
        setup(ISIC2018DataModule, tree.root)
    assert one_line(error) == (
        f"1 id(s) are listed more than once, e.g. {val_id!r} (train and val): an image must "
        "be listed once, in one split"
    )


def test_ham10000_metadata_lists_an_image_twice(tmp_path: Path) -> None:
    tree = make_ham10000(tmp_path / "ham")
    metadata = tree.root / "HAM10000_metadata.csv"
    repeat_rows(metadata, "image_id", {tree.train_ids[0]: 2}, lesion_id="HAM_9999999")
    with pytest.raises(DataLayoutError) as error:
        setup(ISIC2018DataModule, tree.root)
    assert "lists 1 image_id value(s) more than once (2 rows)" in one_line(error)
    assert f"1 of them with conflicting dx, lesion_id, e.g. {tree.train_ids[0]!r}" in str(
        error.value
    )


def test_lesion_groupings_list_an_image_twice(tmp_path: Path) -> None:
    tree = make_isic2018(tmp_path / "isic")
    groupings = tree.root / "ISIC2018_Task3_Training_LesionGroupings.csv"
    repeat_rows(groupings, "image", {tree.train_ids[3]: 2}, lesion_id="HAM_9999999")
    with pytest.raises(DataLayoutError, match=r"1 of them with conflicting lesion_id"):
        setup(ISIC2018DataModule, tree.root)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_isic2017_ground_truth_lists_an_image_twice(tmp_path: Path, split: str) -> None:
    truths = make_isic2017(tmp_path / "isic2017")
    csv = tmp_path / "isic2017" / ISIC2017_SPLITS[split][1]
    image = truths[split]["image_id"].iloc[4]
    repeat_rows(csv, "image_id", {image: 2}, melanoma="1.0", seborrheic_keratosis="0.0")
    with pytest.raises(DataLayoutError) as error:
        setup(ISIC2017DataModule, tmp_path / "isic2017")
    assert (  # row 4 is a seborrheic keratosis (kinds cycle mel, sk, nevus): now melanoma too
        f"lists 1 image_id value(s) more than once (2 rows), e.g. {image!r} (2 rows); 1 of "
        f"them with conflicting melanoma, seborrheic_keratosis, e.g. {image!r}"
    ) in one_line(error)


def test_csv_lists_an_image_twice(tmp_path: Path) -> None:
    table = make_csv_tree(tmp_path / "data")
    repeat_rows(tmp_path / "data" / "labels.csv", "path", {table["path"][0]: 2})
    with pytest.raises(DataLayoutError) as error:
        setup(CSVDataModule, tmp_path / "data")
    assert f"lists 1 path value(s) more than once (2 rows), e.g. {table['path'][0]!r}" in (
        one_line(error)
    )


def test_csv_lists_one_file_under_two_spellings(tmp_path: Path) -> None:
    root = tmp_path / "data"
    table = make_csv_tree(root)
    extra = table.iloc[[0]].assign(path=table["path"][0].removesuffix(".png"))  # found as .png
    pd.concat([table, extra]).to_csv(root / "labels.csv", index=False)
    with pytest.raises(DataLayoutError) as error:
        setup(CSVDataModule, root)
    assert one_line(error) == (
        f"1 image file(s) are listed more than once, e.g. {str(root / table['path'][0])!r} "
        "(train 2 times): an image must be listed once, in one split"
    )


def test_csv_validation_file_repeats_a_training_image(tmp_path: Path) -> None:
    root = tmp_path / "data"
    table = make_csv_tree(root)
    table.iloc[20:].to_csv(root / "val.csv", index=False)
    table.iloc[19:20].to_csv(root / "test.csv", index=False)
    table.iloc[:21].to_csv(root / "labels.csv", index=False)  # row 20 also in val.csv
    with pytest.raises(DataLayoutError) as error:
        setup(CSVDataModule, root, val_csv="val.csv", test_csv="test.csv")
    assert one_line(error).startswith(
        f"2 id(s) are listed more than once, e.g. {table['path'][19]!r} (train and test), "
        f"{table['path'][20]!r} (train and val)"
    )


def test_folder_same_file_name_in_two_class_folders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ids of the folder layout are paths relative to the root: benign/x.png and
    malignant/x.png are two images. Identical bytes under two names are one image in two
    classes: kept on one side of the split, and their conflicting labels logged."""
    root = make_folder_tree(tmp_path / "images")
    other = np.random.default_rng(5).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "malignant" / "benign_001.png"), other)
    shutil.copy(root / "benign" / "benign_005.png", root / "malignant" / "copy.png")
    with caplog.at_level(logging.WARNING):
        dm = setup(FolderDataModule, root)
    split_of = {i: n for n in ("train", "val") for i in dm.splits[n]["id"]}
    assert {"malignant/benign_001.png", "benign/benign_001.png"} <= set(split_of)
    assert split_of["benign/benign_005.png"] == split_of["malignant/copy.png"]
    assert "1 group(s) of byte-identical image files carry different labels" in caplog.text
    assert "different splits" not in caplog.text


def test_folder_validation_root_may_reuse_relative_paths(tmp_path: Path) -> None:
    train = make_folder_tree(tmp_path / "train", seed=1)
    make_folder_tree(tmp_path / "val", seed=2)  # same names, other images
    dm = setup(FolderDataModule, train, val_root=tmp_path / "val")
    assert set(dm.splits["train"]["id"]) == set(dm.splits["val"]["id"])
    assert not set(dm.splits["train"]["path"]) & set(dm.splits["val"]["path"])


# -------------------------------------------------------------- fgssl-predict's inputs
def test_predict_folder_with_two_files_of_one_name(aptos_root: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(aptos_root / "test_images", tmp_path / "images"))
    first = sorted(folder.iterdir())[0]
    shutil.copy(first, first.with_suffix(".jpg"))
    with pytest.raises(DataLayoutError) as error:
        images_from_folder(folder)
    assert one_line(error) == (
        f"{str(folder)!r} lists 1 image name(s) (the ids, without extension) more than once "
        f"(2 rows), e.g. {first.stem!r} (2 rows): each id must name one image (the "
        "predictions have one row per id)"
    )
    # fgssl-predict fails on it in one line, before it reads the checkpoint
    assert predict_cli.main([str(tmp_path / "none.ckpt"), str(folder)]) == 2


def test_predict_csv_duplicates(aptos_root: Path, tmp_path: Path, capsys) -> None:
    test_csv = aptos_root / "test.csv"
    ids = pd.read_csv(test_csv, dtype=str)["id_code"].tolist()
    listed = tmp_path / "listed.csv"
    pd.DataFrame({"id_code": [*ids, ids[1]]}).to_csv(listed, index=False)
    images = aptos_root / "test_images"
    with pytest.raises(DataLayoutError, match=rf"lists 1 id_code value\(s\).*'{ids[1]}'"):
        images_from_csv(listed, image_dir=images)
    argv = [str(tmp_path / "none.ckpt"), str(listed), "--image-dir", str(images)]
    assert predict_cli.main(argv) == 2
    assert "lists 1 id_code value(s) more than once" in capsys.readouterr().err

    by_path = tmp_path / "paths.csv"  # one file under two spellings
    paths = [str(images / f"{ids[0]}.png"), f"{aptos_root}/test_images/../test_images/{ids[0]}.png"]
    pd.DataFrame({"path": paths}).to_csv(by_path, index=False)
    with pytest.raises(DataLayoutError, match=r"lists 1 image file\(s\) more than once"):
        images_from_csv(by_path)

    (tmp_path / "a").mkdir()
    shutil.copy(images / f"{ids[0]}.png", tmp_path / "a" / f"{ids[1]}.png")
    pd.DataFrame({"path": [f"{images}/{ids[1]}.png", f"a/{ids[1]}.png"]}).to_csv(
        by_path, index=False
    )
    with pytest.raises(DataLayoutError, match=r"lists 1 image name\(s\).*each id must name one"):
        images_from_csv(by_path)  # two files, one id: the predictions could not tell them apart

    folder = Path(shutil.copytree(images, tmp_path / "with_jpg"))
    shutil.copy(folder / f"{ids[2]}.png", folder / f"{ids[2]}.jpg")
    pd.DataFrame({"id_code": ids}).to_csv(listed, index=False)
    with pytest.raises(DataLayoutError, match=rf"name more than one image file.*'{ids[2]}'"):
        images_from_csv(listed, image_dir=folder)


# -------------------------------------------------------- byte-identical image files
def test_content_keys_against_hashlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"x": b"abc" * 1000, "y": b"abc" * 1000, "z": b"abd" * 1000, "w": b"abc"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    read: list[str] = []
    original = duplicates_module._digest.__wrapped__

    def spy(path: str, size: int, mtime_ns: int) -> str:
        read.append(Path(path).name)
        return original(path, size, mtime_ns)

    monkeypatch.setattr(duplicates_module, "_digest", spy)
    paths = [str(tmp_path / n) for n in ("x", "y", "z", "w", "x")]
    keys = content_keys(paths)
    expected = hashlib.blake2b(files["x"], digest_size=16).hexdigest()
    assert keys == [expected, expected, None, None, expected]
    assert sorted(read) == ["x", "y", "z"]  # w's size is unique: never read
    assert content_keys([str(tmp_path / "x"), str(tmp_path / "x")]) == [None, None]


def test_join_merges_groups_that_share_content() -> None:
    assert _join(["p", "q", "r", "s"], [None, "k", None, "k"]) == ["p", "q", "r", "q"]
    assert _join(None, ["k", None, "k", "m"]) == ["#0", "#1", "#0", "#3"]
    assert _join(["p", "q"], [None, None]) is None  # nothing shared: the split is unchanged
    # a chain: p~q through content 'a', q~r through lesion group 'q'
    assert _join(["p", "q", "q", "r"], ["a", "a", "b", "b"]) == ["p", "p", "p", "p"]


def test_split_keeps_identical_files_on_one_side() -> None:
    labels = [0, 1] * 20
    same: list[str | None] = [None] * 40
    for row in (0, 7, 12):
        same[row] = "a"
    for row in (3, 30):
        same[row] = "b"
    for seed in range(10):
        kept, held = split_off(labels, 0.25, seed=seed, same=same)
        assert sorted([*kept, *held]) == list(range(40))
        held_set = set(held.tolist())
        assert len({r in held_set for r in (0, 7, 12)}) == 1
        assert len({r in held_set for r in (3, 30)}) == 1
        plain = split_off(labels, 0.25, seed=seed, same=[None] * 40)
        reference = stratified_split(labels, 0.25, seed=seed)
        assert all(np.array_equal(a, b) for a, b in zip(plain, reference, strict=True))


@pytest.fixture
def isic2017_with_copies(tmp_path: Path) -> Path:
    """ISIC 2017 (official splits) with one image in train, val and test, and two
    identical training images of different labels. By hand: 3 pairs across splits
    (train-val, train-test, val-test), 1 within train, 5 files in 2 groups."""
    root = tmp_path / "isic2017"
    make_isic2017(root)
    folders = {split: root / folder for split, (folder, _, _) in ISIC2017_SPLITS.items()}
    original = folders["train"] / "ISIC_0000000.jpg"
    shutil.copy(original, folders["val"] / "ISIC_0000030.jpg")
    shutil.copy(original, folders["test"] / "ISIC_0000039.jpg")
    shutil.copy(folders["train"] / "ISIC_0000003.jpg", folders["train"] / "ISIC_0000004.jpg")
    return root


ACROSS = (
    "3 pair(s) of byte-identical image files fall in different splits (5 files in 2 group(s) "
    "of identical files), e.g. train 'ISIC_0000000' = val 'ISIC_0000030', train "
    "'ISIC_0000000' = test 'ISIC_0000039', val 'ISIC_0000030' = test 'ISIC_0000039'"
)


def test_identical_files_across_splits_error(isic2017_with_copies: Path) -> None:
    with pytest.raises(DataLayoutError) as error:
        setup(ISIC2017DataModule, isic2017_with_copies, duplicates="error")
    assert one_line(error) == (
        f"{ACROSS}; remove the copies or set data.duplicates=warn to train anyway"
    )


def test_identical_files_across_splits_warn(
    isic2017_with_copies: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fgssl.data.duplicates"):
        dm = setup(ISIC2017DataModule, isic2017_with_copies)  # warn is the default
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{ACROSS} (split.csv marks them in its duplicate_group column)" in warnings
    assert "1 group(s) of byte-identical image files carry different labels" in warnings
    assert "1 pair(s) of byte-identical image files lie in the same split" in caplog.text
    written = pd.read_csv(dm.write_split(tmp_path / "split.csv"), dtype=str, keep_default_na=False)
    # independently: SHA-256 of every file, grouped
    digest = {}
    for path in isic2017_with_copies.rglob("ISIC_???????.jpg"):
        digest[path.stem] = hashlib.sha256(path.read_bytes()).hexdigest()
    twins = {i for i, d in digest.items() if list(digest.values()).count(d) > 1}
    assert twins == {"ISIC_0000000", "ISIC_0000030", "ISIC_0000039", "ISIC_0000003", "ISIC_0000004"}
    marked = written[written["duplicate_group"] != ""]
    assert set(marked["id"]) == twins and len(marked) == 5
    for _, rows in marked.groupby("duplicate_group"):
        assert len({digest[i] for i in rows["id"]}) == 1
    assert marked["duplicate_group"].nunique() == 2


def test_identical_files_ignore_reads_no_file(
    isic2017_with_copies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("data.duplicates=ignore must not hash")

    monkeypatch.setattr(duplicates_module, "content_keys", fail)
    monkeypatch.setattr(splits_module, "content_keys", fail)
    with caplog.at_level(logging.INFO):
        dm = setup(ISIC2017DataModule, isic2017_with_copies, duplicates="ignore")
    assert "byte-identical" not in caplog.text
    written = pd.read_csv(dm.write_split(tmp_path / "split.csv"))
    assert list(written.columns) == ["id", "label", "split", "labelled"]


def test_unknown_duplicates_mode(aptos_root: Path) -> None:
    with pytest.raises(ConfigError) as error:
        APTOS2019DataModule(aptos_root, duplicates="maybe")  # type: ignore[arg-type]
    assert one_line(error) == (
        "data.duplicates must be one of ['error', 'warn', 'ignore'], got 'maybe'"
    )


def add_copies(root: Path, copies: dict[str, list[str]]) -> None:
    """APTOS: list byte copies of training images under new ids (with the same grade)."""
    table = pd.read_csv(root / "train.csv", dtype=str)
    rows = []
    for source, new_ids in copies.items():
        grade = table.loc[table["id_code"] == source, "diagnosis"].iloc[0]
        for new in new_ids:
            shutil.copy(
                root / "train_images" / f"{source}.png", root / "train_images" / f"{new}.png"
            )
            rows.append({"id_code": new, "diagnosis": grade})
    pd.concat([table, pd.DataFrame(rows)]).to_csv(root / "train.csv", index=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_drawn_splits_keep_identical_files_together(
    aptos_copy: Path, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    ids = pd.read_csv(aptos_copy / "train.csv", dtype=str)["id_code"].tolist()
    groups = [[ids[0], "copy0a"], [ids[1], "copy1a", "copy1b"], [ids[2], "copy2a"]]
    add_copies(aptos_copy, {group[0]: group[1:] for group in groups})
    with caplog.at_level(logging.WARNING):
        dm = setup(APTOS2019DataModule, aptos_copy, seed=seed, test_fraction=0.2)
    assert "different splits" not in caplog.text
    split_of = {i: name for name in ("train", "val", "test") for i in dm.splits[name]["id"]}
    assert len(split_of) == 64
    for group in groups:
        assert len({split_of[i] for i in group}) == 1, group
    table = dm.split_table()
    assert (table["duplicate_group"] != "").sum() == 7  # by hand: 2 + 3 + 2 files


def test_without_copies_the_drawn_split_is_unchanged(aptos_root: Path) -> None:
    checked = setup(APTOS2019DataModule, aptos_root, seed=2, test_fraction=0.2)
    unchecked = setup(
        APTOS2019DataModule, aptos_root, seed=2, test_fraction=0.2, duplicates="ignore"
    )
    for name in ("train", "val", "test"):
        assert checked.splits[name]["id"].tolist() == unchecked.splits[name]["id"].tolist()
        assert set(checked.splits[name]["duplicate_group"]) == {""}


def test_a_training_image_among_the_images_to_predict(
    aptos_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One pair: the test split is the validation split (test_fraction=0), not a copy."""
    first = pd.read_csv(aptos_copy / "train.csv", dtype=str)["id_code"].iloc[0]
    target = sorted((aptos_copy / "test_images").iterdir())[0]
    shutil.copy(aptos_copy / "train_images" / f"{first}.png", target)
    for seed in (0, 1, 2, 3):  # the training image falls in train or in val (= test)
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            dm = setup(APTOS2019DataModule, aptos_copy, seed=seed)
        split = "val" if first in set(dm.splits["val"]["id"]) else "train"
        expected = (
            "1 pair(s) of byte-identical image files fall in different splits (2 files in 1 "
            f"group(s) of identical files), e.g. {split} {first!r} = predict {target.stem!r}"
        )
        assert expected in caplog.text
