"""The data, transforms and experiment configs of the datasets, and training end to end on
trees in the official layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from lightning_fabric.utilities.data import suggested_max_num_workers
from omegaconf import DictConfig

import fgssl
from conftest import TINY_TRAINING
from fgssl.conf.resolvers import default_resize_size
from fgssl.data import (
    APTOS2019DataModule,
    CSVDataModule,
    DDRDataModule,
    DemoAPTOSDataModule,
    EyePACSDataModule,
    FolderDataModule,
    IDRiDDataModule,
    ImageClassificationDataModule,
    ISIC2017DataModule,
    ISIC2018DataModule,
    ISIC2019DataModule,
    ISIC2020DataModule,
    MedMNISTDataModule,
    Messidor2DataModule,
)
from fgssl.data.workers import auto_num_workers
from fgssl.errors import ConfigError
from fgssl.evaluation.predict import eval_transform
from fgssl.run.factory import build_datamodule, build_module, instantiate_datamodule
from fgssl.run.pipeline import run_training
from layouts import make_isic2017, make_isic2018

Compose = Callable[..., DictConfig]
FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"

DATA_CONFIGS = {
    "aptos": APTOS2019DataModule,
    "isic2018": ISIC2018DataModule,
    "isic2017": ISIC2017DataModule,
    "folder": FolderDataModule,
    "csv": CSVDataModule,
    "demo": DemoAPTOSDataModule,
    "eyepacs": EyePACSDataModule,
    "messidor2": Messidor2DataModule,
    "idrid": IDRiDDataModule,
    "ddr": DDRDataModule,
    "isic2019": ISIC2019DataModule,
    "isic2020": ISIC2020DataModule,
    "medmnist": MedMNISTDataModule,
}
CONF_DATA = Path(fgssl.__file__).parent / "conf" / "data"


def test_every_data_config_is_tested() -> None:
    """A new data config joins DATA_CONFIGS (and so the tests below); ``_`` files are pieces."""
    shipped = {p.stem for p in CONF_DATA.glob("*.yaml") if not p.stem.startswith("_")}
    assert shipped == set(DATA_CONFIGS)


@pytest.mark.parametrize(("name", "cls"), DATA_CONFIGS.items())
def test_every_data_config_builds_its_module(
    compose_config: Compose, name: str, cls: type, tmp_path: Path
) -> None:
    cfg = compose_config(f"data={name}", f"data.root={tmp_path}")
    dm = instantiate(cfg.data)
    assert type(dm) is cls and isinstance(dm, ImageClassificationDataModule)
    assert dm.label_fraction == 1.0 and dm.sampler is None and dm.missing_images == "error"


@pytest.mark.parametrize(
    ("experiment", "schedule", "cls", "metric"),
    [
        ("aptos", [32, 16, 8], APTOS2019DataModule, "kappa"),
        ("isic2018", [16, 8, 4], ISIC2018DataModule, "balanced_acc"),
        ("isic2017", [16, 8, 4], ISIC2017DataModule, "auroc"),
    ],
)
def test_reference_settings_of_the_experiments(
    compose_config: Compose, experiment: str, schedule: list[int], cls: type, metric: str
) -> None:
    cfg = compose_config(f"+experiment={experiment}", "data.root=/data/x")
    assert list(cfg.schedule.grids) == schedule
    assert cfg.model.net.backbone == "resnet50" and cfg.model.net.pretrained is True
    assert cfg.model.net.pretrained_weights is None  # the local-weights option, offline
    assert (cfg.data.image_size, cfg.data.resize_size, cfg.data.batch_size) == (224, 256, 16)
    assert cfg.optim.lr == 0.002 and cfg.optim.lr * cfg.optim.backbone_lr_scale == pytest.approx(
        2e-4
    )
    assert cfg.optim.optimizer.momentum == 0.9 and cfg.optim.optimizer.weight_decay == 5e-4
    dm = instantiate(cfg.data)
    assert type(dm) is cls and isinstance(dm, ImageClassificationDataModule)
    assert dm.official_metric == metric


def targets(pipeline: DictConfig) -> dict[str, float]:
    """albumentations class name -> probability, of a pipeline config."""
    return {t._target_.split(".")[-1]: t.get("p", 1.0) for t in pipeline.transforms}


@pytest.mark.parametrize("preset", ["fundus", "skin", "default"])
def test_transform_presets_match_the_reference(compose_config: Compose, preset: str) -> None:
    cfg = compose_config(f"data/transforms={preset}", "data.root=/x")
    transforms = cfg.data.transforms
    view1, view2 = targets(transforms.view1), targets(transforms.view2)
    assert (
        view1["HorizontalFlip"] == 0.5 and view1["ToGray"] == 0.2 and view1["GaussianBlur"] == 1.0
    )
    assert "Solarize" not in view1
    assert view2["ToGray"] == 0.2 and view2["GaussianBlur"] == 0.1 and view2["Solarize"] == 0.2
    assert "HorizontalFlip" not in view2
    assert list(targets(transforms.eval)) == ["SmallestMaxSize", "CenterCrop"]
    assert transforms.eval.transforms[0].max_size == 256
    train = targets(transforms.train)
    assert train["HorizontalFlip"] == train["VerticalFlip"] == 0.5
    if preset == "fundus":
        assert list(train)[-2:] == ["SmallestMaxSize", "CenterCrop"]
    if preset == "skin":
        assert {"RandomResizedCrop", "Affine", "ColorJitter", "OneOf"} <= set(train)
    for name, pipeline in instantiate(transforms, _convert_="all").items():
        image = torch.randint(0, 255, (300, 400, 3), dtype=torch.uint8).numpy()
        assert pipeline(image=image)["image"].shape == (224, 224, 3), name


def test_modules_default_to_their_presets(tmp_path: Path) -> None:
    skin = repr(vars(ISIC2018DataModule(tmp_path).transforms["train"])["pipeline"])
    fundus = repr(vars(APTOS2019DataModule(tmp_path).transforms["train"])["pipeline"])
    assert "RandomResizedCrop" in skin and "RandomResizedCrop" not in fundus


def test_a_pipeline_replaced_from_the_command_line(compose_config: Compose) -> None:
    cfg = compose_config(
        "+experiment=isic2018",
        "data.root=/x",
        "data.transforms.eval.transforms="
        "[{_target_: albumentations.Resize, height: 224, width: 224}]",
    )
    eval_pipeline = instantiate(cfg.data.transforms.eval)
    assert eval_pipeline(image=torch.zeros(50, 90, 3, dtype=torch.uint8).numpy())["image"].shape[
        :2
    ] == (
        224,
        224,
    )


def test_class_weights_reach_the_finetune_loss(compose_config: Compose, tmp_path: Path) -> None:
    tree = make_isic2018(tmp_path / "isic")
    cfg = compose_config(
        "+experiment=isic2018",
        *TINY_TRAINING,
        f"data.root={tree.root}",
        "loss.class_weights=balanced",
    )
    dm = build_datamodule(cfg)
    finetune = build_module(cfg, dm, phase="finetune")
    assert finetune.class_weights is not None
    assert finetune.class_weights.tolist() == pytest.approx(dm.class_weights("balanced"))
    assert build_module(cfg, dm, phase="pretrain").class_weights is None


@pytest.mark.slow
def test_isic2018_end_to_end_with_label_fraction_and_rebalancing(
    compose_config: Compose, tmp_path: Path
) -> None:
    tree = make_isic2018(tmp_path / "isic")
    cfg = compose_config(
        "+experiment=isic2018",
        *TINY_TRAINING,
        f"data.root={tree.root}",
        "pretrain_epochs=1",
        "finetune_epochs=1",
        "trainer.limit_train_batches=2",
        "data.label_fraction=0.5",
        "data.sampler=weighted",
        "loss.class_weights=balanced",
        "data.cache_dir=" + str(tmp_path / "cache"),
    )
    results = run_training(cfg, tmp_path / "run")
    assert results["monitor"] == "val/combined/balanced_acc"
    assert results["class_names"] == ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    train = split[split["split"] == "train"]
    assert len(train) == 41 and 18 <= train["labelled"].sum() <= 23
    assert list(split.loc[split["split"] == "test", "id"]) == tree.test_ids
    cached = len(list((tmp_path / "cache").rglob("*.npy")))
    assert 7 + 9 + 16 <= cached <= 7 + 9 + 41  # val and test, and the training images read
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test"]["combined"]


@pytest.mark.slow
def test_isic2017_end_to_end(compose_config: Compose, tmp_path: Path) -> None:
    make_isic2017(tmp_path / "isic2017")
    cfg = compose_config(
        "+experiment=isic2017",
        *TINY_TRAINING,
        f"data.root={tmp_path / 'isic2017'}",
        "data.task=melanoma",
        "pretrain_epochs=0",
        "finetune_epochs=1",
        "trainer.limit_train_batches=1",
    )
    results = run_training(cfg, tmp_path / "run")
    assert results["monitor"] == "val/combined/auroc"
    assert 0.0 <= results["test"]["combined"]["auroc"] <= 1.0


@pytest.mark.slow
def test_offline_pretrained_weights_error_is_one_line(tmp_path: Path) -> None:
    tree = make_isic2018(tmp_path / "isic")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-empty")}
    result = subprocess.run(
        [
            str(FGSSL_TRAIN),
            "+experiment=isic2018",
            f"data.root={tree.root}",
            "data.num_workers=0",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "fgssl-train: error: could not load pretrained ImageNet weights" in result.stderr
    assert "model.net.pretrained_weights=" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------- derived settings
def sizes(dm: ImageClassificationDataModule) -> dict[str, tuple[int, int]]:
    """Pipeline -> (SmallestMaxSize's max_size, the crop side) of the built transforms."""
    found = {}
    for name, transform in dm.transforms.items():
        steps = vars(transform)["pipeline"].transforms[0].transforms
        resize = next(t.max_size for t in steps if type(t).__name__ == "SmallestMaxSize")
        crop = next(
            t.size[0] if hasattr(t, "size") else t.height
            for t in steps
            if type(t).__name__ in ("CenterCrop", "RandomCrop", "RandomResizedCrop")
        )
        found[name] = (resize, crop)
    return found


# demo: its own margin; medmnist: no crop (resize_size is image_size, test_data_medmnist.py)
@pytest.mark.parametrize("name", sorted(set(DATA_CONFIGS) - {"demo", "medmnist"}))
def test_resize_size_follows_image_size(compose_config: Compose, name: str, tmp_path: Path) -> None:
    """data.image_size=96 alone resizes to round(96 * 8 / 7) = 110 (109.71), not 256."""
    cfg = compose_config(f"data={name}", f"data.root={tmp_path}", "data.image_size=96")
    assert (cfg.data.image_size, cfg.data.resize_size) == (96, 110)
    dm = instantiate(cfg.data)
    assert (dm.image_size, dm.resize_size) == (96, 110)
    built = sizes(dm)
    assert built["train"] == built["eval"] == (110, 96)
    assert built["view1"][1] == built["view2"][1] == 96
    cfg = compose_config(f"data={name}", f"data.root={tmp_path}", "data.resize_size=300")
    assert sizes(instantiate(cfg.data))["eval"] == (300, 224)  # an explicit value is kept


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], (80, 87)),  # the demo's own margin: 13/12 of the crop, round(86.67)
        (["data.image_size=96"], (96, 104)),
        (["data.image_size=64"], (64, 69)),  # round(64 * 13 / 12) = round(69.33)
        (["data.image_size=64", "data.resize_size=80"], (64, 80)),
    ],
)
def test_the_demo_resize_follows_its_image_size(
    compose_config: Compose, overrides: list[str], expected: tuple[int, int]
) -> None:
    cfg = compose_config("+experiment=demo", *overrides)
    assert (cfg.data.image_size, cfg.data.resize_size) == expected
    dm = instantiate(cfg.data)
    assert set(sizes(dm).values()) == {(expected[1], expected[0])}


def test_the_python_default_is_the_config_rule(tmp_path: Path) -> None:
    for image_size, resize_size in [(224, 256), (96, 110), (32, 37), (448, 512)]:
        assert FolderDataModule(tmp_path, image_size=image_size).resize_size == resize_size
    assert default_resize_size(96) == 110 and default_resize_size(96, "13/12") == 104


def test_resize_smaller_than_the_crop_is_refused_before_data_is_read(
    compose_config: Compose, tmp_path: Path
) -> None:
    cfg = compose_config(
        "data=folder", f"data.root={tmp_path / 'absent'}", "data.image_size=96",
        "data.resize_size=90",
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        instantiate_datamodule(cfg)
    assert str(caught.value).startswith("data.resize_size=90 is smaller than data.image_size=96: ")
    assert "8/7 of data.image_size: 110" in str(caught.value)
    assert FolderDataModule(tmp_path, image_size=96, resize_size=96).resize_size == 96


def test_num_workers_auto_uses_the_available_cpus(
    compose_config: Compose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = compose_config("data=folder", f"data.root={tmp_path}")
    assert cfg.data.num_workers == "auto"
    dm = instantiate(cfg.data)
    for cpus, devices, expected in [(1, 1, 1), (2, 1, 1), (3, 1, 2), (16, 1, 4), (16, 4, 3)]:
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)))
        assert auto_num_workers(devices) == expected
        # Lightning's bound (below which it warns of too few workers) and PyTorch's (the CPUs)
        assert auto_num_workers(devices) == min(4, suggested_max_num_workers(devices))
        assert auto_num_workers(devices) <= cpus
        assert dm.num_workers == auto_num_workers(1)
    dm.num_workers = 0
    assert dm.num_workers == 0
    for bad in (-1, "many", 1.5):
        with pytest.raises(ConfigError, match=r"data\.num_workers must be a number >= 0 or 'auto'"):
            FolderDataModule(tmp_path, num_workers=bad)  # type: ignore[arg-type]


def test_predict_without_a_run_config_uses_the_same_resize_rule() -> None:
    """fgssl-predict --image-size 96: short side to 110, centre crop 96."""
    steps = vars(eval_transform(None, image_size=96))["pipeline"].transforms[0].transforms
    assert [type(t).__name__ for t in steps] == ["SmallestMaxSize", "CenterCrop"]
    assert (steps[0].max_size, steps[1].height) == (110, 96)
