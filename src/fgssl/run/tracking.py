"""Experiment trackers as Lightning loggers built from ``conf/logger/*.yaml``: MLflow (a
local store by default, no server) and Weights & Biases (offline by default).

The run factory builds each logger of ``cfg.logger`` once per phase with
``save_dir=<run dir>, name=<phase>, version=""``. Here that becomes one tracker run per
phase, named ``<run dir name>/<phase>`` and tagged with the run directory and the phase, so
that a resumed phase continues its MLflow run instead of starting another. After the test,
:func:`attach_run_files` attaches the run's ``config.yaml`` and ``results.json`` (and the
figures) to the finetune phase's MLflow run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import MLFlowLogger, WandbLogger

from fgssl.errors import ConfigError

__all__ = [
    "DEFAULT_EXPERIMENT",
    "FgsslMLFlowLogger",
    "FgsslWandbLogger",
    "attach_run_files",
    "check_trackers",
    "default_tracking_uri",
    "require_tracker",
]

DEFAULT_EXPERIMENT = "fgssl"
_RUN_DIR_TAG = "fgssl.run_dir"
_PHASE_TAG = "fgssl.phase"
_PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}
_EXTRAS = {"mlflow": "pip install 'fgssl[tracking]'", "wandb": "pip install wandb"}


def require_tracker(name: str) -> None:
    """Raise ConfigError naming ``logger=<name>`` and the install command when the
    tracker's package is missing (checked before any data is read)."""
    import importlib.util

    if importlib.util.find_spec(_PACKAGES[name]) is None:
        raise ConfigError(
            f"logger={name} needs the {_PACKAGES[name]!r} package, which is not installed: "
            f"{_EXTRAS[name]} (or choose logger=csv)"
        )


def check_trackers(logger_cfg: Mapping[str, Any]) -> None:
    """Refuse (ConfigError) a tracker logger of ``cfg.logger`` whose package is missing."""
    for entry in logger_cfg.values():
        target = str(entry.get("_target_", ""))
        for name, cls in (("mlflow", "FgsslMLFlowLogger"), ("wandb", "FgsslWandbLogger")):
            if target.endswith(cls):
                require_tracker(name)


def default_tracking_uri(run_dir: str | os.PathLike[str]) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else a SQLite store ``mlflow.db`` in the folder that
    holds the run directory (shared by the runs of one experiment or sweep). MLflow's
    plain-folder store (``file:./mlruns``) is in maintenance mode and refused by MLflow 3
    unless ``MLFLOW_ALLOW_FILE_STORE=true``: it can still be given as ``tracking_uri``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path(run_dir).resolve().parent / 'mlflow.db'}"


def _artifact_location(uri: str) -> str | None:
    """Artifacts beside a SQLite store (``mlartifacts/``), not under the working folder."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts")
    return None


def _tags(run_dir: Path, phase: str) -> dict[str, str]:
    return {_RUN_DIR_TAG: str(run_dir.resolve()), _PHASE_TAG: phase}


def _find_run(client: Any, experiment_name: str, run_dir: Path, phase: str) -> str | None:
    """The id of the MLflow run of this run directory and phase, if one exists."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    query = " and ".join(
        f"tags.`{key}` = '{value}'" for key, value in _tags(run_dir, phase).items()
    )
    runs = client.search_runs([experiment.experiment_id], filter_string=query, max_results=1)
    return runs[0].info.run_id if runs else None


class FgsslMLFlowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger for one phase of an fgssl run (see the module docstring).

    ``tracking_uri`` None: :func:`default_tracking_uri`. Raises ConfigError without mlflow.
    """

    def __init__(
        self,
        save_dir: str,
        name: str,
        version: str = "",
        *,
        tracking_uri: str | None = None,
        experiment_name: str = DEFAULT_EXPERIMENT,
        tags: Mapping[str, str] | None = None,
    ):
        require_tracker("mlflow")
        from mlflow.tracking import MlflowClient

        run_dir = Path(save_dir)
        uri = tracking_uri or default_tracking_uri(run_dir)
        run_id = _find_run(MlflowClient(uri), experiment_name, run_dir, name)
        super().__init__(
            experiment_name=experiment_name,
            run_name=f"{run_dir.name}/{name}",
            tracking_uri=uri,
            tags={**_tags(run_dir, name), **dict(tags or {})},
            artifact_location=_artifact_location(uri),
            run_id=run_id,
        )
        del version  # one MLflow run per phase: the phase names it


class FgsslWandbLogger(WandbLogger):
    """Lightning's WandbLogger for one phase of an fgssl run: offline by default (``wandb
    sync`` uploads later), files under ``<run dir>/wandb``. Raises ConfigError without wandb."""

    def __init__(
        self,
        save_dir: str,
        name: str,
        version: str = "",
        *,
        project: str = DEFAULT_EXPERIMENT,
        offline: bool = True,
        **kwargs: Any,
    ):
        require_tracker("wandb")
        run_dir = Path(save_dir)
        super().__init__(
            name=f"{run_dir.name}/{name}",
            save_dir=str(run_dir),
            project=project,
            offline=offline,
            tags=[name],
            config={"fgssl_run_dir": str(run_dir.resolve()), "phase": name},
            **kwargs,
        )
        del version


def attach_run_files(
    logger_cfg: Mapping[str, Any], run_dir: str | os.PathLike[str], files: Iterable[Path]
) -> list[Path]:
    """Attach ``files`` (those that exist) to the finetune phase's MLflow run of
    ``run_dir``, when ``logger_cfg`` (the run's ``cfg.logger``) holds an MLflow logger;
    returns the files attached."""
    run_dir = Path(run_dir)
    for entry in logger_cfg.values():
        if not str(entry.get("_target_", "")).endswith(FgsslMLFlowLogger.__name__):
            continue
        require_tracker("mlflow")
        from mlflow.tracking import MlflowClient

        uri = entry.get("tracking_uri") or default_tracking_uri(run_dir)
        client = MlflowClient(uri)
        experiment = entry.get("experiment_name") or DEFAULT_EXPERIMENT
        run_id = _find_run(client, experiment, run_dir, "finetune")
        if run_id is None:
            return []
        attached = [path for path in files if path.is_file()]
        for path in attached:
            client.log_artifact(run_id, str(path))
        return attached
    return []
