"""k-fold cross-validation of the training images (data.folds, data.fold): the partition is
stratified and grouped like scikit-learn's folds, the same for every fold index, and the test
split is drawn first and shared by every fold."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from fgssl.data import APTOS2019DataModule, ISIC2018DataModule, MedMNISTDataModule
from fgssl.data.folds import check_folds, fold_of_rows
from fgssl.errors import ConfigError, DataLayoutError
from layouts import ISIC2018Tree, make_isic2018


class Draws:
    draws_splits = True


DRAWS = Draws()

SMALL: dict[str, object] = dict(
    image_size=32, resize_size=36, batch_size=4, num_workers=0, verify_images="none"
)


def splits_of(cls: type, root: Path, **kwargs: object) -> dict[str, set[str]]:
    dm = cls(root, **{**SMALL, "cache_dir": None, **kwargs})
    dm.setup()
    return {name: set(table["id"]) for name, table in dm.splits.items()}


@pytest.fixture(scope="module")
def isic(tmp_path_factory: pytest.TempPathFactory) -> ISIC2018Tree:
    return make_isic2018(tmp_path_factory.mktemp("isic2018") / "isic2018")


# ---------------------------------------------------------------------- the options
@pytest.mark.parametrize(
    ("folds", "fold", "message"),
    [
        (3, None, "data.folds=3 without data.fold: set the fold to validate on, data.fold=0..3-1"),
        (None, 5, "data.fold=5: expected an integer in 0..4"),
        (3, -1, "data.fold=-1: expected an integer in 0..2"),
        (1, 0, "data.folds=1: expected an integer >= 2"),
        (True, 0, "data.folds=True: expected an integer >= 2"),
        (None, "1", "data.fold='1': expected an integer in 0..4"),
    ],
)
def test_bad_fold_options_are_refused_in_one_line(
    folds: object, fold: object, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        check_folds(folds, fold, reader=DRAWS)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_fold_options_default_to_five_folds_and_none() -> None:
    assert check_folds(None, None, reader=DRAWS) == (None, None)
    assert check_folds(None, 4, reader=DRAWS) == (5, 4)
    assert check_folds(10, 9, reader=DRAWS) == (10, 9)


def test_a_reader_of_official_splits_refuses_a_fold(tmp_path: Path) -> None:
    """MedMNIST draws no split: the fold is refused when the module is built (no file read)."""
    with pytest.raises(ConfigError, match="MedMNISTDataModule reads official splits only"):
        MedMNISTDataModule(tmp_path / "missing", fold=0)


def test_a_bad_fold_stops_fgssl_train_before_data_is_read(compose_config) -> None:
    from fgssl.run.factory import configured_datamodule

    cfg = compose_config("experiment=aptos", "data.root=/nonexistent", "data.fold=7")
    with pytest.raises(ConfigError, match=r"data.fold=7: expected an integer in 0..4"):
        configured_datamodule(cfg)


# -------------------------------------------------------------------- the partition
@pytest.mark.parametrize(("count", "folds", "seed"), [(48, 5, 0), (103, 5, 1), (60, 3, 2)])
def test_folds_are_stratified_like_scikit_learns(count: int, folds: int, seed: int) -> None:
    """Every row in one fold; the fold sizes are StratifiedKFold's (N // K or one more) and
    each class's count per fold is within one image of its share, as there."""
    labels = np.random.default_rng(seed).choice(4, size=count, p=[0.5, 0.25, 0.15, 0.1])
    assignment = fold_of_rows(labels.tolist(), folds, seed=seed)
    assert set(assignment) == set(range(folds))
    reference = StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels)
    sizes = sorted(len(held) for _, held in reference)
    assert sorted(np.bincount(assignment).tolist()) == sizes
    for c in range(4):
        share = (labels == c).sum() / folds
        per_fold = np.bincount(assignment[labels == c], minlength=folds)
        assert np.all(np.abs(per_fold - share) <= 1), (c, per_fold, share)


def test_folds_depend_only_on_the_rows_and_the_seed() -> None:
    labels = [i % 3 for i in range(40)]
    first = fold_of_rows(labels, 4, seed=7)
    np.testing.assert_array_equal(first, fold_of_rows(labels, 4, seed=7))
    assert not np.array_equal(first, fold_of_rows(labels, 4, seed=8))


def test_groups_and_identical_files_stay_in_one_fold() -> None:
    """30 groups of 1 to 3 images and two byte-identical files in different groups: no group
    (nor the two groups joined by the identical files) in two folds, each fold near 1/5."""
    rng = np.random.default_rng(0)
    groups = [f"g{g}" for g in range(30) for _ in range(int(rng.integers(1, 4)))]
    labels = [int(g[1:]) % 2 for g in groups]
    same: list[str | None] = [None] * len(groups)
    same[0], same[-1] = "twin", "twin"
    assignment = fold_of_rows(labels, 5, seed=3, groups=groups, same=same)
    for group in set(groups):
        assert len({assignment[i] for i, g in enumerate(groups) if g == group}) == 1
    assert assignment[0] == assignment[-1]
    sizes = np.bincount(assignment, minlength=5)
    assert np.all(np.abs(sizes - len(groups) / 5) <= 3), sizes


def test_too_few_images_for_the_folds() -> None:
    with pytest.raises(ValueError, match="too few"):
        fold_of_rows([0, 1, 0], 5, seed=0)


# ------------------------------------------------------------------- in the readers
def test_aptos_folds_share_the_test_split_and_partition_the_rest(
    aptos_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """data.fold=0..4 with data.test_fraction=0.2: the test split is the one drawn without
    folds, in every fold; the validation folds partition the other images."""
    plain = splits_of(APTOS2019DataModule, aptos_root, test_fraction=0.2)
    with caplog.at_level(logging.INFO, logger="fgssl.data.splits"):
        folds = [
            splits_of(APTOS2019DataModule, aptos_root, test_fraction=0.2, fold=k) for k in range(5)
        ]
    pool = plain["train"] | plain["val"]
    for k, splits in enumerate(folds):
        assert splits["test"] == plain["test"], k
        assert splits["train"] | splits["val"] == pool and not splits["train"] & splits["val"]
    validation = [s["val"] for s in folds]
    assert sum(map(len, validation)) == len(pool) == len(set().union(*validation))
    assert sorted(map(len, validation)) == [9, 9, 10, 10, 10]  # 48 images in 5 folds
    assert "data.val_fraction=0.2 not used" in caplog.text
    assert "fold 0 of 5 is the validation split: 10 of 48 images" in caplog.text


def test_without_a_test_split_each_fold_tests_on_its_validation_fold(
    aptos_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fgssl.data.splits"):
        splits = splits_of(APTOS2019DataModule, aptos_root, fold=1, folds=3)
    assert splits["test"] == splits["val"]
    assert "set data.test_fraction to hold out one test split shared by the folds" in caplog.text


def test_isic2018_folds_keep_lesions_and_the_official_test_set(isic: ISIC2018Tree) -> None:
    """The official test set is every fold's; the official validation set gives way to the
    fold; no lesion is in two folds."""
    folds = [splits_of(ISIC2018DataModule, isic.root, fold=k, folds=3) for k in range(3)]
    lesions = [{isic.lesions[i] for i in s["val"]} for s in folds]
    for k, splits in enumerate(folds):
        assert splits["test"] == set(isic.test_ids)
        assert splits["val"] <= set(isic.train_ids)
        assert not splits["val"] & set(isic.val_ids)
        assert not {isic.lesions[i] for i in splits["train"]} & lesions[k]
    assert set().union(*(s["val"] for s in folds)) == set(isic.train_ids)


def test_more_folds_than_groups_are_refused_naming_the_folds(aptos_root: Path) -> None:
    with pytest.raises(DataLayoutError, match=r"data.folds=50: cannot draw 50 folds of 48"):
        splits_of(APTOS2019DataModule, aptos_root, test_fraction=0.2, fold=0, folds=50)
