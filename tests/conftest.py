"""Shared fixtures: small datasets in the official layouts, Hydra composition."""

from __future__ import annotations

import os

# No test may reach the network: timm/huggingface_hub read this when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch-home"))
# fgssl first, before anything loads torch: its import sets OpenMP's short spin
# (fgssl/__init__.py), without which the suite is many times slower on a busy machine.
import fgssl  # noqa: F401, I001  (before torch: isort would move it)

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from fgssl.cli.common import hydra_arguments
from fgssl.data.demo import make_demo_aptos

torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_TRAINING = [
    "model.net.backbone=resnet18",
    "model.net.pretrained=false",
    "model.net.feat_dim=16",
    "model.net.hidden_dim=32",
    "data.image_size=32",
    "data.resize_size=36",
    "data.batch_size=8",
    "data.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "schedule=grids_8_4_2",
]
"""Overrides that make any experiment train in seconds on a CPU."""


@pytest.fixture(scope="session", autouse=True)
def image_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """$FGSSL_CACHE_DIR: configs that cache images by default (aptos, isic2017) write into a
    temporary folder, never into the user's ~/.cache."""
    previous = os.environ.get("FGSSL_CACHE_DIR")
    folder = tmp_path_factory.mktemp("image-cache")
    os.environ["FGSSL_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["FGSSL_CACHE_DIR"]
    else:
        os.environ["FGSSL_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def aptos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small APTOS 2019 tree (train.csv, train_images/, test.csv, test_images/), read-only."""
    return make_demo_aptos(
        tmp_path_factory.mktemp("aptos") / "aptos2019", num_train=60, num_test=6, size=48, seed=1
    )


@pytest.fixture
def aptos_copy(aptos_root: Path, tmp_path: Path) -> Path:
    """A writable copy of :func:`aptos_root` for tests that break it."""
    import shutil

    return Path(shutil.copytree(aptos_root, tmp_path / "aptos2019"))


@pytest.fixture
def compose_config() -> Iterator[Callable[..., DictConfig]]:
    """compose(overrides) -> the fgssl-train config, as Hydra would build it (given the
    overrides as fgssl-train gives them: ``+experiment=`` and ``experiment=`` alike)."""

    def _compose(*overrides: str) -> DictConfig:
        cfg = compose("train", overrides=hydra_arguments(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # resolves ${hydra:...} interpolations
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    with initialize_config_module("fgssl.conf", version_base="1.3"):
        yield _compose


TINY_RUN_OVERRIDES = [
    "experiment=demo",
    *TINY_TRAINING,
    "data._target_=fgssl.data.APTOS2019DataModule",
    "~data.num_train",
    "~data.num_test",
    "~data.generated_size",
    "data.test_fraction=0.2",
    "pretrain_epochs=1",
    "finetune_epochs=2",
    "trainer.limit_train_batches=2",
]
"""A run of the whole pipeline on :func:`aptos_root` in seconds (needs ``data.root``)."""


@pytest.fixture(scope="session")
def tiny_run(aptos_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished fgssl-train run directory (pretrain + finetune + test + figures) on
    :func:`aptos_root`, shared by the evaluation tests: treat it as read-only."""
    from hydra.core.global_hydra import GlobalHydra

    from fgssl.run.pipeline import run_training

    run_dir = tmp_path_factory.mktemp("tiny-run")
    GlobalHydra.instance().clear()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared CPU, two threads can be many times slower
    with initialize_config_module("fgssl.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*TINY_RUN_OVERRIDES, f"data.root={aptos_root}"],
            return_hydra_config=True,
        )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        try:
            run_training(cfg, run_dir)
        finally:
            torch.set_num_threads(threads)
    return run_dir
