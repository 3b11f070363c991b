"""User paths are relative to the directory fgssl-train was started in, also when Hydra
changes the working directory (``hydra.job.chdir=true``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from conftest import TINY_RUN_OVERRIDES
from fgssl.run.paths import USER_PATHS, resolve_user_paths
from fgssl.run.resume import resumed_config

FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"


def test_every_relative_user_path_is_made_absolute_against_the_start(
    compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    start = tmp_path / "started-here"
    cfg = compose_config(
        "+experiment=demo",
        "data=csv",
        "data.root=data/mine",
        "data.csv=lists/labels.csv",  # relative to data.root, by definition: left as it is
        "data.cache_dir=cache",
        "data.unlabelled=[pool,{path:extra/x.csv,root:extra/images,column:file},/abs/pool]",
        "model.net.pretrained_weights=weights/r50.safetensors",
        "pretrained_run=outputs/demo/2024-05-01_10-00-00",
        "resume=null",
    )
    resolved = OmegaConf.to_container(resolve_user_paths(cfg, start), resolve=True)
    assert isinstance(resolved, dict)
    data, net = resolved["data"], resolved["model"]["net"]
    assert data["root"] == f"{start}/data/mine"
    assert data["csv"] == "lists/labels.csv"
    assert data["cache_dir"] == f"{start}/cache"
    assert data["unlabelled"] == [
        f"{start}/pool",
        {"path": f"{start}/extra/x.csv", "root": f"{start}/extra/images", "column": "file"},
        "/abs/pool",
    ]
    assert net["pretrained_weights"] == f"{start}/weights/r50.safetensors"
    assert resolved["pretrained_run"] == f"{start}/outputs/demo/2024-05-01_10-00-00"
    assert resolved["resume"] is None


@pytest.mark.parametrize("value", ["/data/aptos", "~/data/aptos", None, "???"])
def test_absolute_home_and_unset_paths_are_left_as_they_are(value: str | None) -> None:
    cfg = OmegaConf.create({"data": {"root": value}})
    assert resolve_user_paths(cfg, "/start").data._get_node("root")._value() == value


def test_an_interpolated_path_is_resolved_only_when_relative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = OmegaConf.create({"data": {"cache_dir": "${oc.env:CACHE,'~/.cache/fgssl'}"}})
    monkeypatch.setenv("CACHE", "/scratch/cache")
    assert OmegaConf.is_interpolation(resolve_user_paths(cfg, "/start").data, "cache_dir")
    monkeypatch.setenv("CACHE", "scratch")
    assert resolve_user_paths(cfg, "/start").data.cache_dir == "/start/scratch"


def test_user_paths_are_keys_of_the_config(compose_config: Callable[..., DictConfig]) -> None:
    cfg = compose_config("+experiment=demo")
    for key in USER_PATHS:
        parent, _, leaf = key.rpartition(".")
        assert leaf in (OmegaConf.select(cfg, parent) if parent else cfg), key


def test_a_resumed_run_takes_its_own_paths_given_relative_again(
    compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Repeating the first command's relative pretrained_run (a key a resumed run may not
    change) with resume= passes: both are the same folder once resolved."""
    start = tmp_path / "start"
    cfg = resolve_user_paths(
        compose_config("+experiment=demo", "pretrain_epochs=0", "pretrained_run=runs/ssl"), start
    )
    run = tmp_path / "run"
    run.mkdir()
    OmegaConf.save(cfg, run / "config.yaml")
    overrides = [f"resume={run}", "pretrained_run=runs/ssl", "data.root=moved"]
    resumed = resumed_config(run, overrides, started_in=start)
    assert resumed.pretrained_run == f"{start}/runs/ssl"
    assert resumed.data.root == f"{start}/moved"


@pytest.mark.slow
def test_fgssl_train_reads_relative_paths_from_where_it_was_started(
    aptos_root: Path, tmp_path: Path
) -> None:
    """With hydra.job.chdir=true the run starts in its run directory: data.root=aptos2019
    (beside the start) is still found, and pretrained_run is named from the start."""
    overrides = [o for o in TINY_RUN_OVERRIDES if not o.startswith("pretrain_epochs=")]
    result = subprocess.run(
        [
            str(FGSSL_TRAIN),
            *overrides,
            f"data.root={aptos_root.name}",
            "hydra.job.chdir=true",
            f"hydra.run.dir={tmp_path / 'run'}",
            "pretrain_epochs=0",
            "pretrained_run=no-such-run",  # stops the run after the data were read
        ],
        cwd=aptos_root.parent,
        env={**os.environ},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "not a folder" not in result.stderr
    expected = f"pretrained_run='{aptos_root.parent / 'no-such-run'}' is not an fgssl-train run"
    assert f"fgssl-train: error: {expected}" in result.stderr
    config = OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml")
    assert config.data.root == aptos_root.name  # Hydra's record: the command as given
