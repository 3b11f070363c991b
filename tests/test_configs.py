"""The Hydra configs: every experiment composes and builds; struct mode rejects typos."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import fgssl
from conftest import TINY_TRAINING
from fgssl import jigsaw
from fgssl.cli.common import quote_schedule_choices
from fgssl.errors import ConfigError
from fgssl.run.config_checks import check_config, unshuffled_border
from fgssl.run.factory import build_module
from fgssl.run.pipeline import run_training

CONF = Path(fgssl.__file__).parent / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SCHEDULES = sorted(p.stem for p in (CONF / "schedule").glob("*.yaml"))

Compose = Callable[..., DictConfig]


def test_the_shipped_experiments_and_schedules() -> None:
    assert {"demo", "aptos"} <= set(EXPERIMENTS)
    assert {"grids_8_4_2", "grids_16_8_4", "grids_32_16_8"} <= set(SCHEDULES)
    assert {"8_4_2", "16_8_4", "32_16_8"} <= set(SCHEDULES)  # the old names, as aliases


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(
    compose_config: Compose, experiment: str
) -> None:
    cfg = compose_config(f"+experiment={experiment}", "data.root=/data/somewhere")
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert cfg.name == experiment
    grids = list(cfg.schedule.grids)
    assert grids == sorted(grids, reverse=True)
    if "num_granularities" in cfg.model.net:  # the baseline model has one stage
        assert len(grids) == cfg.model.net.num_granularities
    assert cfg.model.net.image_size == cfg.data.image_size  # ViTs are built for it
    optimizer = instantiate(cfg.optim.optimizer)
    assert callable(optimizer)
    transforms = instantiate(cfg.data.transforms)
    assert set(transforms) == {"train", "eval", "view1", "view2"}


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_composes(compose_config: Compose, schedule: str) -> None:
    cfg = compose_config(f"schedule='{schedule}'", "data.root=/x")
    assert "_".join(map(str, cfg.schedule.grids)) == schedule.removeprefix("grids_")
    assert cfg.model.net.num_granularities == len(cfg.schedule.grids)  # K from the schedule


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


# ------------------------------------------------- refusals before any data is read
def refusal(cfg: DictConfig, tmp_path: Path) -> str:
    """The ConfigError of a run of ``cfg`` whose data.root does not exist: a refusal that
    came after reading data would be a DataLayoutError instead."""
    with pytest.raises(ConfigError) as caught:
        run_training(cfg, tmp_path / "run")
    return str(caught.value)


def test_batch_size_one_is_refused_before_any_data_is_read(
    compose_config: Compose, tmp_path: Path
) -> None:
    cfg = compose_config("+experiment=aptos", "data.root=/nonexistent", "data.batch_size=1")
    message = refusal(cfg, tmp_path)
    assert "data.batch_size=1" in message and "per process" in message
    check_config(compose_config("+experiment=aptos", "data.root=/x", "data.batch_size=2"))


@pytest.mark.parametrize(
    ("override", "named", "advice"),
    [
        ("+trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val=1.0", "optim.grad_clip=1.0"),
        ("+trainer.gradient_clip_algorithm=value", "gradient_clip_algorithm", "optim.grad_clip"),
        ("+trainer.accumulate_grad_batches=4", "accumulate_grad_batches=4", "optim.accumulate"),
        ("+trainer.enable_checkpointing=false", "enable_checkpointing", "checkpoints"),
        ("+trainer.max_epochs=3", "trainer.max_epochs", "finetune_epochs"),
        ("+trainer.sync_batchnorm=true", "trainer.sync_batchnorm", "model.sync_batchnorm"),
    ],
)
def test_trainer_settings_that_manual_optimisation_or_fgssl_own_are_refused(
    compose_config: Compose, tmp_path: Path, override: str, named: str, advice: str
) -> None:
    cfg = compose_config("+experiment=aptos", "data.root=/nonexistent", override)
    message = refusal(cfg, tmp_path)
    assert named in message and advice in message


@pytest.mark.parametrize(
    "override", ["+trainer.gradient_clip_val=null", "+trainer.accumulate_grad_batches=1"]
)
def test_trainer_settings_that_change_nothing_are_accepted(
    compose_config: Compose, override: str
) -> None:
    check_config(compose_config("+experiment=aptos", "data.root=/x", override))


def test_the_permutation_rule_is_checked_and_reaches_the_module(
    compose_config: Compose, tmp_path: Path
) -> None:
    cfg = compose_config("+experiment=aptos", "data.root=/nonexistent", "schedule.permutation=any")
    assert "schedule.permutation='any'" in refusal(cfg, tmp_path)
    assert compose_config("+experiment=demo").schedule.permutation == "derangement"
    cfg = compose_config("+experiment=demo", *TINY_TRAINING, "schedule.permutation=cycle")
    data = SimpleNamespace(num_classes=5, ordinal=True, class_names=[str(c) for c in range(5)])
    module = build_module(cfg, data, phase="pretrain")  # type: ignore[arg-type]
    assert module.permutation == "cycle"


def test_the_objective_is_a_config_choice_and_a_bad_target_is_refused_early(
    compose_config: Compose, tmp_path: Path
) -> None:
    data = SimpleNamespace(num_classes=5, ordinal=True, class_names=[str(c) for c in range(5)])
    cfg = compose_config("+experiment=demo", *TINY_TRAINING, "objective=vicreg")
    module = build_module(cfg, data, phase="pretrain")  # type: ignore[arg-type]
    assert type(module.ssl_loss).__name__ == "VICRegLoss"
    default = build_module(compose_config("+experiment=demo"), data, phase="pretrain")  # type: ignore[arg-type]
    assert type(default.ssl_loss).__name__ == "BarlowTwinsLoss"
    assert default.ssl_loss.scale == compose_config("+experiment=demo").loss.barlow_scale
    cfg = compose_config("+experiment=demo", *TINY_TRAINING, "objective=barlow_twins_reference")
    reference = build_module(cfg, data, phase="pretrain")  # type: ignore[arg-type]
    assert type(reference.ssl_loss).__name__ == "ReferenceBarlowTwinsLoss"
    assert (reference.ssl_loss.lambd, reference.ssl_loss.scale) == (cfg.loss.barlow_lambda, 1.0)
    cfg = compose_config(
        "+experiment=aptos", "data.root=/nonexistent", "objective._target_=fgssl.losses.Nope"
    )
    assert "objective._target_='fgssl.losses.Nope' is not a class" in refusal(cfg, tmp_path)


def test_a_grid_finer_than_the_image_is_refused_before_any_data_is_read(
    compose_config: Compose, tmp_path: Path
) -> None:
    cfg = compose_config(
        "+experiment=aptos",
        "data.root=/nonexistent",
        "data.image_size=24",
        "schedule=grids_32_16_8",
    )
    assert "grids [32] larger than the 24px images" in refusal(cfg, tmp_path)


# --------------------------------------------------------- the unshuffled border
@pytest.mark.parametrize(("size", "grid"), [(100, 8), (100, 3), (97, 16), (96, 8)])
def test_unshuffled_border_is_what_the_jigsaw_leaves_in_place(size: int, grid: int) -> None:
    # distinct pixel values and a derangement: exactly the border keeps its pixels
    images = torch.arange(size * size, dtype=torch.float).view(1, 1, size, size)
    stayed = (jigsaw(images, grid) == images).sum().item() / size**2
    border, share = unshuffled_border(size, grid)
    assert border == size % grid
    assert share == pytest.approx(stayed, abs=1e-12)


def test_the_border_of_100px_images_with_grid_8() -> None:
    assert unshuffled_border(100, 8) == (4, pytest.approx(1 - 96**2 / 100**2))  # 7.84 %


def test_a_grid_that_does_not_divide_the_image_is_warned_about(
    compose_config: Compose, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fgssl.run.config_checks"):
        check_config(compose_config("+experiment=demo", "data.image_size=100"))
    (warning,) = caplog.messages  # 4 and 2 divide 100, 8 does not
    assert "grid 8" in warning and "data.image_size=100" in warning
    assert "last 4 rows and columns" in warning and "7.8 %" in warning
    assert "(96 or 104)" in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fgssl.run.config_checks"):
        check_config(compose_config("+experiment=demo", "data.image_size=96"))
        check_config(compose_config("+experiment=demo", "data.image_size=100", "+method=baseline"))
    assert caplog.messages == []


def test_every_process_needs_a_whole_training_batch(aptos_root: Path) -> None:
    from fgssl.data import APTOS2019DataModule

    data = APTOS2019DataModule(aptos_root, image_size=32, batch_size=16, num_workers=0)
    images = len(data.dataset("train"))
    assert 16 <= images < 4 * 16
    data.trainer = SimpleNamespace(world_size=1, num_devices=1, current_epoch=0)  # type: ignore[assignment]
    assert len(data.train_dataloader()) == images // 16  # the incomplete last batch dropped
    data.trainer = SimpleNamespace(world_size=4, num_devices=4, current_epoch=0)  # type: ignore[assignment]
    share = -(-images // 4)
    with pytest.raises(ConfigError, match=f"4 processes get {share} each.*batch_size=16"):
        data.train_dataloader()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("ssl_eval.split=train", "ssl_eval.split='train': expected one of ['val', 'test']"),
        ("ssl_eval.split=tset", "ssl_eval.split='tset'"),
        ("ssl_eval.features=backbon", "ssl_eval.features='backbon': expected one of"),
        ("ssl_eval.knn_k=0", "ssl_eval.knn_k=0: expected a whole number >= 1"),
        ("ssl_eval.probe_c=-1", "ssl_eval.probe_c=-1: expected a number > 0"),
        ("ssl_eval.knn_temperature=0", "ssl_eval.knn_temperature=0: expected a number > 0"),
    ],
)
def test_ssl_eval_settings_are_checked_before_the_run_not_after(
    compose_config: Compose, tmp_path: Path, override: str, named: str
) -> None:
    """ssl_eval runs when the whole run is over: its settings are refused at the start."""
    cfg = compose_config("+experiment=aptos", "data.root=/nonexistent", override)
    assert named in refusal(cfg, tmp_path)


def test_ssl_eval_settings_of_a_run_without_ssl_evaluation_are_not_refused(
    compose_config: Compose,
) -> None:
    bad = "ssl_eval.knn_k=0"
    for unused in ("pretrain_epochs=0", "ssl_eval.enabled=false"):
        check_config(compose_config("+experiment=aptos", "data.root=/x", bad, unused))
    check_config(compose_config("+experiment=aptos", "data.root=/x", "ssl_eval.split=val"))
