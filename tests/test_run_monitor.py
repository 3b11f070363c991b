"""``monitor`` is checked against the keys the finetune validation logs, before any data is
read (a misspelt one used to surface after the whole pretrain phase)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from fgssl.errors import ConfigError
from fgssl.metrics import ISIC2017_AUROC_CLASSES
from fgssl.module_eval import eval_metric_keys
from fgssl.run.factory import configured_datamodule, monitor_key
from fgssl.run.pipeline import run_training
from helpers import RandomDataModule, one_thread, tiny_module, tiny_trainer

single_thread = pytest.fixture(autouse=True)(one_thread)

COUNTS = ["acc", "balanced_acc", "precision", "recall", "f1", "auroc"]


@pytest.mark.parametrize(
    ("ordinal", "class_names", "names"),
    [
        (True, ["a", "b", "c"], [*COUNTS, "kappa"]),
        (
            False,
            [*ISIC2017_AUROC_CLASSES, "nevus"],
            [*COUNTS, *(f"auroc_{c}" for c in ISIC2017_AUROC_CLASSES), "mean_auroc"],
        ),
    ],
)
def test_the_keys_are_those_the_validation_logs(
    ordinal: bool, class_names: list[str], names: list[str]
) -> None:
    expected = ["val/loss", *(f"val/{h}/{n}" for h in ("combined", "concat") for n in names)]
    keys = eval_metric_keys("val", ordinal=ordinal, class_names=class_names)
    assert keys == expected
    module = tiny_module(phase="finetune", ordinal=ordinal, class_names=class_names)
    trainer = tiny_trainer(limit_val_batches=2)
    trainer.validate(module, datamodule=RandomDataModule())
    assert sorted(k for k in trainer.callback_metrics if k.startswith("val/")) == sorted(keys)


def _datamodule(compose_config: Callable[..., DictConfig], *overrides: str):  # type: ignore[no-untyped-def]
    cfg = compose_config(*overrides, "data.root=/nowhere", "data.cache_dir=null")
    return cfg, configured_datamodule(cfg)  # no data is read: /nowhere is never looked at


def test_a_misspelt_monitor_is_refused_in_one_line_listing_the_keys(
    compose_config: Callable[..., DictConfig],
) -> None:
    cfg, datamodule = _datamodule(compose_config, "+experiment=aptos", "monitor=val/combined/kapa")
    with pytest.raises(ConfigError) as refused:
        monitor_key(cfg, datamodule)
    message = str(refused.value)
    assert message.startswith(
        "monitor=val/combined/kapa: the finetune validation of APTOS2019DataModule (classes "
        "['No DR', 'Mild', 'Moderate', 'Severe', 'Proliferative DR']) logs no "
        "'val/combined/kapa'; choose one of val/loss, val/combined/acc,"
    )
    assert "val/combined/kappa" in message and "val/concat/auroc" in message
    assert "mean_auroc" not in message and "\n" not in message
    for good in ("auto", "val/combined/kappa", "val/concat/acc", "val/loss"):
        cfg.monitor = good
        expected = "val/combined/kappa" if good == "auto" else good
        assert monitor_key(cfg, datamodule) == expected


@pytest.mark.parametrize(
    ("task", "accepted"),
    [("three_class", True), ("melanoma", False), ("seborrheic_keratosis", False)],
)
def test_isic2017_mean_auroc_is_logged_by_the_three_class_task_only(
    compose_config: Callable[..., DictConfig], task: str, accepted: bool
) -> None:
    cfg, datamodule = _datamodule(
        compose_config,
        "+experiment=isic2017",
        f"data.task={task}",
        "monitor=val/combined/mean_auroc",
    )
    if accepted:
        assert monitor_key(cfg, datamodule) == "val/combined/mean_auroc"
    else:
        with pytest.raises(ConfigError, match="logs no 'val/combined/mean_auroc'"):
            monitor_key(cfg, datamodule)
    cfg.monitor = "auto"
    official = "mean_auroc" if task == "three_class" else "auroc"
    assert monitor_key(cfg, datamodule) == f"val/combined/{official}"


def test_keys_that_depend_on_classes_read_from_the_data_are_checked_again(
    compose_config: Callable[..., DictConfig],
) -> None:
    """Your own data without data.class_names: ISIC 2017's AUROCs may be logged, so they
    pass before the data are read; the classes then read decide."""
    cfg, datamodule = _datamodule(
        compose_config, "+experiment=demo", "data=csv", "monitor=val/concat/mean_auroc"
    )
    assert datamodule.known_class_names() is None
    assert monitor_key(cfg, datamodule) == "val/concat/mean_auroc"
    cfg.monitor = "val/concat/kappa"  # not ordinal: refused without the data
    with pytest.raises(ConfigError, match="classes \\['read from the data'\\]"):
        monitor_key(cfg, datamodule)
    cfg.monitor = "val/concat/mean_auroc"
    datamodule.class_names = ["benign", "malignant"]  # as read_splits sets them
    with pytest.raises(ConfigError, match="logs no 'val/concat/mean_auroc'"):
        monitor_key(cfg, datamodule)


def test_run_training_refuses_a_bad_monitor_before_reading_data(
    compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = compose_config("+experiment=aptos", "data.root=/nowhere", "monitor=val/kappa")
    with pytest.raises(ConfigError, match=r"^monitor=val/kappa: the finetune validation"):
        run_training(cfg, tmp_path / "run")  # /nowhere would fail if data were read
    assert not (tmp_path / "run" / "config.yaml").exists()
