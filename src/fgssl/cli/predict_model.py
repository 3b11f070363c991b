"""What fgssl-predict predicts with: one checkpoint, an ensemble of several
(:mod:`fgssl.cli.members`), or fgssl-export's .onnx file, with the transform, the image
reader (the preprocessing the model was trained with), the precision, the test-time
augmentation and the ordinal thresholds it runs with. Options that do not apply to the
model are refused in one line before any image is read."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch

from fgssl.cli.common import resolve_tta
from fgssl.cli.members import Members, load_members
from fgssl.data.preprocess import ImageReader
from fgssl.errors import ConfigError
from fgssl.evaluation.ensemble import ensemble_thresholds
from fgssl.evaluation.exported import ExportedModel, ExportedNet
from fgssl.evaluation.predict import eval_transform, image_reader, same_preprocessing
from fgssl.thresholds import FittedThresholds

__all__ = ["PredictingModel", "load_model"]

PROG = "fgssl-predict"


@dataclass
class PredictingModel:
    """The network(s) and the settings :func:`fgssl.evaluation.predict.predict_images`
    runs them with."""

    net: Any
    """A checkpoint's network, the list of an ensemble's, or :class:`ExportedNet`."""
    transform: Any
    class_names: list[str]
    reader: ImageReader
    device: torch.device
    precision: str
    views: tuple[str, ...]
    members: Members | None = None
    """The checkpoints (None: an exported model)."""
    columns: list[list[int]] | None = None
    """An ensemble's: each member's output column of each class (by name)."""
    thresholds: FittedThresholds | None = None
    """A single checkpoint's ordinal thresholds (an ensemble applies none:
    :func:`fgssl.evaluation.ensemble.ensemble_thresholds`)."""


def load_model(args: argparse.Namespace, device: torch.device) -> PredictingModel:
    """The model of ``args.models`` (fgssl-predict's parsed arguments) on ``device`` (an
    exported model runs on the CPU)."""
    if any(str(model).endswith(".onnx") for model in args.models):
        return _exported(args)
    members = load_members(args.models, args, PROG)
    first = members.first
    class_names = list(first.class_names)
    return PredictingModel(
        net=members.nets,
        transform=eval_transform(first.config, image_size=args.image_size),
        class_names=class_names,
        # the members share their preprocessing (checked): the first's config names it
        reader=image_reader(first.config, args.bits_stored, args.preprocess, args.image_size),
        device=device,
        precision=members.precision,
        views=members.views,
        members=members,
        columns=members.columns(class_names),
        thresholds=ensemble_thresholds(members.loaded),
    )


def _exported(args: argparse.Namespace) -> PredictingModel:
    """fgssl-export's .onnx file with its own preprocessing, on the CPU; options that apply
    to checkpoints only are refused (:class:`ConfigError`), as is --preprocess naming
    another preprocessing than the model's."""
    if len(args.models) > 1:
        raise ConfigError(
            "an exported .onnx model predicts alone: an ensemble takes run directories or "
            ".ckpt files"
        )
    if args.calibrate:
        raise ConfigError(
            "--calibrate needs the run (its validation split): calibrate before export, "
            "or predict with the run directory"
        )
    if args.precision is not None:
        raise ConfigError(
            "--precision applies to a checkpoint: an exported .onnx model runs in the "
            "precision it was exported in"
        )
    model = ExportedModel.load(args.models[0])
    preprocess = same_preprocessing(model.preprocess, args.preprocess, str(model.meta_path))
    return PredictingModel(
        net=ExportedNet(model),
        transform=model.transform(),
        class_names=list(model.class_names),
        reader=ImageReader(args.bits_stored, preprocess),
        device=torch.device("cpu"),
        precision="32-true",
        views=resolve_tta(args, [None]),
    )
