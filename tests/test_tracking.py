"""Experiment tracking: logger=mlflow records a trained phase in a local store (no server),
with the run's files attached; logger=wandb composes, offline by default."""

from __future__ import annotations

import importlib.util
import json

import pytest
from hydra.utils import instantiate

from fgssl.errors import ConfigError
from fgssl.run.tracking import attach_run_files, check_trackers, default_tracking_uri
from helpers import RandomDataModule, one_thread, tiny_module, tiny_trainer

single_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.mark.slow  # MLflow creates its SQLite schema (about 20 s on a busy 2-core machine)
def test_mlflow_logger_records_a_phase_in_a_local_store(tmp_path, compose_config, monkeypatch):
    pytest.importorskip("mlflow", reason="the tracking extra (mlflow-skinny) is not installed")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder
    cfg = compose_config("logger=mlflow")
    run_dir = tmp_path / "outputs" / "run-1"
    run_dir.mkdir(parents=True)
    logger = instantiate(cfg.logger.mlflow, save_dir=str(run_dir), name="finetune", version="")
    trainer = tiny_trainer(logger=[logger], max_epochs=2, log_every_n_steps=1)
    trainer.fit(tiny_module(), datamodule=RandomDataModule())
    (run_dir / "config.yaml").write_text("seed: 0\n")
    (run_dir / "results.json").write_text(json.dumps({"test": {"combined": {"acc": 0.5}}}))
    files = [run_dir / "config.yaml", run_dir / "results.json", run_dir / "missing.png"]
    attached = attach_run_files(cfg.logger, run_dir, files)
    assert attached == files[:2]

    store = tmp_path / "outputs" / "mlflow.db"
    assert default_tracking_uri(run_dir) == f"sqlite:///{store}" and store.is_file()
    client = MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("fgssl").experiment_id])
    assert run.info.run_name == "run-1/finetune"
    assert run.data.tags["fgssl.phase"] == "finetune"
    assert any(name.startswith("val/") for name in run.data.metrics), run.data.metrics
    history = client.get_metric_history(run.info.run_id, "epoch")
    assert sorted({m.value for m in history}) == [0.0, 1.0]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "config.yaml",
        "results.json",
    }
    assert (tmp_path / "outputs" / "mlartifacts").is_dir()
    assert not (tmp_path / "mlruns").exists()
    # the same run directory and phase again (a resume) continues the same MLflow run
    again = instantiate(cfg.logger.mlflow, save_dir=str(run_dir), name="finetune", version="")
    assert again.run_id == run.info.run_id


def test_wandb_logger_composes_offline(tmp_path, compose_config):
    cfg = compose_config("logger=wandb")
    assert cfg.logger.wandb.offline is True and "csv" in cfg.logger
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ConfigError, match="logger=wandb needs the 'wandb' package"):
            check_trackers(cfg.logger)
    else:
        logger = instantiate(cfg.logger.wandb, save_dir=str(tmp_path), name="pretrain")
        assert logger._wandb_init["mode"] == "offline"
        assert logger._wandb_init["name"] == f"{tmp_path.name}/pretrain"


def test_no_attachment_without_mlflow_logger(tmp_path, compose_config):
    cfg = compose_config()
    (tmp_path / "results.json").write_text("{}")
    assert attach_run_files(cfg.logger, tmp_path, [tmp_path / "results.json"]) == []


@pytest.mark.slow
def test_a_training_run_with_logger_mlflow(compose_config, aptos_root, tmp_path, monkeypatch):
    """fgssl-train logger=mlflow: one MLflow run per phase in the local store beside the run
    directory, the finetune run with the run's files attached."""
    pytest.importorskip("mlflow", reason="the tracking extra (mlflow-skinny) is not installed")
    from mlflow.tracking import MlflowClient

    from conftest import TINY_RUN_OVERRIDES
    from fgssl.run.pipeline import run_training

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose_config(
        *TINY_RUN_OVERRIDES,
        f"data.root={aptos_root}",
        "logger=mlflow",
        "finetune_epochs=1",
        "ssl_eval.enabled=false",
        "figures.enabled=false",
        "intervals.resamples=50",
    )
    run_dir = tmp_path / "outputs" / "demo-run"
    results = run_training(cfg, run_dir)
    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fgssl")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"demo-run/pretrain", "demo-run/finetune"}
    finetune = runs["demo-run/finetune"]
    kappa = results["test"]["combined"]["kappa"]
    if kappa is not None:
        assert finetune.data.metrics["test/combined/kappa"] == pytest.approx(kappa)
    attached = {a.path for a in client.list_artifacts(finetune.info.run_id)}
    assert {"config.yaml", "results.json", "report.html"} <= attached
    assert results["intervals"]["settings"]["resamples"] == 50
