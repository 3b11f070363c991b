"""The checks of albumentations pipeline configs: an argument, transform or value the
installed albumentations does not take is one ConfigError naming the place, before training."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from pathlib import Path

import albumentations as A
import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from fgssl.data import FolderDataModule
from fgssl.data.transforms import build_pipelines, load_pipelines, transform_presets
from fgssl.errors import ConfigError
from fgssl.run.factory import instantiate_datamodule

Compose = Callable[..., DictConfig]
VERSION = f"albumentations {A.__version__}"


def folder_config(compose_config: Compose, tmp_path: Path) -> DictConfig:
    return compose_config("data=folder", f"data.root={tmp_path}", "data.num_workers=0")


def refused(cfg: DictConfig) -> str:
    """The one-line message with which building the data module refuses ``cfg``."""
    with pytest.raises(ConfigError) as caught, warnings.catch_warnings():
        warnings.simplefilter("error")  # albumentations must not get to warn and go on
        instantiate_datamodule(cfg)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_misspelt_argument_names_pipeline_transform_and_argument(
    compose_config: Compose, tmp_path: Path
) -> None:
    cfg = folder_config(compose_config, tmp_path)
    blur = cfg.data.transforms.view1.transforms[4]
    assert blur._target_ == "albumentations.GaussianBlur"
    with open_dict(blur):
        blur.sigma_limitt = [0.1, 0.2]
    message = refused(cfg)
    assert message.startswith(
        "data.transforms.view1.transforms[4] (albumentations.GaussianBlur): "
        f"{VERSION} does not accept the argument(s) 'sigma_limitt'"
    )
    assert "sigma_limit" in message.split("it takes")[1]


@pytest.mark.parametrize(
    ("transform", "argument", "value"),
    [
        ("GaussNoise", "var_limit", [10.0, 50.0]),  # albumentations < 2: now std_range
        ("HorizontalFlip", "always_apply", True),  # removed in albumentations 2
    ],
)
def test_an_argument_this_version_removed_is_refused(
    compose_config: Compose, tmp_path: Path, transform: str, argument: str, value: object
) -> None:
    if argument in inspect.signature(getattr(A, transform)).parameters:
        pytest.skip(f"{VERSION} still takes {transform}({argument}=...)")
    cfg = folder_config(compose_config, tmp_path)
    cfg.data.transforms.train.transforms.append(
        OmegaConf.create({"_target_": f"albumentations.{transform}", argument: value})
    )
    message = refused(cfg)
    assert message.startswith(f"data.transforms.train.transforms[4] (albumentations.{transform})")
    assert f"does not accept the argument(s) '{argument}'" in message


def test_nested_transforms_are_checked(compose_config: Compose, tmp_path: Path) -> None:
    cfg = compose_config("data=isic2018", f"data.root={tmp_path}")
    one_of = cfg.data.transforms.train.transforms[6]
    assert one_of._target_ == "albumentations.OneOf"
    with open_dict(one_of.transforms[2]):
        one_of.transforms[2].bits = 4
    message = refused(cfg)
    assert message.startswith(
        "data.transforms.train.transforms[6].transforms[2] (albumentations.Posterize)"
    )
    assert "'bits'" in message


def test_unknown_transform_pipeline_and_bad_value(compose_config: Compose, tmp_path: Path) -> None:
    cfg = folder_config(compose_config, tmp_path)
    cfg.data.transforms.eval.transforms[1]._target_ = "albumentations.CentreCrop"
    assert refused(cfg) == (
        "data.transforms.eval.transforms[1]: _target_ 'albumentations.CentreCrop' does not "
        f"exist in {VERSION}"
    )
    cfg = folder_config(compose_config, tmp_path)
    with open_dict(cfg):
        cfg.data.transforms.test = cfg.data.transforms.eval
    assert "data.transforms: unknown pipeline(s) ['test']" in refused(cfg)
    cfg = folder_config(compose_config, tmp_path)
    cfg.data.transforms.train.transforms[2].p = 2.0  # a probability above 1
    message = refused(cfg)
    assert message.startswith("data.transforms.train (albumentations.")
    assert "HorizontalFlip): " in message and "less than or equal to 1" in message


def test_pipelines_built_in_python_are_checked_too(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="not valid for transform GaussianBlur"):
        pipeline = A.Compose([A.OneOf([A.GaussianBlur(blur_limitt=3)], p=1.0)])  # type: ignore[call-arg]
    with pytest.raises(
        ConfigError, match=r"transforms\['view1'\] \(albumentations\.GaussianBlur\)"
    ):
        FolderDataModule(tmp_path, transforms={"view1": pipeline})
    with pytest.raises(ConfigError, match=r"unknown transform pipeline\(s\) \['val'\]"):
        FolderDataModule(tmp_path, transforms={"val": A.Compose([])})


@pytest.mark.parametrize("preset", transform_presets())
def test_the_shipped_presets_pass_the_checks(preset: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipelines = load_pipelines(preset, 96, 110)
    assert set(pipelines) == {"train", "eval", "view1", "view2"}


def test_build_pipelines_names_its_config() -> None:
    node = OmegaConf.create({"eval": {"_target_": "albumentations.Resize", "hight": 3}})
    with pytest.raises(ConfigError, match=r"^my\.pipelines\.eval \(albumentations\.Resize\)"):
        build_pipelines(node, "my.pipelines")
