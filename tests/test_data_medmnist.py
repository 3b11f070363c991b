"""The MedMNIST reader: official .npz files (built here in the official format), their
official splits, pixels unchanged, and the inputs it refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fgssl.data import MedMNISTDataModule
from fgssl.data.io import read_rgb
from fgssl.data.medmnist import DATASETS, save_npz
from fgssl.errors import ConfigError, DataLayoutError, DataNotFoundError
from realdata_layouts import realdata_root

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _arrays(counts: dict[str, int], size: int, classes: int, grey: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (size, size) if grey else (size, size, 3)
    images = {s: rng.integers(0, 256, (n, *shape), dtype=np.uint8) for s, n in counts.items()}
    labels = {s: np.arange(n) % classes for s, n in counts.items()}
    return images, labels


def _module(root: Path, tmp_path: Path, **kwargs) -> MedMNISTDataModule:  # type: ignore[no-untyped-def]
    return MedMNISTDataModule(root, extract_dir=tmp_path / "extract", num_workers=0, **kwargs)


def test_official_splits_labels_and_pixels(tmp_path: Path) -> None:
    counts = {"train": 14, "val": 4, "test": 7}
    images, labels = _arrays(counts, 28, classes=7)
    save_npz(tmp_path / "dermamnist.npz", images, labels)
    dm = _module(tmp_path, tmp_path)
    dm.setup()
    assert dm.splits is not None
    assert {s: len(t) for s, t in dm.splits.items()} == counts
    assert list(dm.class_names) == list(DATASETS["dermamnist"].classes)
    assert dm.class_names[4] == "melanoma" and dm.official_metric == "auroc"
    for split, table in dm.splits.items():
        assert table["id"].tolist() == [f"{split}/{i:06d}" for i in range(counts[split])]
        assert table["label"].tolist() == labels[split].tolist()
        # the PNG files hold the arrays' pixels exactly (lossless, RGB order kept)
        for row, path in enumerate(table["path"]):
            np.testing.assert_array_equal(read_rgb(path), images[split][row])


def test_grey_files_and_sizes_above_28(tmp_path: Path) -> None:
    images, labels = _arrays({"train": 6, "val": 2, "test": 2}, 64, classes=2, grey=True)
    save_npz(tmp_path / "pneumoniamnist_64.npz", images, labels)
    dm = _module(tmp_path, tmp_path, flag="pneumoniamnist", size=64, image_size=64)
    dm.setup()
    assert dm.splits is not None
    first = read_rgb(dm.splits["val"]["path"].iloc[1])
    assert first.shape == (64, 64, 3)  # grey -> RGB by fgssl's one rule
    np.testing.assert_array_equal(first[..., 0], images["val"][1])
    # the .npz itself as the root, whatever its name
    named = tmp_path / "mine.npz"
    named.write_bytes((tmp_path / "pneumoniamnist_64.npz").read_bytes())
    assert len(_module(named, tmp_path, flag="pneumoniamnist").reread()["train"]) == 6


def test_retinamnist_is_graded(tmp_path: Path) -> None:
    images, labels = _arrays({"train": 10, "val": 5, "test": 5}, 28, classes=5)
    save_npz(tmp_path / "retinamnist.npz", images, labels)
    dm = _module(tmp_path, tmp_path, flag="retinamnist")
    assert dm.ordinal and dm.class_names[0] == "No DR" and len(dm.class_names) == 5


def test_extraction_is_reused_and_redone_when_the_file_changes(tmp_path: Path) -> None:
    images, labels = _arrays({"train": 4, "val": 2, "test": 2}, 28, classes=7)
    npz = save_npz(tmp_path / "dermamnist.npz", images, labels)
    first = Path(_module(tmp_path, tmp_path).reread()["train"]["path"].iloc[0]).parents[1]
    again = Path(_module(tmp_path, tmp_path).reread()["train"]["path"].iloc[0]).parents[1]
    assert again == first
    images["train"][0] = 255 - images["train"][0]
    save_npz(npz, images, labels)
    changed = _module(tmp_path, tmp_path).reread()["train"]
    assert Path(changed["path"].iloc[0]).parents[1] != first
    np.testing.assert_array_equal(read_rgb(changed["path"].iloc[0]), images["train"][0])


def test_refused_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ChestMNIST is multi-label.*single-label"):
        MedMNISTDataModule(tmp_path, flag="chestmnist")
    with pytest.raises(ConfigError, match=r"data.flag='dermamnst'"):
        MedMNISTDataModule(tmp_path, flag="dermamnst")
    with pytest.raises(ConfigError, match=r"data.size=32"):
        MedMNISTDataModule(tmp_path, size=32)
    with pytest.raises(DataNotFoundError, match=r"dermamnist.npz"):
        _module(tmp_path, tmp_path).setup()  # no file
    images, labels = _arrays({"train": 4, "val": 2, "test": 2}, 28, classes=7)
    multi = {s: np.zeros((len(v), 14), dtype=np.uint8) for s, v in labels.items()}
    np.savez(
        tmp_path / "dermamnist.npz",
        **{f"{s}_images": images[s] for s in images},
        **{f"{s}_labels": multi[s] for s in multi},
    )
    with pytest.raises(DataLayoutError, match=r"shape \(4, 14\), 14 labels per image"):
        _module(tmp_path, tmp_path).setup()
    labels["val"] = np.array([0, 9])
    save_npz(tmp_path / "dermamnist.npz", images, labels)
    with pytest.raises(DataLayoutError, match=r"val_labels holds values in \[0, 9\].*7 classes"):
        _module(tmp_path, tmp_path).setup()
    np.savez(tmp_path / "dermamnist.npz", train_images=images["train"])
    with pytest.raises(DataLayoutError, match=r"no array 'train_labels'"):
        _module(tmp_path, tmp_path).setup()


def test_dermamnist_built_from_real_ham10000(tmp_path: Path) -> None:
    """scripts/make_dermamnist.py on the shared HAM10000 images: the official format, read
    back with the labels of HAM10000_metadata.csv (counted independently here)."""
    ham = realdata_root() / "ham10000-200x150"
    if not (ham / "HAM10000_metadata.csv").is_file():
        pytest.skip(f"no HAM10000 images at {str(ham)!r} (shared/realdata is not in the package)")
    script = [sys.executable, str(SCRIPTS / "make_dermamnist.py"), str(ham), str(tmp_path)]
    subprocess.run(
        [*script, "--limit", "150", "--sizes", "28", "64"],
        check=True,
        capture_output=True,
    )
    meta = pd.read_csv(ham / "HAM10000_metadata.csv").iloc[:150]
    split = pd.read_csv(tmp_path / "dermamnist_split.csv")
    assert split["split"].value_counts().to_dict() == {"train": 105, "test": 30, "val": 15}
    codes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]  # DermaMNIST's label order
    for size in (28, 64):
        dm = _module(tmp_path, tmp_path, size=size, image_size=size)
        dm.setup()
        assert dm.splits is not None
        for name, table in dm.splits.items():
            rows = split.index[split["split"] == name]
            expected = [codes.index(dx) for dx in meta.loc[rows, "dx"]]
            assert table["label"].tolist() == expected
            assert read_rgb(table["path"].iloc[0]).shape == (size, size, 3)


def test_config_sizes_follow_the_file_and_upscale(compose_config) -> None:  # type: ignore[no-untyped-def]
    """The network sees the file's size unless data.image_size says otherwise (MedMNIST's
    ResNet (224) runs upscale the 28 px images): no crop, a plain resize."""
    from hydra.utils import instantiate

    cfg = compose_config("data=medmnist", "data.root=/x", "data.size=64")
    assert (cfg.data.image_size, cfg.data.resize_size) == (64, 64)
    cfg = compose_config("data=medmnist", "data.root=/x", "data.image_size=224")
    dm = instantiate(cfg.data)
    assert (dm.size, dm.image_size, dm.resize_size) == (28, 224, 224)
    image = np.zeros((28, 28, 3), dtype=np.uint8)
    for name in ("train", "eval"):
        assert dm.transforms[name](image).shape == (3, 224, 224)
    assert list(cfg.data.mean) == [0.5, 0.5, 0.5] == list(cfg.data.std)
