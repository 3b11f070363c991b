"""The readers of the wider benchmarks (EyePACS, Messidor-2, IDRiD, DDR, ISIC 2019, ISIC
2020) on trees in their official layouts (tests/layouts_more.py): labels, splits, quirks,
the bad-input rules every reader shares, the unlabelled pool and the configs."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig

from fgssl.data import (
    DDRDataModule,
    EyePACSDataModule,
    IDRiDDataModule,
    ImageClassificationDataModule,
    ISIC2019DataModule,
    ISIC2020DataModule,
    Messidor2DataModule,
)
from fgssl.errors import DataLayoutError, DataNotFoundError, ImageReadError, MissingImagesError
from layouts_more import (
    IDRID,
    IDRID_TEST_CSV,
    IDRID_TRAIN_CSV,
    Tree,
    make_ddr,
    make_eyepacs,
    make_idrid,
    make_isic2019,
    make_isic2020,
    make_messidor2,
)

Compose = Callable[..., DictConfig]


@dataclass(frozen=True)
class Spec:
    cls: type[ImageClassificationDataModule]
    build: Callable[[Path], Tree]
    truth: str
    """The training label file, relative to the root."""
    metric: str


SPECS = {
    "eyepacs": Spec(EyePACSDataModule, make_eyepacs, "trainLabels.csv", "kappa"),
    "messidor2": Spec(Messidor2DataModule, make_messidor2, "messidor_data.csv", "kappa"),
    "idrid": Spec(IDRiDDataModule, make_idrid, f"{IDRID}/{IDRID_TRAIN_CSV}", "kappa"),
    "ddr": Spec(DDRDataModule, make_ddr, "DR_grading/train.txt", "kappa"),
    "isic2019": Spec(
        ISIC2019DataModule, make_isic2019, "ISIC_2019_Training_GroundTruth.csv", "balanced_acc"
    ),
    "isic2020": Spec(
        ISIC2020DataModule, make_isic2020, "ISIC_2020_Training_GroundTruth_v2.csv", "auroc"
    ),
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tree]:
    """One read-only tree per dataset."""
    return {name: spec.build(tmp_path_factory.mktemp(name) / name) for name, spec in SPECS.items()}


def copy(tree: Tree, tmp_path: Path) -> Tree:
    root = Path(shutil.copytree(tree.root, tmp_path / tree.root.name))
    files = [root / f.relative_to(tree.root) for f in tree.files]
    return Tree(root, tree.labels, tree.groups, files)


def datamodule(name: str, root: Path, **kwargs: object) -> ImageClassificationDataModule:
    options: dict[str, object] = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)
    options.update(kwargs)
    dm = SPECS[name].cls(root, **options)  # type: ignore[arg-type]
    dm.setup()
    return dm


def same_labels(table: pd.DataFrame, truth: dict[str, int | None]) -> bool:
    return all(truth[i] == lab for i, lab in zip(table["id"], table["label"], strict=True))


def check_labels(dm: ImageClassificationDataModule, truth: dict[str, int | None]) -> None:
    assert dm.splits is not None
    for split in ("train", "val", "test"):
        assert same_labels(dm.splits[split], truth), split


def groups_of(tree: Tree, table: pd.DataFrame) -> set[str]:
    return {tree.groups[i] for i in table["id"]}


# ------------------------------------------------------------------------- each dataset
def test_eyepacs_patients_stay_together_and_the_solution_is_the_test_set(
    trees: dict[str, Tree],
) -> None:
    tree = trees["eyepacs"]
    dm = datamodule("eyepacs", tree.root, seed=1)
    assert dm.splits is not None and dm.num_classes == 5 and dm.ordinal
    train, val, test = (dm.splits[s] for s in ("train", "val", "test"))
    assert len(train) + len(val) == 40 and len(val) == 8  # 4 of 20 patients, both eyes
    assert not groups_of(tree, train) & groups_of(tree, val)
    assert sorted(test["id"]) == sorted(tree.labels["test"])  # retinopathy_solution.csv
    check_labels(dm, {**tree.labels["train"], **tree.labels["test"]})
    public = datamodule("eyepacs", tree.root, test_usage="Public")
    assert public.splits is not None and len(public.splits["test"]) == 4  # rows 0, 3, 6, 9


def test_eyepacs_without_the_solution_predicts_the_test_images(
    trees: dict[str, Tree], tmp_path: Path
) -> None:
    tree = copy(trees["eyepacs"], tmp_path)
    (tree.root / "retinopathy_solution.csv").unlink()
    dm = datamodule("eyepacs", tree.root, test_fraction=0.2)
    assert dm.splits is not None
    assert sorted(dm.splits["predict"]["id"]) == sorted(tree.labels["test"])
    assert set(dm.splits["predict"]["label"]) == {-1}
    sides = [groups_of(tree, dm.splits[s]) for s in ("train", "val", "test")]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


def test_eyepacs_refuses_ids_that_are_not_eyes(trees: dict[str, Tree], tmp_path: Path) -> None:
    tree = copy(trees["eyepacs"], tmp_path)
    table = pd.read_csv(tree.root / "trainLabels.csv", dtype=str)
    table.loc[1, "image"] = "10_middle"
    table.to_csv(tree.root / "trainLabels.csv", index=False)
    with pytest.raises(DataLayoutError, match=r"1 image id\(s\).*not <patient>_left.*10_middle"):
        datamodule("eyepacs", tree.root)


def test_messidor2_leaves_ungradable_images_out_and_counts_them(
    trees: dict[str, Tree], caplog: pytest.LogCaptureFixture
) -> None:
    tree = trees["messidor2"]
    with caplog.at_level(logging.INFO):
        dm = datamodule("messidor2", tree.root)
    assert "3 of 30 images are ungradable" in caplog.text
    assert dm.splits is not None
    ids = [*dm.splits["train"]["id"], *dm.splits["val"]["id"]]
    gradable = {i for i, label in tree.labels["train"].items() if label is not None}
    assert sorted(ids) == sorted(gradable) and len(ids) == 27
    assert dm.splits["test"].equals(dm.splits["val"])
    check_labels(dm, tree.labels["train"])
    suffixes = {Path(p).suffix for p in dm.splits["train"]["path"]}
    assert suffixes == {".png", ".JPG"}  # 'IM000001.jpg' in the CSV is IM000001.JPG on disk


def test_messidor2_grade_outside_0_to_4(trees: dict[str, Tree], tmp_path: Path) -> None:
    tree = copy(trees["messidor2"], tmp_path)
    table = pd.read_csv(tree.root / "messidor_data.csv", dtype=str, keep_default_na=False)
    table.loc[5, "adjudicated_dr_grade"] = "7.0"
    table.to_csv(tree.root / "messidor_data.csv", index=False)
    with pytest.raises(DataLayoutError, match=r"1 row.*adjudicated_dr_grade outside.*'7\.0'"):
        datamodule("messidor2", tree.root)


def test_idrid_official_headers_and_test_names_that_repeat_training_names(
    trees: dict[str, Tree],
) -> None:
    tree = trees["idrid"]
    header = (tree.root / IDRID / IDRID_TRAIN_CSV).read_text().splitlines()[0]
    assert header.startswith("Image name,Retinopathy grade,Risk of macular edema ,,")
    for root in (tree.root, tree.root / IDRID):  # the IDRiD folder or B. Disease Grading
        dm = datamodule("idrid", root)
        assert dm.splits is not None
        assert len(dm.splits["train"]) + len(dm.splits["val"]) == 25  # empty rows ignored
        test = dm.splits["test"]
        assert list(test["id"]) == list(tree.labels["test"])  # IDRiD_001 ... again
        assert all("b. Testing Set" in p for p in test["path"])
        assert same_labels(test, tree.labels["test"])
        assert same_labels(dm.splits["train"], tree.labels["train"])


def test_idrid_test_csv_without_the_grade_column(trees: dict[str, Tree], tmp_path: Path) -> None:
    tree = copy(trees["idrid"], tmp_path)
    path = tree.root / IDRID / IDRID_TEST_CSV
    path.write_text(path.read_text().replace("Retinopathy grade", "DR grade"))
    with pytest.raises(DataLayoutError, match=r"lacks the column\(s\) \['Retinopathy grade'\]"):
        datamodule("idrid", tree.root)


def test_ddr_official_sets_and_ungradable_label_5(
    trees: dict[str, Tree], caplog: pytest.LogCaptureFixture
) -> None:
    tree = trees["ddr"]
    with caplog.at_level(logging.INFO):
        dm = datamodule("ddr", tree.root)
    assert "DDR train: 3 of 25 images are ungradable (label 5)" in caplog.text
    assert dm.splits is not None
    for split in ("train", "val", "test"):
        expected = [i for i, label in tree.labels[split].items() if label is not None]
        assert list(dm.splits[split]["id"]) == expected
        assert same_labels(dm.splits[split], tree.labels[split])
    drawn = datamodule("ddr", tree.root / "DR_grading", val_fraction=0.2)
    assert drawn.splits is not None and not set(drawn.splits["val"]["id"]) & set(tree.labels["val"])


def test_ddr_malformed_line(trees: dict[str, Tree], tmp_path: Path) -> None:
    tree = copy(trees["ddr"], tmp_path)
    path = tree.root / "DR_grading" / "valid.txt"
    path.write_text(path.read_text() + "lonely.jpg\n")
    with pytest.raises(DataLayoutError, match=r"line 11 of .*valid\.txt.*'lonely\.jpg'"):
        datamodule("ddr", tree.root)


def test_isic2019_lesions_downsampled_names_and_unk(
    trees: dict[str, Tree], caplog: pytest.LogCaptureFixture
) -> None:
    tree = trees["isic2019"]
    with caplog.at_level(logging.WARNING):
        dm = datamodule("isic2019", tree.root, seed=3)
    assert dm.num_classes == 8 and "UNK" not in dm.class_names
    assert "ISIC 2019 test: 2 of 10 images are UNK" in caplog.text
    assert dm.splits is not None
    train, val, test = (dm.splits[s] for s in ("train", "val", "test"))
    assert sorted([*train["id"], *val["id"]]) == sorted(tree.labels["train"])
    assert any(i.endswith("_downsampled") for i in [*train["id"], *val["id"]])
    assert not groups_of(tree, train) & groups_of(tree, val)  # lesion_id, else the image
    assert sorted(test["id"]) == sorted(
        i for i, lab in tree.labels["test"].items() if lab is not None
    )
    check_labels(dm, {**tree.labels["train"], **tree.labels["test"]})


def test_isic2019_without_test_truth_or_metadata(
    trees: dict[str, Tree], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = copy(trees["isic2019"], tmp_path)
    (tree.root / "ISIC_2019_Test_GroundTruth.csv").unlink()
    (tree.root / "ISIC_2019_Training_Metadata.csv").unlink()
    with caplog.at_level(logging.WARNING):
        dm = datamodule("isic2019", tree.root)
    assert "no ISIC_2019_Training_Metadata.csv" in caplog.text
    assert dm.splits is not None and dm.splits["test"].equals(dm.splits["val"])
    assert len(dm.splits["predict"]) == 10 and set(dm.splits["predict"]["label"]) == {-1}


def test_isic2020_patients_and_the_official_duplicates_list(
    trees: dict[str, Tree], caplog: pytest.LogCaptureFixture
) -> None:
    tree = trees["isic2020"]
    pairs = pd.read_csv(tree.root / "ISIC_2020_Training_Duplicates.csv")
    with caplog.at_level(logging.INFO):
        dm = datamodule("isic2020", tree.root, seed=2)
    assert "2 images left out as duplicates" in caplog.text
    assert dm.splits is not None and dm.class_names == ("benign", "melanoma")
    train, val = dm.splits["train"], dm.splits["val"]
    ids = {*train["id"], *val["id"]}
    assert ids == set(tree.labels["train"]) - set(pairs["image_name_2"])
    assert set(pairs["image_name_1"]) <= ids
    assert not groups_of(tree, train) & groups_of(tree, val)
    assert set(train["label"]) == {0, 1}
    check_labels(dm, tree.labels["train"])
    assert len(dm.splits["predict"]) == 5
    kept = datamodule("isic2020", tree.root, seed=2, remove_duplicates=False)
    assert kept.splits is not None
    assert len(kept.splits["train"]) + len(kept.splits["val"]) == len(tree.labels["train"])


def test_isic2020_kaggle_layout_warns_without_the_duplicates_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = make_isic2020(tmp_path / "siim", kaggle=True)
    with caplog.at_level(logging.WARNING):
        dm = datamodule("isic2020", tree.root)
    assert "no ISIC_2020_Training_Duplicates.csv" in caplog.text
    assert dm.splits is not None
    assert all("/jpeg/train/" in p for p in dm.splits["train"]["path"])  # not the DICOMs
    assert {*dm.splits["train"]["id"], *dm.splits["val"]["id"]} == set(tree.labels["train"])


# ------------------------------------------------------------- rules every reader keeps
@pytest.mark.parametrize("name", SPECS)
def test_metric_classes_and_one_batch(trees: dict[str, Tree], name: str) -> None:
    dm = datamodule(name, trees[name].root)
    assert dm.official_metric == SPECS[name].metric
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert int(batch["label"].max()) < dm.num_classes


@pytest.mark.parametrize("name", SPECS)
def test_missing_images_are_named_or_skipped(
    trees: dict[str, Tree], tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    tree = copy(trees[name], tmp_path)
    dm = datamodule(name, tree.root)
    assert dm.splits is not None
    listed = list(dm.splits["train"]["path"])
    gone = Path(listed[0])
    gone.unlink()
    with pytest.raises(MissingImagesError, match=rf"1 of \d+ images listed in .*{gone.stem}"):
        datamodule(name, tree.root)
    with caplog.at_level(logging.WARNING):
        skipped = datamodule(name, tree.root, missing_images="skip")
    assert "skipping them" in caplog.text
    assert skipped.splits is not None
    assert gone.stem not in {*skipped.splits["train"]["id"], *skipped.splits["val"]["id"]}


@pytest.mark.parametrize("name", SPECS)
def test_unreadable_images_are_named_or_skipped(
    trees: dict[str, Tree], tmp_path: Path, name: str
) -> None:
    tree = copy(trees[name], tmp_path)
    dm = datamodule(name, tree.root)
    assert dm.splits is not None
    broken = Path(dm.splits["train"]["path"].iloc[0])
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 2])  # truncated
    with pytest.raises(ImageReadError, match=rf"1 of \d+ images cannot be read.*{broken.name}"):
        datamodule(name, tree.root)
    skipped = datamodule(name, tree.root, missing_images="skip")
    assert skipped.splits is not None
    assert str(broken) not in {*skipped.splits["train"]["path"], *skipped.splits["val"]["path"]}


def duplicate_first_row(tree: Tree, truth: str) -> str:
    """List the first training image twice in the label file; returns its listed name."""
    path = tree.root / truth
    if path.suffix == ".txt":
        first = path.read_text().splitlines()[0]
        path.write_text(path.read_text() + first + "\n")
        return first.split()[0]
    lines = path.read_text().splitlines()
    row = 5 if truth.endswith("messidor_data.csv") else 1  # Messidor: a gradable row
    path.write_text("\n".join([*lines, lines[row]]) + "\n")
    return lines[row].split(",")[0]


@pytest.mark.parametrize("name", SPECS)
def test_an_image_listed_twice_is_refused(
    trees: dict[str, Tree], tmp_path: Path, name: str
) -> None:
    tree = copy(trees[name], tmp_path)
    listed = duplicate_first_row(tree, SPECS[name].truth)
    with pytest.raises(DataLayoutError, match=rf"lists 1 .* more than once.*{listed}"):
        datamodule(name, tree.root)


@pytest.mark.parametrize("name", SPECS)
def test_byte_identical_images_in_two_splits(
    trees: dict[str, Tree], tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A training image copied over an image of another split: warned about by default,
    refused with duplicates=error; drawn splits keep identical files on one side."""
    tree = copy(trees[name], tmp_path)
    dm = datamodule(name, tree.root, duplicates="ignore")
    assert dm.splits is not None
    other = "test" if not dm.splits["test"].equals(dm.splits["val"]) else "val"
    source = Path(dm.splits["train"]["path"].iloc[0])
    target = Path(dm.splits[other]["path"].iloc[0])
    shutil.copyfile(source, target)
    if other == "val" and name != "ddr":  # both drawn from the training images
        for mode in ("error", "warn"):
            drawn = datamodule(name, tree.root, duplicates=mode)  # nothing to refuse
            assert drawn.splits is not None
            sides = [
                split
                for split in ("train", "val")
                if {str(source), str(target)} & set(drawn.splits[split]["path"])
            ]
            assert sides in (["train"], ["val"])  # both files on one side
        return
    with pytest.raises(DataLayoutError, match=r"byte-identical"):
        datamodule(name, tree.root, duplicates="error")
    with caplog.at_level(logging.WARNING):
        datamodule(name, tree.root)
    assert "byte-identical" in caplog.text


# ------------------------------------------------------------------- unlabelled pools
@pytest.mark.parametrize("name", SPECS)
def test_unlabelled_pool_lists_every_image_without_label_files(
    trees: dict[str, Tree], tmp_path: Path, name: str
) -> None:
    tree = copy(trees[name], tmp_path)
    for label_file in [*tree.root.rglob("*.csv"), *tree.root.rglob("*.txt")]:
        label_file.unlink()
    dm = SPECS[name].cls(tree.root, image_size=32, resize_size=36)
    pool = dm.unlabelled_images()  # type: ignore[attr-defined]
    assert sorted(pool["path"]) == sorted(str(f) for f in tree.files)
    assert set(pool["label"]) == {-1} and pool["id"].is_unique


# ---------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", SPECS)
def test_config_builds_the_reader(compose_config: Compose, name: str, tmp_path: Path) -> None:
    cfg = compose_config(f"data={name}", f"data.root={tmp_path}", "data.image_size=96")
    dm = instantiate(cfg.data)
    assert type(dm) is SPECS[name].cls and dm.official_metric == SPECS[name].metric
    assert (dm.image_size, dm.resize_size) == (96, 110) and dm.cache is not None
    assert dm.missing_images == "error" and dm.duplicates == "warn"


def test_missing_root_and_label_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name, pattern in [
        ("eyepacs", r"trainLabels\.csv"),
        ("messidor2", r"messidor_data\.csv"),
        ("idrid", r"B\. Disease Grading"),
        ("ddr", r"train\.txt"),
        ("isic2019", r"ISIC_2019_Training_GroundTruth\.csv"),
        ("isic2020", r"ISIC_2020_Training_GroundTruth_v2\.csv"),
    ]:
        with pytest.raises(DataNotFoundError, match=pattern):
            datamodule(name, tmp_path / "empty")
