"""Hydra multirun sweeps, the Optuna sweeper and the SLURM launcher config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_module

from conftest import TINY_TRAINING
from fgssl.errors import ConfigError, NonFiniteLossError
from fgssl.run.failures import read_failures, record_failure
from fgssl.run.report import write_report

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
def test_a_fold_sweep_reports_out_of_fold_scores_and_the_fold_ensemble(tmp_path: Path) -> None:
    """fgssl-train -m data.fold=range(3), with flip TTA: each job validates on one fold
    and tests on the shared test split; the report joins the folds' validation predictions
    (each training image once) and averages their test predictions."""
    result = run_sweep(
        tmp_path, "pretrain_epochs=0", "data.folds=3", "data.fold=range(3)", "tta=flips"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    splits = [pd.read_csv(sweep / str(j) / "split.csv", dtype={"id": str}) for j in range(3)]
    tests = [set(s.loc[s["split"] == "test", "id"]) for s in splits]
    assert tests[0] == tests[1] == tests[2]
    pool = set(splits[0].loc[splits[0]["split"].isin(["train", "val"]), "id"])
    groups = json.loads((sweep / "cross_validation.json").read_text())["groups"]
    assert len(groups) == 1 and groups[0]["folds"] == 3
    oof = pd.read_csv(sweep / "oof_predictions.csv", dtype={"id": str})
    assert sorted(oof["id"]) == sorted(pool) and groups[0]["out_of_fold"]["images"] == len(pool)
    ensemble = pd.read_csv(sweep / "fold_ensemble_test.csv", dtype={"id": str})
    columns = [c for c in ensemble.columns if c.startswith("prob_")]
    members = [
        pd.read_csv(sweep / str(j) / "predictions" / "test.csv", dtype={"id": str})
        .set_index("id")
        .loc[ensemble["id"], columns]
        .to_numpy()
        for j in range(3)
    ]
    np.testing.assert_allclose(ensemble[columns].to_numpy(), sum(members) / 3, atol=1e-12)
    assert json.loads((sweep / "0" / "results.json").read_text())["tta"][1] == "hflip"
    assert "## Cross-validation" in (sweep / "report.md").read_text()


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
                "experiment=demo",
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


@pytest.mark.slow
def test_a_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """Job 0's grid 32 does not fit 24 px images (fgssl's clean error); job 1 still runs,
    and the report lists job 0 with its reason."""
    result = run_sweep(tmp_path, "data.image_size=24", "schedule=32_16_8,8_4_2")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "fgssl-train: job 0 failed: patch schedule [32, 16, 8] has grids [32]" in result.stderr
    sweep = tmp_path / "sweep"
    failure = json.loads((sweep / "0" / "failed.json").read_text())
    assert failure["type"] == "ConfigError" and "larger than the 24px images" in failure["error"]
    assert not (sweep / "0" / "results.json").exists()
    assert json.loads((sweep / "1" / "results.json").read_text())["test"]["combined"]["acc"] >= 0
    assert list(pd.read_csv(sweep / "runs.csv")["job"]) == [1]
    report = (sweep / "report.md").read_text()
    assert "Failed jobs (1; not in the results):" in report
    assert "| 0 | `schedule=32_16_8` | ConfigError: patch schedule" in report


def _job(sweep: Path, name: str, overrides: list[str]) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return job


def test_report_lists_failed_jobs_with_their_reason(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    finished = _job(sweep, "0", ["optim.lr=0.1", "seed=0"])
    results = {"test": {"combined": {"acc": 0.5}}, "monitor": "val/combined/acc"}
    (finished / "results.json").write_text(json.dumps(results))
    record_failure(_job(sweep, "1", ["optim.lr=9", "seed=0"]), NonFiniteLossError("loss is nan"))
    record_failure(_job(sweep, "2", ["optim.lr=0.2"]), ConfigError("a | b\nsecond line"))
    # a job that failed once and then finished when resumed is not listed
    resumed = _job(sweep, "3", ["optim.lr=0.3", "seed=0"])
    record_failure(resumed, ConfigError("data.root moved"))
    (resumed / "results.json").write_text(json.dumps(results))
    assert [job.job for job in read_failures(sweep)] == ["1", "2"]

    report = write_report(sweep)["markdown"].read_text()
    assert "Failed jobs (2; not in the results):" in report
    assert "| 1 | `optim.lr=9 seed=0` | NonFiniteLossError: loss is nan |" in report
    assert r"| 2 | `optim.lr=0.2` | ConfigError: a \| b second line |" in report
    assert list(pd.read_csv(sweep / "runs.csv")["job"]) == [0, 3]

    # every job failed: report.md alone, with the failures
    (finished / "results.json").unlink()
    (resumed / "results.json").unlink()
    paths = write_report(sweep)
    assert list(paths) == ["markdown"]
    text = paths["markdown"].read_text()
    assert "No job of" in text and "Failed jobs (3; not in the results):" in text
