"""fgssl-train end to end: the run directory, the errors of bad input, installed configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import TINY_TRAINING
from fgssl.errors import ConfigError, DataLayoutError, DataNotFoundError, MissingImagesError
from fgssl.run.pipeline import run_training

REPO = Path(__file__).resolve().parents[1]
FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"
TINY_RUN = [
    *TINY_TRAINING,
    "pretrain_epochs=1",
    "finetune_epochs=2",
    "data.num_train=40",
    "data.num_test=3",
    "data.generated_size=48",
]


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FGSSL_TRAIN), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_demo_end_to_end_from_any_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "+experiment=demo",
        *TINY_RUN,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"FGSSL_DEMO_ROOT": str(tmp_path / "demo-data")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr  # Hydra's log goes to stdout, Lightning's to stderr
    for line in ("pretrain epoch 1/1 · ", "finetune epoch 1/2 · ", "finetune epoch 2/2 · "):
        assert line in output, line
    for name in (
        "config.yaml",
        "split.csv",
        "results.json",
        "pretrain/metrics.csv",
        "pretrain/checkpoints/last.ckpt",
        "finetune/metrics.csv",
        "finetune/checkpoints/best.ckpt",
        "finetune/checkpoints/last.ckpt",
    ):
        assert (run_dir / name).is_file(), name
    results = json.loads((run_dir / "results.json").read_text())
    for head in ("combined", "concat"):
        for metric in ("acc", "f1", "kappa"):
            assert -1.0 <= results["test"][head][metric] <= 1.0
    assert results["monitor"] == "val/combined/kappa"
    assert results["best_checkpoint"] == "finetune/checkpoints/best.ckpt"
    split = pd.read_csv(run_dir / "split.csv")
    assert len(split[split["split"].isin(["train", "val", "test"])]) == 40
    config = (run_dir / "config.yaml").read_text()
    assert "finetune_epochs: 2" in config and "${" not in config
    metrics = pd.read_csv(run_dir / "finetune" / "metrics.csv")
    assert metrics["val/combined/kappa"].notna().sum() == 2
    assert {"finetune/stage1_loss_epoch", "finetune/concat_loss_epoch"} <= set(metrics.columns)
    pretrain = pd.read_csv(run_dir / "pretrain" / "metrics.csv")
    assert "pretrain/stage3_loss_epoch" in pretrain.columns
    checkpoint = torch.load(run_dir / "finetune/checkpoints/best.ckpt", weights_only=False)
    assert checkpoint["fgssl"]["phase"] == "finetune"


def test_pretrain_epochs_zero_skips_self_supervision(
    compose_config, aptos_root: Path, tmp_path: Path
) -> None:
    cfg = compose_config(
        "+experiment=demo",
        *TINY_TRAINING,
        f"data.root={aptos_root}",
        "pretrain_epochs=0",
        "finetune_epochs=1",
        "trainer.limit_train_batches=2",
        "data._target_=fgssl.data.APTOS2019DataModule",
        "~data.num_train",
        "~data.num_test",
        "~data.generated_size",
    )
    results = run_training(cfg, tmp_path)
    assert not (tmp_path / "pretrain").exists()
    assert "pretrain_seconds" not in results["timings"]
    assert (tmp_path / "results.json").is_file()


def test_unknown_config_key_is_rejected_with_hydras_message(tmp_path: Path) -> None:
    result = run_cli("+experiment=demo", "optim.learning_rate=0.1", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not override 'optim.learning_rate'" in result.stderr


def test_missing_data_root_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("+experiment=aptos", f"data.root={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "fgssl-train: error: APTOS 2019 data root" in result.stderr
    assert str(tmp_path / "nowhere") in result.stderr
    assert "Traceback" not in result.stderr


def _aptos_cfg(compose_config, root: Path, *overrides: str):
    return compose_config(
        "+experiment=aptos",
        *TINY_TRAINING,
        f"data.root={root}",
        "pretrain_epochs=0",
        "finetune_epochs=1",
        *overrides,
    )


def test_bad_inputs_fail_before_training(compose_config, aptos_copy: Path, tmp_path: Path) -> None:
    table = pd.read_csv(aptos_copy / "train.csv", dtype=str)
    table.loc[0, "diagnosis"] = "9"
    table.to_csv(aptos_copy / "train.csv", index=False)
    with pytest.raises(DataLayoutError, match="diagnosis outside the grades"):
        run_training(_aptos_cfg(compose_config, aptos_copy), tmp_path / "a")
    assert not (tmp_path / "a" / "finetune").exists()

    table.loc[0, "diagnosis"] = "1"
    table.to_csv(aptos_copy / "train.csv", index=False)
    (aptos_copy / "train_images" / f"{table['id_code'][5]}.png").unlink()
    with pytest.raises(MissingImagesError, match=table["id_code"][5]):
        run_training(_aptos_cfg(compose_config, aptos_copy), tmp_path / "b")

    with pytest.raises(DataNotFoundError):
        run_training(_aptos_cfg(compose_config, tmp_path / "missing"), tmp_path / "c")


def test_schedule_finer_than_the_image_is_refused(
    compose_config, aptos_root: Path, tmp_path: Path
) -> None:
    cfg = _aptos_cfg(
        compose_config,
        aptos_root,
        "schedule=grids_32_16_8",
        "data.image_size=16",
        "data.resize_size=20",
    )
    with pytest.raises(ConfigError, match=r"grids \[32\] larger than the 16px images"):
        run_training(cfg, tmp_path)


@pytest.mark.slow
def test_configs_are_found_from_a_wheel_install(tmp_path: Path) -> None:
    """Build the wheel, install it (without dependencies) elsewhere, compose from there."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheel").glob("fgssl-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    script = (
        f"import sys; sys.path.insert(0, {str(target)!r})\n"
        "import fgssl\n"
        f"assert fgssl.__file__.startswith({str(target)!r}), fgssl.__file__\n"
        "from fgssl.cli.train import cli\n"
        "sys.argv = ['fgssl-train', '+experiment=demo', 'schedule=16_8_4', '--cfg', 'job']\n"
        "cli()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "grids:\n  - 16\n  - 8\n  - 4" in result.stdout
