"""Every lister of image files: links followed without looping, one list of extensions,
names matched after Unicode normalisation, ids that carry their extension."""

from __future__ import annotations

import logging
import os
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fgssl.data import CSVDataModule, FolderDataModule
from fgssl.data.benchmark_tables import list_unlabelled
from fgssl.data.image_files import resolve_images
from fgssl.data.image_listing import IMAGE_EXTENSIONS, FileMatcher, list_files, shown
from fgssl.data.io import read_rgb
from fgssl.data.tables import find_images
from fgssl.data.unlabelled_sources import UnlabelledSource, read_sources
from fgssl.errors import DataLayoutError, MissingImagesError
from fgssl.evaluation.predict import images_from_csv, images_from_folder
from layouts import write_image

RNG = np.random.default_rng(0)
OPTIONS = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)
NFD = "Fundus_Rene\u0301e"  # as macOS writes it: e + combining acute accent
NFC = unicodedata.normalize("NFC", NFD)  # as typed: one code point é


def images(folder: Path, names: list[str], label: int = 0) -> list[Path]:
    paths = [folder / name for name in names]
    for path in paths:
        write_image(path, label, RNG)
    return paths


# ------------------------------------------------------------------------ symbolic links
def test_images_under_linked_folders_are_used_once_and_loops_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The reproduction's shape: class folders whose sub-folders are links elsewhere."""
    store = tmp_path / "store"
    images(store / "visit1", [f"a{i}.png" for i in range(5)])
    images(store / "visit2", [f"b{i}.jpg" for i in range(3)], label=1)
    root = tmp_path / "root"
    images(root / "benign", [f"own{i}.png" for i in range(4)])
    images(root / "malignant", [f"own{i}.png" for i in range(4)], label=1)
    os.symlink(store / "visit1", root / "benign" / "visit1")
    os.symlink(store / "visit2", root / "malignant" / "visit2")
    os.symlink(root / "benign", root / "benign" / "visit1" / "back")  # a loop
    os.symlink(store / "visit1", root / "benign" / "again")  # the same folder twice
    with caplog.at_level(logging.WARNING):
        listing = list_files(root)
    # hand count: 4 + 4 own images, 5 + 3 behind links; the loop and the repeat add none
    assert len(listing.images) == 16
    assert sorted(p.name for p in listing.images).count("a0.png") == 1
    # walked in name order: 'again' first, so 'visit1' is the repeat
    assert {p.name for p, _ in listing.repeated} == {"back", "visit1"}
    dm = FolderDataModule(root, val_fraction=0.25, **OPTIONS)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        dm.setup()
    table = dm.split_table()
    assert table["id"].nunique() == 16  # (the test split repeats the validation split)
    assert "reached a second time through a link" in caplog.text


def test_unlabelled_folder_pools_follow_links(tmp_path: Path) -> None:
    store = tmp_path / "store"
    images(store, [f"x{i}.png" for i in range(6)])
    pool = tmp_path / "pool"
    images(pool, ["own.png"])
    os.symlink(store, pool / "linked")
    table = read_sources([UnlabelledSource(pool)], missing_images="error")
    assert len(table) == 7
    assert "pool/linked/x0.png" in set(table["id"])


def test_broken_links_and_disguised_images_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "images"
    images(folder, ["a.png", "b.png"])
    os.symlink(tmp_path / "gone.png", folder / "c.png")
    (folder / "d.jp").write_bytes((folder / "a.png").read_bytes())  # a PNG named .jp
    (folder / "notes.txt").write_text("not an image\n")
    with caplog.at_level(logging.INFO):
        table = list_unlabelled(tmp_path, [folder], what="test")
    assert sorted(table["id"]) == ["images/a.png", "images/b.png"]
    assert "neither files nor folders" in caplog.text and "/c.png'" in caplog.text
    assert "hold image data" in caplog.text and "'d.jp' (PNG)" in caplog.text
    assert "1 file(s) below" in caplog.text and "'notes.txt'" in caplog.text


# --------------------------------------------------------------------------- extensions
@pytest.mark.parametrize("suffix", [".jfif", ".jpe", ".jif", ".JFIF"])
def test_jpeg_extensions_are_images(tmp_path: Path, suffix: str) -> None:
    root = tmp_path / "root"
    for name in ("a", "b"):
        jpeg = images(root / name, [f"{i}.jpg" for i in range(5)], label=ord(name))
        for path in jpeg[:3]:
            path.rename(path.with_suffix(suffix))
    dm = FolderDataModule(root, val_fraction=0.2, **OPTIONS)  # type: ignore[arg-type]
    dm.setup()
    assert dm.split_table()["id"].nunique() == 10
    renamed = next(root.glob(f"a/*{suffix}"))
    assert read_rgb(renamed).shape == (30, 40, 3)


def test_every_extension_opencv_decodes(tmp_path: Path) -> None:
    """Each listed extension holds a format OpenCV decodes (it decodes by content)."""
    expected = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".jif", ".bmp", ".dib", ".tif"}
    assert expected | {".tiff", ".webp"} == set(IMAGE_EXTENSIONS)
    for suffix in IMAGE_EXTENSIONS:
        source = ".jpg" if suffix in {".jpe", ".jfif", ".jif", ".jpeg"} else suffix
        source = ".bmp" if suffix == ".dib" else source
        (path,) = images(tmp_path, [f"x{source}"])
        path = path.rename(tmp_path / f"image{suffix}")
        assert read_rgb(path).shape == (30, 40, 3), suffix


# ---------------------------------------------------------------------- Unicode names
def test_csv_in_composed_form_finds_decomposed_file_names(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(6):
        images(root / "scans", [f"{NFD}_{i}.png"], label=i % 2)
    pd.DataFrame(
        {"path": [f"scans/{NFC}_{i}.png" for i in range(6)], "label": ["a", "b"] * 3}
    ).to_csv(root / "labels.csv", index=False)
    assert not (root / "scans" / f"{NFC}_0.png").exists()  # the names really differ
    dm = CSVDataModule(root, val_fraction=0.5, **OPTIONS)  # type: ignore[arg-type]
    dm.setup()
    assert dm.split_table()["id"].nunique() == 6


def test_benchmark_ids_match_after_normalisation(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    images(folder, [f"{NFD}.jpg", "plain.png"])
    table = pd.DataFrame({"id": [NFC, "plain"], "label": [0, 1]})
    found = resolve_images(table, [folder], source=tmp_path / "labels.csv")
    assert [Path(p).name for p in found["path"]] == [f"{NFD}.jpg", "plain.png"]
    unlabelled_csv = tmp_path / "pool.csv"
    pd.DataFrame({"path": [f"images/{NFC}.jpg"]}).to_csv(unlabelled_csv, index=False)
    pool = read_sources([UnlabelledSource(unlabelled_csv)], missing_images="error")
    assert Path(pool["path"][0]).name == f"{NFD}.jpg"


def test_names_differing_only_by_normalisation_print_differently(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    images(folder, [f"{NFD}.png", f"{NFC}.png"])
    assert shown(NFD) != shown(NFC) and "\\u0301" in shown(NFD)
    with pytest.raises(DataLayoutError, match=r"more than one image file.*\\u0301.*decomposed"):
        find_images(folder, [NFC])


def test_all_missing_does_not_advise_skipping(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    images(folder, ["a.png"])
    table = pd.DataFrame({"id": ["x", "y"], "label": [0, 1]})
    with pytest.raises(MissingImagesError) as error:
        resolve_images(table, [folder], source=tmp_path / "labels.csv")
    assert "none was found" in str(error.value) and "skip" not in str(error.value)


def test_file_matcher_reads_each_folder_once(tmp_path: Path) -> None:
    images(tmp_path / "d", [f"{NFD}.png"])
    matcher = FileMatcher()
    assert matcher.find(tmp_path, f"d/{NFC}.png") == tmp_path / "d" / f"{NFD}.png"
    assert matcher.find(tmp_path, "d/other.png") is None
    assert matcher.find(tmp_path, tmp_path / "d" / f"{NFC}.png") is not None  # absolute


# ------------------------------------------------------------ ids that carry an extension
def test_ids_with_their_extension_find_their_files(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    images(folder, ["img000.png", "img001.jpg", "img002.png", "img002.jpg"])
    paths, missing = find_images(folder, ["img000.png", "img001", "img001.JPG", "img000.jpg"])
    assert [p.name if p else None for p in paths] == [
        "img000.png",
        "img001.jpg",
        "img001.jpg",
        None,
    ]
    assert missing == ["img000.jpg"]
    paths, _ = find_images(folder, ["img002.png"])  # the extension settles which one
    assert paths[0] is not None and paths[0].name == "img002.png"


def test_predict_inputs_with_extensions_and_decomposed_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "images"
    images(folder, ["img000.png", "img001.png", f"{NFD}.png"])
    csv = tmp_path / "test.csv"
    pd.DataFrame({"id_code": ["img000.png", "img001", NFC]}).to_csv(csv, index=False)
    inputs = images_from_csv(csv, image_dir=folder)
    assert all(p is not None for p in inputs.paths)
    by_path = tmp_path / "paths.csv"
    pd.DataFrame({"path": [f"images/{NFC}.png"]}).to_csv(by_path, index=False)
    assert images_from_csv(by_path).paths[0] == folder / f"{NFD}.png"
    images(folder / "sub", ["deeper.png"])
    with caplog.at_level(logging.WARNING):
        assert len(images_from_folder(folder).ids) == 3
    assert "1 sub-folder(s)" in caplog.text and "'sub'" in caplog.text
