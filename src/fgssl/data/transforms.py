"""albumentations pipelines: the defaults, and the normalisation every pipeline ends with."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fgssl.errors import ConfigError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PIPELINES",
    "TensorTransform",
    "default_pipelines",
    "finalize",
    "load_pipelines",
    "transform_presets",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIPELINES = ("train", "eval", "view1", "view2")
"""train: supervised finetuning; eval: validation/test/prediction; view1, view2: the two
self-supervised views of the pretrain phase."""

TensorTransform = Callable[[np.ndarray], torch.Tensor]


def load_pipelines(preset: str, image_size: int, resize_size: int) -> dict[str, Any]:
    """The pipelines of a shipped transforms config (``conf/data/transforms/<preset>.yaml``:
    ``default``, ``fundus``, ``fundus_small``, ``skin``), built for these sizes.

    The YAML files are the single definition of each preset: ``fgssl-train`` selects them
    with ``data/transforms=<preset>``, and the data modules use them as their defaults.
    """
    source = resources.files("fgssl.conf").joinpath("data", "transforms", f"{preset}.yaml")
    if not source.is_file():
        raise ConfigError(
            f"unknown transforms preset {preset!r}: expected one of {transform_presets()}"
        )
    node = OmegaConf.create({"data": {"image_size": image_size, "resize_size": resize_size}})
    node.pipelines = OmegaConf.create(source.read_text())
    pipelines = instantiate(node.pipelines, _convert_="all")
    return {str(name): pipeline for name, pipeline in pipelines.items()}


def transform_presets() -> list[str]:
    """The names of the shipped transforms configs."""
    folder = resources.files("fgssl.conf").joinpath("data", "transforms")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def default_pipelines(image_size: int, resize_size: int) -> dict[str, Any]:
    """The generic pipelines (the ``default`` preset), before normalisation.

    Train: short side to ``resize_size``, random ``image_size`` crop, flips. Eval: short
    side to ``resize_size``, centre crop. The self-supervised views (as the reference
    FG-SSL code): the image at ``image_size``; view 1 adds a horizontal flip, grayscale
    (p=0.2) and a Gaussian blur (always), view 2 grayscale (0.2), blur (0.1), solarize (0.2).
    """
    return load_pipelines("default", image_size, resize_size)


class _Finalized:
    """Run an albumentations pipeline, then normalise and convert to a CHW float tensor."""

    def __init__(self, pipeline: Callable[..., Any], mean: Sequence[float], std: Sequence[float]):
        self.pipeline = A.Compose([pipeline, A.Normalize(mean=mean, std=std), ToTensorV2()])

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return self.pipeline(image=image)["image"]

    def reseed(self, seed: int) -> None:
        """Make the next call's random choices a function of ``seed``."""
        self.pipeline.set_random_seed(seed)


def finalize(
    pipelines: Mapping[str, Callable[..., Any]],
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> dict[str, TensorTransform]:
    """Append normalisation and tensor conversion to every pipeline."""
    unknown = set(pipelines) - set(PIPELINES)
    if unknown:
        raise KeyError(
            f"unknown transform pipeline(s) {sorted(unknown)}: expected {list(PIPELINES)}"
        )
    return {name: _Finalized(p, mean, std) for name, p in pipelines.items()}
