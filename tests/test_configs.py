"""The Hydra configs: every experiment composes and builds; struct mode rejects typos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import fgssl
from fgssl.cli.train import quote_schedule_choices

CONF = Path(fgssl.__file__).parent / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SCHEDULES = sorted(p.stem for p in (CONF / "schedule").glob("*.yaml"))

Compose = Callable[..., DictConfig]


def test_the_shipped_experiments_and_schedules() -> None:
    assert {"demo", "aptos"} <= set(EXPERIMENTS)
    assert {"8_4_2", "16_8_4", "32_16_8"} <= set(SCHEDULES)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(
    compose_config: Compose, experiment: str
) -> None:
    cfg = compose_config(f"+experiment={experiment}", "data.root=/data/somewhere")
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert cfg.name == experiment
    grids = list(cfg.schedule.grids)
    assert len(grids) == cfg.model.net.num_granularities and grids == sorted(grids, reverse=True)
    optimizer = instantiate(cfg.optim.optimizer)
    assert callable(optimizer)
    transforms = instantiate(cfg.data.transforms)
    assert set(transforms) == {"train", "eval", "view1", "view2"}


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_composes(compose_config: Compose, schedule: str) -> None:
    cfg = compose_config(f"schedule='{schedule}'", "data.root=/x")
    assert "_".join(map(str, cfg.schedule.grids)) == schedule


def test_reference_settings_of_the_aptos_experiment(compose_config: Compose) -> None:
    cfg = compose_config("+experiment=aptos", "data.root=/x")
    assert list(cfg.schedule.grids) == [32, 16, 8]
    assert cfg.model.net.backbone == "resnet50" and cfg.model.net.pretrained is True
    assert cfg.data.image_size == 224 and cfg.data.resize_size == 256


def test_demo_needs_no_download(compose_config: Compose) -> None:
    cfg = compose_config("+experiment=demo")
    assert cfg.model.net.pretrained is False
    assert cfg.data._target_ == "fgssl.data.DemoAPTOSDataModule"


@pytest.mark.parametrize("override", ["learning_rate=0.1", "optim.lrr=0.1", "data.image_sise=96"])
def test_unknown_keys_are_rejected(compose_config: Compose, override: str) -> None:
    with pytest.raises(ConfigCompositionException, match="Could not override"):
        compose_config("+experiment=demo", override)


def test_schedule_choices_are_quoted_for_hydra() -> None:
    argv = ["+experiment=demo", "schedule=8_4_2,16_8_4", "seed=0,1", "optim.lr=1_000"]
    assert quote_schedule_choices(argv) == [
        "+experiment=demo",
        "schedule='8_4_2','16_8_4'",
        "seed=0,1",
        "optim.lr=1_000",
    ]
