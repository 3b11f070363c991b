"""``experiment=NAME`` and ``method=NAME`` (lightning-hydra-template's spelling) and the older
``+experiment=NAME``: the same config in any order; the method applies on top of the
experiment; a method the composed config contradicts is still refused."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

import fgssl.conf
from conftest import TINY_TRAINING
from fgssl.cli.common import UNCHOSEN_GROUPS, hydra_arguments, plain_group_choices
from fgssl.errors import ConfigError
from fgssl.run.config_checks import check_config
from fgssl.run.pipeline import run_training

Compose = Callable[..., DictConfig]
CONF_DIR = Path(fgssl.conf.__file__).parent


def test_the_plus_spelling_is_rewritten_for_the_unchosen_groups_only() -> None:
    argv = [
        "+experiment=demo",
        "+method=baseline,pmg",
        "+hparams_search=demo_optuna",
        "+experiments=x",  # another key, not the group
        "+data.extra=1",
        "experiment=aptos",
        "++method=pmg",  # Hydra's force-add: left for Hydra to judge
        "schedule=8_4_2",
    ]
    assert plain_group_choices(argv) == [
        "experiment=demo",
        "method=baseline,pmg",
        "hparams_search=demo_optuna",
        "+experiments=x",
        "+data.extra=1",
        "experiment=aptos",
        "++method=pmg",
        "schedule=8_4_2",
    ]
    assert hydra_arguments(argv)[-1] == "schedule='8_4_2'"  # the schedule quoting still applies


def test_the_unchosen_groups_are_train_yamls_null_defaults() -> None:
    defaults = yaml.safe_load((CONF_DIR / "train.yaml").read_text())["defaults"]
    nulls = [
        next(iter(entry)).removeprefix("optional ")
        for entry in defaults
        if isinstance(entry, dict) and next(iter(entry.values())) is None
    ]
    assert sorted(nulls) == sorted(UNCHOSEN_GROUPS)
    # the experiment after train.yaml's own keys, the method after the experiment
    names = [e if isinstance(e, str) else next(iter(e)) for e in defaults]
    assert names.index("_self_") < names.index("experiment") < names.index("method")


SPELLINGS = [
    ("experiment=demo", "method=baseline"),
    ("method=baseline", "experiment=demo"),
    ("+experiment=demo", "+method=baseline"),
    ("+method=baseline", "+experiment=demo"),
    ("+method=baseline", "experiment=demo"),
    ("method=baseline", "+experiment=demo"),
]


def _plain(cfg: DictConfig) -> Any:
    return OmegaConf.to_container(cfg, resolve=True)


def test_both_spellings_in_any_order_compose_the_same_config(compose_config: Compose) -> None:
    configs = [_plain(compose_config(*spelling)) for spelling in SPELLINGS]
    assert all(config == configs[0] for config in configs[1:])
    # what the files say: the baseline's network (method/baseline.yaml) with the demo's
    # backbone, image size and name (experiment/demo.yaml), no pretraining
    demo = yaml.safe_load((CONF_DIR / "experiment" / "demo.yaml").read_text())
    cfg = configs[0]
    assert cfg["model"]["net"]["_target_"] == "fgssl.models.BaselineNet"
    assert cfg["model"]["net"]["backbone"] == demo["model"]["net"]["backbone"] == "resnet18"
    assert cfg["data"]["image_size"] == demo["data"]["image_size"]
    assert cfg["name"] == "demo" and cfg["method"] == "baseline" and cfg["pretrain_epochs"] == 0
    assert _plain(compose_config("experiment=demo")) == _plain(compose_config("+experiment=demo"))


def test_without_an_experiment_the_defaults_compose(compose_config: Compose) -> None:
    cfg = compose_config("data.root=/x")
    assert cfg.name == "aptos" and "method" not in cfg


def test_a_misspelt_experiment_or_method_is_refused(compose_config: Compose) -> None:
    """The groups are not ``optional`` in the defaults list: a name that is no file fails."""
    for override in ("experiment=dmeo", "+experiment=dmeo", "method=fgsl"):
        with pytest.raises(HydraException, match=override.lstrip("+").split("=")[1]):
            compose_config(override)


def test_a_method_the_composed_config_contradicts_is_refused(
    compose_config: Compose, tmp_path: Path
) -> None:
    """An override of what the method sets, or an experiment's network the method keeps:
    refused before any data is read (no phase folder is made)."""
    cfg = compose_config("method=pmg", "experiment=demo", "pretrain_epochs=2", *TINY_TRAINING)
    with pytest.raises(ConfigError, match="method=pmg but the composed config trains fgssl"):
        run_training(cfg, tmp_path)
    assert not (tmp_path / "pretrain").exists() and not (tmp_path / "finetune").exists()
    medmnist = compose_config("experiment=medmnist", "method=fgssl", "data.root=/x")
    with pytest.raises(ConfigError, match=r"trains baseline.*choose method=baseline"):
        check_config(medmnist)
    check_config(compose_config("experiment=medmnist", "method=pmg", "model=fgssl_small"))
    pmg = compose_config("experiment=demo", "method=pmg")
    assert pmg.model.net._target_ == "fgssl.models.FGSSLNet" and pmg.pretrain_epochs == 0
    fgssl = compose_config("method=fgssl", "experiment=demo")
    assert fgssl.pretrain_epochs == compose_config("experiment=demo").pretrain_epochs > 0


def test_fgssl_train_takes_the_plus_spelling_in_any_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command itself (its entry point, in this process): ``--cfg job`` of
    ``+method=pmg experiment=demo`` prints the config ``experiment=demo method=pmg`` composes."""
    from hydra import compose, initialize_config_module

    from fgssl.cli.train import cli

    monkeypatch.setattr(
        sys, "argv", ["fgssl-train", "+method=pmg", "experiment=demo", "--cfg", "job"]
    )
    cli()
    printed = yaml.safe_load(capsys.readouterr().out)
    with initialize_config_module("fgssl.conf", version_base="1.3"):
        expected = OmegaConf.to_container(compose("train", ["experiment=demo", "method=pmg"]))
    assert printed == expected
    assert printed["method"] == "pmg" and printed["pretrain_epochs"] == 0
