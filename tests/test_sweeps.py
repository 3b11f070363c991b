"""Hydra multirun sweeps, the Optuna sweeper and the SLURM launcher config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_module

from conftest import TINY_TRAINING

FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"
TINY_SWEEP = [
    *[o for o in TINY_TRAINING if not o.startswith("schedule=")],
    "pretrain_epochs=1",
    "finetune_epochs=1",
    "data.num_train=30",
    "data.num_test=2",
    "data.generated_size=48",
    "trainer.limit_train_batches=2",
]


def run_sweep(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(FGSSL_TRAIN),
            "-m",
            "+experiment=demo",
            *TINY_SWEEP,
            *args,
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
        env={**os.environ, "FGSSL_DEMO_ROOT": str(tmp_path / "demo")},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_sweep_gives_one_directory_per_run(tmp_path: Path) -> None:
    result = run_sweep(tmp_path, "schedule=8_4_2,16_8_4", "seed=0,1")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in runs] == ["0", "1", "2", "3"]
    seen = set()
    for run in runs:
        config = yaml.safe_load((run / "config.yaml").read_text())
        seen.add((tuple(config["schedule"]["grids"]), config["seed"]))
        assert json.loads((run / "results.json").read_text())["test"]["combined"]["acc"] >= 0
    assert seen == {((8, 4, 2), 0), ((8, 4, 2), 1), ((16, 8, 4), 0), ((16, 8, 4), 1)}
    # the summary: one row per schedule, two seeds each, accuracy within [0, 1]
    summary = pd.read_csv(tmp_path / "sweep" / "report.csv")
    assert sorted(summary["configuration"]) == ["schedule=16_8_4", "schedule=8_4_2"]
    assert list(summary["seeds"]) == [2, 2]
    assert summary["test/combined/acc mean"].between(0, 1).all()
    assert "| `schedule=8_4_2` | 2 |" in (tmp_path / "sweep" / "report.md").read_text()


@pytest.mark.slow
def test_optuna_search_runs_two_trials(tmp_path: Path) -> None:
    result = run_sweep(tmp_path, "hparams_search=demo_optuna", "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optim.lr", "loss.barlow_scale", "loss.whole_image_weight"}
    assert -1.0 <= best["best_value"] <= 1.0
    assert len([p for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()]) == 2


def test_slurm_launcher_config_composes() -> None:
    with initialize_config_module("fgssl.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "+experiment=demo",
                "hydra/launcher=slurm",
                "hydra.launcher.gpus_per_node=4",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (
        launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert launcher.gpus_per_node == 4 and launcher.timeout_min == 1440
