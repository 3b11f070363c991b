"""The Python entry points (fgssl.train, fgssl.load, fgssl.predict): each one call giving
what the commands give (fgssl-train's run directory, fgssl-predict's table)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

import fgssl
from conftest import TINY_RUN_OVERRIDES
from fgssl.cli import predict as predict_cli
from fgssl.errors import CheckpointError, ConfigError, DataNotFoundError, ImageReadError
from fgssl.rundir import RUN_MARKER, RunDir
from helpers import one_thread

CLASSES = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]
"""APTOS 2019's grades, the names the tiny run's checkpoint records."""

single_thread = pytest.fixture(autouse=True)(one_thread)


def _cli_table(run: Path, images: Path, tmp_path: Path) -> pd.DataFrame:
    """fgssl-predict's CSV for ``images``, the independent reference."""
    output = tmp_path / "cli.csv"
    assert predict_cli.main([str(run), str(images), "-o", str(output), "--device", "cpu"]) == 0
    return pd.read_csv(output, dtype={"id": str})


def test_load_gives_the_runs_classes_preprocessing_and_predictions(
    tiny_run: Path, aptos_root: Path, tmp_path: Path
) -> None:
    model = fgssl.load(tiny_run, device="cpu")
    assert model.class_names == CLASSES
    assert model.checkpoint == RunDir(tiny_run).best_checkpoint
    assert model.precision == "32-true" and model.config is not None
    folder = aptos_root / "test_images"
    paths = sorted(folder.iterdir())
    expected = _cli_table(tiny_run, folder, tmp_path).set_index("path")
    by_path = model.predict(paths, batch_size=4)
    assert list(by_path.columns) == CLASSES and list(by_path.index) == [str(p) for p in paths]
    reference = expected.loc[[str(p) for p in paths], [f"prob_{c}" for c in CLASSES]]
    np.testing.assert_allclose(by_path.to_numpy(), reference.to_numpy(), atol=1e-6)
    # the same images in memory: PIL images and arrays, one of them alone
    pictures = [Image.open(p) for p in paths]
    np.testing.assert_allclose(model.predict(pictures).to_numpy(), by_path.to_numpy(), atol=1e-6)
    alone = model.predict(np.asarray(pictures[0].convert("RGB")))
    assert list(alone.index) == [0]
    np.testing.assert_allclose(alone.to_numpy()[0], by_path.to_numpy()[0], atol=1e-6)
    assert model.predict([]).shape == (0, len(CLASSES))
    assert model.transform(np.asarray(pictures[0].convert("RGB"))).shape == (3, 32, 32)


def test_model_predict_refuses_what_it_cannot_read(
    tiny_run: Path, aptos_root: Path, tmp_path: Path
) -> None:
    model = fgssl.load(tiny_run, device="cpu")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        model.predict(broken)
    with pytest.raises(ValueError, match=r"is a folder: fgssl.predict\(model, folder\)"):
        model.predict(aptos_root / "test_images")
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8.*got shape \(8, 8\) of float64"):
        model.predict([np.zeros((8, 8))])


def test_predict_gives_fgssl_predicts_table(
    tiny_run: Path, aptos_root: Path, tmp_path: Path
) -> None:
    folder = aptos_root / "test_images"
    table = fgssl.predict(tiny_run, folder)
    expected = _cli_table(tiny_run, folder, tmp_path)
    assert list(table.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        table.reset_index(drop=True), expected, check_dtype=False, atol=1e-6
    )
    assert table.attrs["failures"] == []
    model = fgssl.load(tiny_run, device="cpu")  # a loaded model is taken too
    pd.testing.assert_frame_equal(fgssl.predict(model, folder), table)


def test_predict_refuses_unreadable_images_unless_told_to_skip_them(
    tiny_run: Path, aptos_root: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(aptos_root / "test_images", tmp_path / "images"))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    count = len(list(folder.iterdir()))
    with pytest.raises(ImageReadError, match=rf"1 of {count} images could not be read.*broken"):
        fgssl.predict(tiny_run, folder)
    with pytest.warns(UserWarning, match=f"1 of {count} images could not be read"):
        table = fgssl.predict(tiny_run, folder, skip_unreadable=True)
    assert len(table) == count - 1 and "broken" not in set(table["id"])
    assert [image_id for image_id, _ in table.attrs["failures"]] == ["broken"]
    with pytest.raises(DataNotFoundError, match="does not exist"):
        fgssl.predict(tiny_run, tmp_path / "nowhere")


def test_load_refuses_a_pretrain_checkpoint(tiny_run: Path) -> None:
    with pytest.raises(CheckpointError, match=r"pretrain-phase checkpoint.*use the finetune"):
        fgssl.load(RunDir(tiny_run).last_checkpoint("pretrain"))


def _tiny(aptos_root: Path) -> list[str]:
    """A one-epoch finetune of the tiny run's settings (no experiment: train() names it)."""
    kept = [o for o in TINY_RUN_OVERRIDES if not o.startswith(("experiment=", "pretrain_ep"))]
    return [
        *kept,
        f"data.root={aptos_root}",
        "pretrain_epochs=0",
        "finetune_epochs=1",
        "figures.enabled=false",
        "precise_bn.enabled=false",
        "intervals.resamples=10",
    ]


def test_train_runs_like_fgssl_train_and_returns_the_run(aptos_root: Path, tmp_path: Path) -> None:
    run = fgssl.train("demo", _tiny(aptos_root), run_dir=tmp_path / "run")
    assert run.run_dir == (tmp_path / "run").resolve()
    assert run.results == json.loads(RunDir(run.run_dir).results.read_text())
    assert run.results["test"]["combined"]["kappa"] is None or (
        -1 <= run.results["test"]["combined"]["kappa"] <= 1
    )
    config = RunDir(run.run_dir).config.read_text()
    assert "name: demo" in config and "finetune_epochs: 1" in config
    assert fgssl.load(run, device="cpu").class_names == CLASSES  # the run is a path


def test_train_makes_fgssl_trains_default_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """outputs/<name>/<date>_<time> under the working directory, claimed before the data is
    read (the data root here does not exist)."""
    monkeypatch.chdir(tmp_path)
    overrides = [o for o in _tiny(tmp_path) if not o.startswith("data.root=")]
    with pytest.raises(DataNotFoundError, match="nowhere"):
        fgssl.train("demo", [*overrides, "data.root=nowhere"])
    (folder,) = (tmp_path / "outputs" / "demo").iterdir()
    assert (folder / RUN_MARKER).is_file()


def test_train_refuses_what_hydra_cannot_compose_and_keeps_the_callers_hydra(
    tmp_path: Path,
) -> None:
    with initialize_config_module("fgssl.conf", version_base="1.3"):  # the caller's own
        with pytest.raises(ConfigError, match="dmeo"):
            fgssl.train("dmeo")
        with pytest.raises(ConfigError, match="seed=0,1"):
            fgssl.train("demo", ["seed=0,1"])
        with pytest.raises(ConfigError, match=r"run_dir=.* and hydra\.run\.dir: give one"):
            fgssl.train("demo", [f"hydra.run.dir={tmp_path / 'a'}"], run_dir=tmp_path / "b")
        with pytest.raises(ConfigError, match="resumed run continues in its own folder"):
            fgssl.train("demo", [f"resume={tmp_path / 'a'}"], run_dir=tmp_path / "b")
        assert GlobalHydra.instance().is_initialized()
        assert compose("train", ["experiment=demo"]).name == "demo"
    assert not list(tmp_path.iterdir())


def test_train_resumes_as_fgssl_train_does(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``resume=<run dir>`` among the overrides: that run's own config, refusing an override
    it cannot take before anything runs (the run and the working directory untouched)."""
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot change model\.net\.feat_dim=8"):
        fgssl.train(overrides=[f"resume={run}", "model.net.feat_dim=8"])
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no outputs/ folder
