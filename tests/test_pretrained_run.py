"""pretrained_run: finetuning from another run's pretrain phase, and what it refuses."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from conftest import TINY_RUN_OVERRIDES
from fgssl.errors import CheckpointError, ConfigError, DataLayoutError
from fgssl.evaluation.checkpoints import read_checkpoint
from fgssl.run.factory import build_datamodule
from fgssl.run.pretrained_run import check_pretrained_run, pretrained_weights
from fgssl.rundir import RunDir


def finetune_config(compose: Callable[..., DictConfig], root: Path, source: Path, *more: str):
    return compose(
        *TINY_RUN_OVERRIDES,
        f"data.root={root}",
        "pretrain_epochs=0",
        f"pretrained_run={source}",
        *more,
    )


def copy_with_config(run: Path, target: Path, **changes: object) -> Path:
    """A copy of ``run`` whose config.yaml has ``changes`` (dotted keys) applied."""
    shutil.copytree(run, target)
    config = OmegaConf.load(target / "config.yaml")
    for key, value in changes.items():
        OmegaConf.update(config, key, value)
    OmegaConf.save(config, target / "config.yaml")
    return target


def test_refusals_name_the_setting_before_training(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tiny_run: Path, tmp_path: Path
) -> None:
    def check(source: Path, *more: str) -> None:
        cfg = finetune_config(compose_config, aptos_root, source, *more)
        check_pretrained_run(cfg, build_datamodule(cfg))

    with pytest.raises(ConfigError, match=r"pretrained_run=.* and pretrain_epochs=1 both"):
        check(tiny_run, "pretrain_epochs=1")
    with pytest.raises(ConfigError, match="not an fgssl-train run directory"):
        check(tmp_path / "nowhere")
    pmg = copy_with_config(tiny_run, tmp_path / "pmg", pretrain_epochs=0)
    shutil.rmtree(pmg / "pretrain")
    with pytest.raises(ConfigError, match="has no pretrain checkpoint"):
        check(pmg)
    cut = copy_with_config(tiny_run, tmp_path / "cut", pretrain_epochs=3)
    with pytest.raises(ConfigError, match="stopped its pretrain phase after 1 of 3 epochs"):
        check(cut)
    # another seed draws other validation and test images: some were pretrained on
    with pytest.raises(DataLayoutError, match=r"image\(s\) pretrained on in pretrained_run="):
        check(tiny_run, "seed=5")
    check(tiny_run)  # the pretrained run's own split: accepted
    check(tiny_run, "data.label_fraction=0.5")  # fewer labels, same images: accepted


def test_another_network_is_refused_naming_the_key(tiny_run: Path) -> None:
    saved = OmegaConf.to_container(OmegaConf.load(tiny_run / "config.yaml").model.net)
    assert isinstance(saved, dict)
    checkpoint = read_checkpoint(RunDir(tiny_run).last_checkpoint("pretrain"))
    net = dict(checkpoint["hyper_parameters"]["net"])
    assert len(pretrained_weights(tiny_run, net)) > 0
    with pytest.raises(CheckpointError, match="feat_dim: checkpoint"):
        pretrained_weights(tiny_run, {**net, "feat_dim": net["feat_dim"] * 2})


def test_the_method_check_counts_a_pretrained_run_as_fgssl(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tiny_run: Path
) -> None:
    from fgssl.run.config_checks import check_config

    check_config(finetune_config(compose_config, aptos_root, tiny_run, "+method=fgssl"))
    with pytest.raises(ConfigError, match="method=pmg but the composed config trains fgssl"):
        check_config(finetune_config(compose_config, aptos_root, tiny_run, "+method=pmg"))


@pytest.mark.slow
def test_the_finetune_starts_from_the_pretrained_runs_weights(
    compose_config: Callable[..., DictConfig],
    aptos_root: Path,
    tiny_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fgssl.run.pipeline as pipeline

    loaded: list[dict[str, torch.Tensor]] = []

    def spy(source: str, net_config: dict) -> dict[str, torch.Tensor]:
        loaded.append(pretrained_weights(source, net_config))
        return loaded[-1]

    monkeypatch.setattr(pipeline, "pretrained_weights", spy)
    cfg = finetune_config(
        compose_config,
        aptos_root,
        tiny_run,
        "finetune_epochs=1",
        "figures.enabled=false",
        "ssl_eval.knn_k=3",
    )
    results = pipeline.run_training(cfg, tmp_path / "run")
    assert len(loaded) == 1
    checkpoint = read_checkpoint(RunDir(tiny_run).last_checkpoint("pretrain"))
    expected = {k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    assert loaded[0].keys() == expected.keys()
    assert all(torch.equal(loaded[0][k], expected[k]) for k in expected)
    assert not (tmp_path / "run" / "pretrain").exists()  # no pretraining here
    # the SSL evaluation scores the pretrained run's network on this run's labels
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["ssl_eval"] == results["ssl_eval"]
    assert set(saved["ssl_eval"]) >= {"linear_probe", "knn"}


def test_unlabelled_images_without_a_pretrain_phase_are_reported_unused(
    compose_config: Callable[..., DictConfig],
    aptos_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from fgssl.run.config_checks import check_config

    pool = f"data.unlabelled=[{tmp_path}]"
    check_config(compose_config(*TINY_RUN_OVERRIDES, f"data.root={aptos_root}", pool))
    assert "not used" not in caplog.text  # pretrain_epochs=1 reads them
    check_config(
        compose_config(*TINY_RUN_OVERRIDES, f"data.root={aptos_root}", pool, "pretrain_epochs=0")
    )
    assert "data.unlabelled set, but pretrain_epochs=0" in caplog.text
