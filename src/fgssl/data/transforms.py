"""albumentations pipelines: the defaults, and the normalisation every pipeline ends with."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PIPELINES",
    "TensorTransform",
    "default_pipelines",
    "finalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIPELINES = ("train", "eval", "view1", "view2")
"""train: supervised finetuning; eval: validation/test/prediction; view1, view2: the two
self-supervised views of the pretrain phase."""

TensorTransform = Callable[[np.ndarray], torch.Tensor]


def default_pipelines(image_size: int, resize_size: int) -> dict[str, A.BasicTransform]:
    """Geometry + colour augmentations (before normalisation) for each pipeline.

    Eval resizes the short side to ``resize_size`` and centre-crops ``image_size``; the
    training pipelines crop at random and flip. View 1: flip, grayscale (p=0.2), blur
    always; view 2: grayscale (0.2), blur (0.1), solarize (0.2).
    """

    def geometry(train: bool) -> list[Any]:
        crop = A.RandomCrop if train else A.CenterCrop
        return [A.SmallestMaxSize(max_size=resize_size), crop(image_size, image_size)]

    flips = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    return {
        "train": A.Compose([*geometry(True), *flips]),
        "eval": A.Compose(geometry(False)),
        "view1": A.Compose(
            [
                *geometry(True),
                *flips,
                A.ToGray(p=0.2),
                A.GaussianBlur(sigma_limit=(0.1, 2.0), p=1.0),
            ]
        ),
        "view2": A.Compose(
            [
                *geometry(True),
                *flips,
                A.ToGray(p=0.2),
                A.GaussianBlur(sigma_limit=(0.1, 2.0), p=0.1),
                A.Solarize(p=0.2),
            ]
        ),
    }


class _Finalized:
    """Run an albumentations pipeline, then normalise and convert to a CHW float tensor."""

    def __init__(self, pipeline: Callable[..., Any], mean: Sequence[float], std: Sequence[float]):
        self.pipeline = A.Compose([pipeline, A.Normalize(mean=mean, std=std), ToTensorV2()])

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return self.pipeline(image=image)["image"]


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
