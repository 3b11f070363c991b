"""Unlabelled pretraining images (data.unlabelled): sources, bad input, the leak check."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig

from conftest import TINY_RUN_OVERRIDES
from fgssl.data import APTOS2019DataModule
from fgssl.data.unlabelled import (
    UNLABELLED_SPLIT,
    UnlabelledSource,
    add_unlabelled,
    check_held_out_overlap,
    exclude_overlap,
    parse_sources,
    pretrain_images,
    read_sources,
)
from fgssl.errors import (
    ConfigError,
    DataLayoutError,
    DataNotFoundError,
    ImageReadError,
    MissingImagesError,
)
from fgssl.run.factory import instantiate_datamodule
from layouts import write_image


def make_images(folder: Path, names: list[str], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = [folder / name for name in names]
    for index, path in enumerate(paths):
        write_image(path, index, rng)
    return paths


def split(ids: list[str], paths: list[Path], label: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "path": [str(p) for p in paths], "label": label})


@pytest.fixture
def run_splits(tmp_path: Path) -> dict[str, pd.DataFrame]:
    train = make_images(tmp_path / "ds" / "train", ["t0.png", "t1.png", "t2.png"], seed=1)
    val = make_images(tmp_path / "ds" / "val", ["v0.png", "v1.png"], seed=2)
    test = make_images(tmp_path / "ds" / "test", ["s0.png"], seed=3)
    return {
        "train": split(["t0", "t1", "t2"], train).assign(labelled=[True, False, True]),
        "val": split(["v0", "v1"], val),
        "test": split(["s0"], test),
    }


# ----------------------------------------------------------------------------- sources
def test_a_folder_is_read_recursively_without_hidden_or_non_image_files(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    make_images(pool, ["a.png", "sub/b.jpg", "sub/deeper/c.bmp", ".hidden/d.png", ".e.png"])
    (pool / "notes.txt").write_text("not an image")
    table = read_sources(parse_sources([str(pool)]), missing_images="error")
    assert table["id"].tolist() == ["pool/a.png", "pool/sub/b.jpg", "pool/sub/deeper/c.bmp"]
    assert (table["label"] == -1).all()
    assert all(Path(p).is_file() for p in table["path"])


def test_a_csv_source_with_its_column_and_root(tmp_path: Path) -> None:
    make_images(tmp_path / "imgs", ["x.png", "y.png"])
    csv = tmp_path / "lists" / "extra.csv"
    csv.parent.mkdir()
    pd.DataFrame({"file": ["x.png", "y.png"], "other": [1, 2]}).to_csv(csv, index=False)
    sources = parse_sources([{"path": str(csv), "column": "file", "root": str(tmp_path / "imgs")}])
    table = read_sources(sources, missing_images="error")
    assert table["id"].tolist() == ["extra/x.png", "extra/y.png"]
    # relative to the CSV's own folder by default
    pd.DataFrame({"path": ["../imgs/x.png"]}).to_csv(csv, index=False)
    assert read_sources(parse_sources(str(csv)), missing_images="error")["path"].map(
        os.path.realpath
    ).tolist() == [os.path.realpath(tmp_path / "imgs" / "x.png")]


def test_missing_csv_images_follow_missing_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_images(tmp_path, ["x.png"])
    csv = tmp_path / "extra.csv"
    pd.DataFrame({"path": ["x.png", "gone.png"]}).to_csv(csv, index=False)
    sources = parse_sources([str(csv)])
    with pytest.raises(MissingImagesError, match=r"1 of 2 images listed in .*extra.csv.*gone.png"):
        read_sources(sources, missing_images="error")
    with caplog.at_level(logging.WARNING):
        table = read_sources(sources, missing_images="skip")
    assert table["id"].tolist() == ["extra/x.png"]
    assert "gone.png" in caplog.text


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (42, ConfigError, "data.unlabelled must be a path or a list"),
        ([{"folder": "x"}], ConfigError, "expected the keys path"),
        ([3], ConfigError, "entries must be paths"),
        (["/no/such/folder"], DataNotFoundError, "is not a folder of images or a .csv"),
    ],
)
def test_bad_sources_are_refused_in_one_line(value: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_sources(value)


def test_duplicate_ids_empty_sources_and_bad_csvs(tmp_path: Path) -> None:
    make_images(tmp_path / "a" / "pool", ["x.png"])
    make_images(tmp_path / "b" / "pool", ["x.png"], seed=5)
    both = parse_sources([str(tmp_path / "a" / "pool"), str(tmp_path / "b" / "pool")])
    with pytest.raises(DataLayoutError, match=r"'pool/x.png' \(2 rows\)"):
        read_sources(both, missing_images="error")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no image files"):
        read_sources(parse_sources([str(tmp_path / "empty")]), missing_images="error")
    csv = tmp_path / "twice.csv"
    pd.DataFrame({"path": ["a/pool/x.png", "a/pool/x.png"]}).to_csv(csv, index=False)
    with pytest.raises(DataLayoutError, match="more than once"):
        read_sources(parse_sources([str(csv)]), missing_images="error")
    pd.DataFrame({"file": ["a/pool/x.png"]}).to_csv(csv, index=False)
    with pytest.raises(DataLayoutError, match=r"lacks the column\(s\) \['path'\]"):
        read_sources(parse_sources([str(csv)]), missing_images="error")


# -------------------------------------------------------------------------- leak check
def test_held_out_images_are_refused_by_path_and_by_content(
    tmp_path: Path, run_splits: dict[str, pd.DataFrame]
) -> None:
    pool = make_images(tmp_path / "pool", ["p0.png", "p1.png"], seed=9)
    by_path = split(["pool/p0.png", "val-again"], [pool[0], Path(run_splits["val"]["path"][1])])
    with pytest.raises(DataLayoutError, match=r"1 data.unlabelled image\(s\).*val image 'v1'"):
        check_held_out_overlap(by_path.assign(label=-1), run_splits)
    link = tmp_path / "pool" / "link.png"
    os.symlink(run_splits["test"]["path"][0], link)  # another path to the same file
    with pytest.raises(DataLayoutError, match=r"link.png' is test image 's0'"):
        check_held_out_overlap(split(["pool/link.png"], [link], -1), run_splits)
    copy = tmp_path / "pool" / "copy.png"
    shutil.copyfile(run_splits["val"]["path"][0], copy)
    with pytest.raises(DataLayoutError, match=r"copy.png' is byte-identical to val image 'v0'"):
        check_held_out_overlap(split(["pool/copy.png"], [copy], -1), run_splits)


def test_training_images_in_the_pool_are_pretrained_on_once(
    tmp_path: Path, run_splits: dict[str, pd.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_images(tmp_path / "pool", ["p0.png"], seed=9)
    copy = tmp_path / "pool" / "t1-copy.png"
    shutil.copyfile(run_splits["train"]["path"][1], copy)
    table = split(
        ["pool/p0.png", "pool/t1-copy.png", "pool/t0"],
        [pool[0], copy, Path(run_splits["train"]["path"][0])],
        -1,
    )
    with caplog.at_level(logging.INFO, logger="fgssl.data.unlabelled"):
        kept = check_held_out_overlap(table, run_splits)
    assert kept["id"].tolist() == ["pool/p0.png"]
    assert "2 data.unlabelled image(s) are training images" in caplog.text


def test_pretrain_images_hold_every_training_image_and_the_pools(
    tmp_path: Path, run_splits: dict[str, pd.DataFrame]
) -> None:
    pool_dir = tmp_path / "pool"
    make_images(pool_dir, ["p0.png", "p1.png"], seed=9)
    predict = make_images(tmp_path / "ds" / "predict", ["q0.png"], seed=4)
    splits = {**run_splits, "predict": split(["q0"], predict, -1)}
    sources = [UnlabelledSource(pool_dir)]
    splits = add_unlabelled(splits, sources, own=True, missing_images="error")
    splits = exclude_overlap(splits, own=True)
    assert splits[UNLABELLED_SPLIT]["id"].tolist() == ["pool/p0.png", "pool/p1.png"]
    # every training image, the label_fraction-held-back one (t1) too, then the pools
    ids = pretrain_images(splits, own=True)["id"].tolist()
    assert ids == ["t0", "t1", "t2", "pool/p0.png", "pool/p1.png", "q0"]
    assert pretrain_images(splits, own=False)["id"].tolist() == ids[:-1]


def test_own_unlabelled_images_must_exist(run_splits: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ConfigError, match=r"data\.unlabelled_own=true, but APTOS has no"):
        add_unlabelled(run_splits, [], own=True, missing_images="error", dataset="APTOS")
    assert add_unlabelled(run_splits, [], own=False, missing_images="error") == run_splits


# --------------------------------------------------------------------- in a data module
def aptos(root: Path, **kwargs: object) -> APTOS2019DataModule:
    options: dict[str, object] = dict(
        image_size=32, resize_size=36, batch_size=8, num_workers=0, phase="pretrain"
    )
    options.update(kwargs)
    return APTOS2019DataModule(root, **options)  # type: ignore[arg-type]


def test_the_pretrain_phase_reads_the_pools_and_finetuning_does_not(
    aptos_root: Path, tmp_path: Path
) -> None:
    pool = tmp_path / "eyepacs"
    make_images(pool, [f"train/{i}_left.jpeg" for i in range(5)], seed=7)
    dm = aptos(aptos_root, unlabelled=[str(pool)], unlabelled_own=True, label_fraction=0.5)
    dm.setup()
    assert dm.splits is not None
    train, own = dm.splits["train"], dm.splits["predict"]
    pretrain = dm.table("train")
    assert len(pretrain) == len(train) + 5 + len(own)
    assert set(pretrain["id"]) >= {"eyepacs/train/0_left.jpeg", *own["id"]}
    loader = dm.train_dataloader()  # the pretrain loader's sampler draws from all of them
    assert len(loader.sampler) == len(pretrain)  # type: ignore[arg-type]
    assert (loader.dataset.labels[len(train) :] == -1).all()  # type: ignore[attr-defined]
    dm.enter_phase("finetune")  # finetuning: the labels label_fraction kept, no pool
    assert len(dm.table("train")) == int(train["labelled"].sum()) < len(train)
    table = dm.split_table()
    pool_rows = table[table["split"] == UNLABELLED_SPLIT]
    assert len(pool_rows) == 5 and not pool_rows["labelled"].any()
    assert (pool_rows["label"] == -1).all()
    # without the options, the pretrain images are the training images, as before
    plain = aptos(aptos_root)
    assert plain.table("train")["id"].tolist() == train["id"].tolist()


def test_a_validation_image_in_the_pool_is_refused_before_training(
    aptos_root: Path, tmp_path: Path
) -> None:
    dm = aptos(aptos_root)
    dm.setup()
    assert dm.splits is not None
    val = dm.splits["val"].iloc[0]
    pool = tmp_path / "pool"
    make_images(pool, ["a.png"], seed=3)
    shutil.copyfile(val["path"], pool / "renamed.png")
    with pytest.raises(
        DataLayoutError, match=rf"renamed.png' is byte-identical to val image '{val['id']}'"
    ):
        aptos(aptos_root, unlabelled=[str(pool)]).setup()


def test_unreadable_pool_images_follow_missing_images(aptos_root: Path, tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    make_images(pool, ["a.png", "b.png"], seed=3)
    (pool / "broken.png").write_bytes((pool / "a.png").read_bytes()[:60])  # truncated
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        aptos(aptos_root, unlabelled=[str(pool)]).setup()
    dm = aptos(aptos_root, unlabelled=[str(pool)], missing_images="skip")
    dm.setup()
    assert dm.splits is not None
    assert dm.splits[UNLABELLED_SPLIT]["id"].tolist() == ["pool/a.png", "pool/b.png"]


def test_evaluation_reads_no_pool_and_resume_accepts_a_moved_one(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tmp_path: Path
) -> None:
    from fgssl.run.loading import build_eval_datamodule
    from fgssl.run.resume import RESUME_OVERRIDABLE

    cfg = compose_config(
        *TINY_RUN_OVERRIDES,
        f"data.root={aptos_root}",
        f"data.unlabelled=[{tmp_path / 'pool-not-on-this-machine'}]",
        "data.unlabelled_own=true",
    )
    with pytest.raises(DataNotFoundError, match="pool-not-on-this-machine"):
        instantiate_datamodule(cfg)  # training needs it
    datamodule = build_eval_datamodule(cfg)  # fgssl-eval, fgssl-ssl-eval do not
    assert datamodule.splits is not None and UNLABELLED_SPLIT not in datamodule.splits
    assert "data.unlabelled" in RESUME_OVERRIDABLE  # a moved pool; check_resume_split


@pytest.mark.slow
def test_a_run_pretrains_on_a_pool_with_a_label_fraction(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tmp_path: Path
) -> None:
    from fgssl.run.pipeline import run_training

    pool = tmp_path / "pool"
    make_images(pool, [f"img{i}.png" for i in range(16)], seed=11)
    cfg = compose_config(
        *TINY_RUN_OVERRIDES,
        f"data.root={aptos_root}",
        f"data.unlabelled=[{pool}]",
        "data.unlabelled_own=true",
        "data.label_fraction=0.5",
        "trainer.limit_train_batches=null",
        "ssl_monitor.every_n_epochs=0",
        "figures.enabled=false",
        "ssl_eval.enabled=false",
    )
    run_training(cfg, tmp_path / "run")
    table = pd.read_csv(tmp_path / "run" / "split.csv")
    assert (table["split"] == UNLABELLED_SPLIT).sum() == 16
    train = table[table["split"] == "train"]
    own = (table["split"] == "predict").sum()
    steps = pd.read_csv(tmp_path / "run" / "pretrain" / "metrics.csv")["step"].max()
    # every pretrain batch (8 images, last incomplete one dropped) came from all the images
    batches = (len(train) + 16 + own) // 8
    assert steps + 1 == batches > len(train) // 8  # the epoch's last step: its batches
