"""Real photographs through the whole tool: the readers, the cache, fgssl-prepare,
fgssl-train, fgssl-eval and fgssl-predict, in the official APTOS 2019 and ISIC 2018 layouts.

The photographs (real colour fundus photographs, 565x584 to 1620x1080, and dermoscopy
patches) live in ``../shared/realdata/`` (or ``$FGSSL_REALDATA``), outside the package:
their terms allow research use, not redistribution. Without that folder these tests are
skipped, saying so. They never write into it (it may be read-only): layouts are built in
``tmp_path``. Labels are arbitrary: none of the images carries a grade or a diagnosis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import TINY_TRAINING
from fgssl.cli import eval as eval_cli
from fgssl.cli import predict as predict_cli
from fgssl.cli import prepare as prepare_cli
from fgssl.data.io import read_rgb
from realdata_layouts import (
    AWKWARD_FORMATS,
    DARK_CAPTURE,
    GREY_CROP,
    REALDATA_ENV,
    RealAPTOS,
    RealISIC2018,
    load_image,
    make_aptos,
    make_isic2018,
    make_predict_folder,
    require_realdata,
    save_truncated_jpeg,
)

FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"
FIGURES = ("jigsaw_schedule.png", "gradcam.png", "training_curves.png", "confusion_matrix.png")
CACHE_SIZE = 128
"""Short side of cached images: the photographs (565 to 1411 px) are downsized to it."""
TINY_REAL_RUN = [
    *TINY_TRAINING,
    "data.image_size=64",  # the 8x8 puzzle's tiles are 8 px: enough to see the retina
    "data.resize_size=72",
    f"data.cache_size={CACHE_SIZE}",
    "pretrain_epochs=1",
    "finetune_epochs=1",
]


@pytest.fixture(scope="module")
def realdata() -> Path:
    """The real-photograph folder; skips the module's tests when it is not there."""
    return require_realdata()


@pytest.fixture(scope="module")
def real_aptos(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> RealAPTOS:
    """The APTOS 2019 layout of the fundus photographs (see :func:`make_aptos`): read-only."""
    return make_aptos(realdata, tmp_path_factory.mktemp("real-aptos") / "aptos2019")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    from helpers import one_thread

    yield from one_thread()


def run_train(*overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """fgssl-train as a user runs it (one intra-op thread: the CPU is shared)."""
    return subprocess.run(
        [str(FGSSL_TRAIN), *overrides],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )


def cache_entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.npy"))


def assert_figures_drawn(run_dir: Path) -> None:
    """Every figure exists, is a readable PNG and is not one flat colour."""
    for name in FIGURES:
        pixels = np.asarray(Image.open(run_dir / name).convert("RGB"), dtype=float)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100, name
        assert pixels.std() > 10, f"{name} is (nearly) blank"


def assert_probabilities(table: pd.DataFrame, class_names: list[str]) -> None:
    probabilities = table[[f"prob_{name}" for name in class_names]].to_numpy()
    assert np.isfinite(probabilities).all()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(table["prediction"], probabilities.argmax(axis=1))
    assert list(table["class"]) == [class_names[i] for i in table["prediction"]]


# ---- the reader on the files new users bring ------------------------------------------


def test_the_realdata_folder_is_found_or_the_skip_says_where_to_put_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(REALDATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(pytest.skip.Exception, match=rf"nowhere.*\${REALDATA_ENV}"):
        require_realdata()


@pytest.mark.parametrize("storage", sorted(AWKWARD_FORMATS))
def test_reader_decodes_awkward_files_of_a_real_photograph(
    realdata: Path, tmp_path: Path, storage: str
) -> None:
    """A JPEG named .png, a CMYK JPEG, an EXIF-rotated JPEG and an RGBA PNG of the
    1620x1080 capture decode upright, in RGB, to the photograph Pillow decodes."""
    photo = load_image(realdata / "fundus" / DARK_CAPTURE).convert("RGB")
    suffix, writer = AWKWARD_FORMATS[storage]
    path = tmp_path / f"photo{suffix}"
    writer(photo, path)
    decoded = read_rgb(path)
    assert decoded.shape == (1080, 1620, 3) and decoded.dtype == np.uint8
    difference = np.abs(decoded.astype(int) - np.asarray(photo, dtype=int))
    assert difference.mean() < 2.0, f"{storage}: mean difference {difference.mean():.2f}"


def test_reader_expands_the_grey_crop_and_reads_the_bmp_patches(realdata: Path) -> None:
    grey = read_rgb(realdata / "fundus" / GREY_CROP)
    expected = np.asarray(load_image(realdata / "fundus" / GREY_CROP))
    assert grey.shape == (102, 102, 3)
    for channel in range(3):
        np.testing.assert_array_equal(grey[..., channel], expected)
    for patch in sorted((realdata / "dermoscopy").glob("*.bmp")):
        np.testing.assert_array_equal(read_rgb(patch), np.asarray(load_image(patch)))


def test_fgssl_prepare_refuses_a_cache_folder_it_cannot_write(
    real_aptos: RealAPTOS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before decoding anything, not after reporting every image 'cached' with none stored."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    argv = ["--no-progress", "+experiment=aptos", *TINY_REAL_RUN, f"data.root={real_aptos.root}"]
    assert prepare_cli.main([*argv, f"data.cache_dir={blocked / 'cache'}"]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        "\n" not in error
        and f"data.cache_dir {str(blocked / 'cache')!r} cannot be written" in error
    )


# ---- end to end ---------------------------------------------------------------------


def check_prepared_cache(cache: Path, dataset: RealAPTOS) -> None:
    """One entry per image, downsized so that its short side is the cache size (images
    already smaller are kept as they are)."""
    entries = cache_entries(cache)
    assert len(entries) == len(dataset.short_sides)
    expected = sorted(min(CACHE_SIZE, side) for side in dataset.short_sides.values())
    found = sorted(min(np.load(entry).shape[:2]) for entry in entries)
    assert found == expected


def check_split_file(run_dir: Path, dataset: RealAPTOS) -> None:
    split = pd.read_csv(run_dir / "split.csv", dtype={"id": str})
    by_split = {name: list(rows["id"]) for name, rows in split.groupby("split")}
    labelled = by_split["train"] + by_split["val"]
    assert sorted(labelled) == sorted(dataset.labels)  # every train.csv image, once
    assert sorted(by_split["test"]) == sorted(by_split["val"])  # APTOS: test = val
    assert sorted(by_split["predict"]) == sorted(dataset.test_ids)
    rows = split[split["split"] != "predict"]
    assert dict(zip(rows["id"], rows["label"], strict=True)) == dataset.labels


@pytest.mark.slow
def test_aptos_layout_of_real_fundus_photographs_end_to_end(
    realdata: Path, real_aptos: RealAPTOS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = real_aptos
    cache = tmp_path / "cache"
    overrides = [
        "+experiment=aptos",
        *TINY_REAL_RUN,
        f"data.root={dataset.root}",
        f"data.cache_dir={cache}",
    ]
    assert prepare_cli.main(["--no-progress", *overrides]) == 0
    check_prepared_cache(cache, dataset)
    built = {entry: entry.stat().st_mtime_ns for entry in cache_entries(cache)}

    run_dir = tmp_path / "run"
    result = run_train(*overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # Training read what fgssl-prepare cached: no entry added or rebuilt.
    assert {entry: entry.stat().st_mtime_ns for entry in cache_entries(cache)} == built
    check_split_file(run_dir, dataset)
    results = json.loads((run_dir / "results.json").read_text())
    assert {"test", "monitor", "best_val_score", "class_names", "confusion_matrix"} <= set(results)
    assert results["monitor"] == "val/combined/kappa"
    split = pd.read_csv(run_dir / "split.csv", dtype={"id": str})
    tested = split.loc[split["split"] == "test", "id"]
    for head in ("combined", "concat"):
        assert np.sum(results["confusion_matrix"][head]) == len(tested)
    assert_figures_drawn(run_dir)

    capsys.readouterr()
    assert eval_cli.main([str(run_dir), "--device", "cpu"]) == 0
    evaluation = run_dir / "eval" / "test"
    predictions = pd.read_csv(evaluation / "predictions.csv", dtype={"id": str})
    assert sorted(predictions["id"]) == sorted(tested)
    assert json.loads((evaluation / "results.json").read_text())["split"] == "test"

    # A folder of new photographs: every image predicted, whatever its format.
    folder = tmp_path / "new_photos"
    kinds = make_predict_folder(realdata, folder)
    output = tmp_path / "predictions.csv"
    assert predict_cli.main([str(run_dir), str(folder), "-o", str(output), "--device", "cpu"]) == 0
    table = pd.read_csv(output, dtype={"id": str})
    assert sorted(table["id"]) == sorted(Path(name).stem for name in kinds)
    assert_probabilities(table, results["class_names"])
    # The awkward files of DRIVE_22 decode to DRIVE_22: the network sees the same image.
    probabilities = table.set_index("id").filter(like="prob_")
    for storage in AWKWARD_FORMATS:
        np.testing.assert_allclose(
            probabilities.loc[f"DRIVE_22_{storage}"], probabilities.loc["DRIVE_22"], atol=0.02
        )

    # test.csv as Kaggle ships it, and the submission file.
    submission = tmp_path / "submission.csv"
    argv = [str(run_dir), str(dataset.root / "test.csv"), "--image-dir"]
    argv += [str(dataset.root / "test_images"), "-o", str(tmp_path / "test_predictions.csv")]
    assert predict_cli.main([*argv, "--submission", str(submission), "--device", "cpu"]) == 0
    kaggle = pd.read_csv(submission, dtype={"id_code": str})
    assert list(kaggle.columns) == ["id_code", "diagnosis"]
    assert sorted(kaggle["id_code"]) == sorted(dataset.test_ids)
    assert kaggle["diagnosis"].isin(range(5)).all()

    # An interrupted download among them: listed with its name, the others still predicted.
    save_truncated_jpeg(load_image(realdata / "fundus" / DARK_CAPTURE), folder / "partial.jpg")
    capsys.readouterr()
    assert predict_cli.main([str(run_dir), str(folder), "-o", str(output), "--device", "cpu"]) == 1
    assert len(pd.read_csv(output)) == len(kinds)
    failed = pd.read_csv(tmp_path / "predictions_failed.csv")
    assert list(failed["id"]) == ["partial"]
    assert "partial.jpg" in capsys.readouterr().err


@pytest.mark.slow
def test_isic2018_layout_of_real_dermoscopy_patches_end_to_end(
    realdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset: RealISIC2018 = make_isic2018(realdata, tmp_path / "isic2018")
    cache = tmp_path / "cache"
    overrides = [
        "+experiment=isic2018",
        *TINY_TRAINING,
        "pretrain_epochs=1",
        "finetune_epochs=1",
        f"data.root={dataset.root}",
        f"data.cache_dir={cache}",
    ]
    assert prepare_cli.main(["--no-progress", *overrides]) == 0
    entries = cache_entries(cache)
    assert len(entries) == len(dataset.labels)
    assert {np.load(entry).shape for entry in entries} == {(32, 32, 3)}  # never enlarged

    run_dir = tmp_path / "run"
    result = run_train(*overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert cache_entries(cache) == entries
    split = pd.read_csv(run_dir / "split.csv")
    official = {"train": "Training", "val": "Validation", "test": "Test"}
    for name, ids in split.groupby("split")["id"]:
        assert sorted(ids) == sorted(dataset.splits[official[str(name)]])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["monitor"] == "val/combined/balanced_acc"
    assert results["class_names"] == ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    assert np.sum(results["confusion_matrix"]["combined"]) == len(dataset.splits["Test"])
    assert_figures_drawn(run_dir)

    capsys.readouterr()
    assert eval_cli.main([str(run_dir), "--device", "cpu"]) == 0
    per_class = pd.read_csv(run_dir / "eval" / "test" / "per_class.csv")
    assert set(per_class["class"]) >= set(results["class_names"])

    # The official test folder (JPEGs among ATTRIBUTION/LICENSE files) and the raw BMPs.
    test_folder = dataset.root / "ISIC2018_Task3_Test_Input"
    for folder, expected in (
        (test_folder, dataset.splits["Test"]),
        (realdata / "dermoscopy", [p.stem for p in (realdata / "dermoscopy").glob("*.bmp")]),
    ):
        output = tmp_path / f"{folder.name}.csv"
        argv = [str(run_dir), str(folder), "-o", str(output), "--device", "cpu"]
        assert predict_cli.main(argv) == 0
        table = pd.read_csv(output)
        assert sorted(table["id"]) == sorted(expected)
        assert_probabilities(table, results["class_names"])
