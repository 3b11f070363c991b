"""Exporting a trained network for use without fgssl: ONNX and TorchScript files whose one
output is the combined prediction's class probabilities, with the preprocessing beside them.

The exported function maps ``image``, a float32 (B, 3, S, S) batch of preprocessed RGB
images (any B), to ``probabilities``, (B, C) float32: the softmax of the sum of all heads'
logits (fgssl's combined prediction, the one fgssl-predict writes). Each model file carries
its class names, one per output column, as a JSON list under :data:`CLASS_NAMES_KEY` (ONNX:
the model's metadata; TorchScript: an extra file). The preprocessing JSON
(``<name>.preprocessing.json``) gives the image size, the resize size, mean and std, the
class names, the steps in words, and the exact evaluation pipeline as an albumentations
dict (``albumentations.from_dict`` rebuilds it). Running the exported files:
:mod:`fgssl.evaluation.exported`.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fgssl._version import __version__
from fgssl.atomic import write_text_atomically
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.exported import (
    CLASS_NAMES_KEY,
    INPUT_NAME,
    OUTPUT_NAME,
    ExportedModel,
    ExportedNet,
    preprocessing_path,
)
from fgssl.models.base import StagedNet

__all__ = [
    "CLASS_NAMES_KEY",
    "EXPORT_FORMATS",
    "ExportedModel",
    "ExportedNet",
    "ProbabilityNet",
    "export_onnx",
    "export_run",
    "export_torchscript",
    "preprocessing_path",
    "write_preprocessing",
]

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 18


class ProbabilityNet(nn.Module):
    """``net`` reduced to its combined prediction's (B, C) class probabilities."""

    def __init__(self, net: StagedNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).combined.float().softmax(dim=1)


def _example(image_size: int) -> torch.Tensor:
    return torch.zeros(2, 3, image_size, image_size)


def export_onnx(
    net: StagedNet, path: str | os.PathLike[str], image_size: int, class_names: Sequence[str]
) -> Path:
    """Write ``net``'s combined probabilities as ONNX (opset 18, dynamic batch size) with
    torch.onnx's exporter (needs the ``onnx`` and ``onnxscript`` packages: the ``export``
    extra), ``class_names`` (one per output column) in its metadata under
    :data:`CLASS_NAMES_KEY` as a JSON list. Raises ConfigError naming the extra when they
    are missing."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"ONNX export needs the {error.name!r} package: pip install 'fgssl[export]'"
        ) from None
    model = ProbabilityNet(net).eval().cpu()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # exporter chatter about its own internals
        program = torch.onnx.export(
            model,
            (_example(image_size),),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"image": {0: torch.export.Dim("batch")}},
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
    assert program is not None
    program.model.metadata_props[CLASS_NAMES_KEY] = json.dumps(list(class_names))
    program.save(str(path))
    return path


def export_torchscript(
    net: StagedNet, path: str | os.PathLike[str], image_size: int, class_names: Sequence[str]
) -> Path:
    """Write ``net``'s combined probabilities as a traced TorchScript module
    (``torch.jit.load`` runs it without fgssl), ``class_names`` (one per output column) as a
    JSON list in its extra file :data:`CLASS_NAMES_KEY` (read back with
    ``torch.jit.load(path, _extra_files={CLASS_NAMES_KEY: ""})``)."""
    model = ProbabilityNet(net).eval().cpu()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it fixes
        traced = torch.jit.trace(model, _example(image_size))
    traced.save(str(path), _extra_files={CLASS_NAMES_KEY: json.dumps(list(class_names))})
    return path


def write_preprocessing(
    path: str | os.PathLike[str],
    *,
    pipeline: Any,
    image_size: int,
    resize_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    class_names: Sequence[str],
    source: str,
) -> Path:
    """The preprocessing JSON (module docstring) of a model; ``pipeline`` is the finalised
    albumentations evaluation pipeline (an ``albumentations.Compose``)."""
    import albumentations as A

    tree = {
        "fgssl_version": __version__,
        "source": source,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, image_size, image_size],
            "dtype": "float32",
            "channels": "RGB",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(class_names)],
            "meaning": "class probabilities of the combined prediction (softmax of the sum of "
            "all heads' logits); the predicted class is the argmax",
        },
        "class_names": list(class_names),
        "image_size": image_size,
        "resize_size": resize_size,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "max_pixel_value": 255.0,
        "steps": [
            "read the image as 8-bit RGB (H, W, 3)",
            "the run's evaluation pipeline (by default: short side resized to resize_size, "
            "bilinear; centre crop to image_size x image_size); exactly: 'albumentations'",
            "divide by max_pixel_value, subtract mean and divide by std, per channel",
            "to float32 (3, image_size, image_size); stack images into a batch",
        ],
        "albumentations": A.to_dict(pipeline),
    }
    return write_text_atomically(Path(path), json.dumps(tree, indent=2) + "\n")


def _preprocessing_of(config: Any, image_size: int | None) -> tuple[int, int, list, list, Any]:
    """(image size, resize size, mean, std, finalised pipeline) of a run, as
    :func:`fgssl.evaluation.predict.eval_transform` builds them."""
    from fgssl.conf.resolvers import default_resize_size
    from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from fgssl.evaluation.predict import eval_transform

    pipeline = eval_transform(config, image_size=image_size).pipeline  # type: ignore[attr-defined]
    data: Any = config.get("data") if config is not None and image_size is None else None
    if data is None:  # no config: eval_transform refused a missing image_size already
        size = int(image_size or 0)
        return size, default_resize_size(size), list(IMAGENET_MEAN), list(IMAGENET_STD), pipeline
    size = int(data.image_size)
    resize = int(data.get("resize_size") or default_resize_size(size))
    mean, std = list(data.get("mean", IMAGENET_MEAN)), list(data.get("std", IMAGENET_STD))
    return size, resize, mean, std, pipeline


def export_run(
    net: StagedNet,
    config: Any,
    class_names: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = EXPORT_FORMATS,
    image_size: int | None = None,
    source: str = "",
    tolerance: float = 1e-4,
) -> dict[str, Any]:
    """Export ``net`` in each of ``formats`` into ``out_dir`` (``model.onnx``, ``model.pt``,
    ``model.preprocessing.json``), then run each file on 4 random images (seed 0) next to
    PyTorch: returns ``{"files": {format: path}, "max_abs_difference": {format: float}}``.

    ``config`` is the run's config (its ``data`` gives the preprocessing), or None with
    ``image_size``; ``class_names`` name the output columns, in order (written into each
    model file and the preprocessing JSON). Raises ConfigError for an unknown format,
    missing packages or a number of class names other than the network's classes, and
    CheckpointError when an exported model's probabilities differ from PyTorch's by more
    than ``tolerance``.
    """
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown or not formats:
        raise ConfigError(f"export formats {unknown or []}: choose from {list(EXPORT_FORMATS)}")
    if len(class_names) != net.num_classes:
        raise ConfigError(
            f"{len(class_names)} class names {list(class_names)} for a network of "
            f"{net.num_classes} output columns: give one name per class, in output order"
        )
    size, resize, mean, std, pipeline = _preprocessing_of(config, image_size)
    out_dir = Path(out_dir)
    net = net.eval().cpu()
    files: dict[str, Path] = {}
    if "onnx" in formats:
        files["onnx"] = export_onnx(net, out_dir / "model.onnx", size, class_names)
    if "torchscript" in formats:
        files["torchscript"] = export_torchscript(net, out_dir / "model.pt", size, class_names)
    write_preprocessing(
        preprocessing_path(out_dir / "model.onnx"),
        pipeline=pipeline,
        image_size=size,
        resize_size=resize,
        mean=mean,
        std=std,
        class_names=class_names,
        source=source,
    )
    differences = _check_against_pytorch(net, files, size, tolerance)
    return {"files": files, "max_abs_difference": differences}


def _check_against_pytorch(
    net: StagedNet, files: dict[str, Path], size: int, tolerance: float
) -> dict[str, float]:
    """The largest difference of each exported file's probabilities to ``net``'s on 4 random
    (seed 0) size x size images; CheckpointError above ``tolerance``."""
    images = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ProbabilityNet(net)(images).numpy()
    differences = {}
    for name, path in files.items():
        if name == "onnx":
            got = ExportedModel.load(path)(images)
        else:
            with torch.no_grad():
                got = torch.jit.load(str(path))(images).numpy()
        differences[name] = float(np.abs(got - expected).max())
        if not differences[name] <= tolerance:
            raise CheckpointError(
                f"the exported {name} model {str(path)!r} gives probabilities that differ from "
                f"PyTorch's by {differences[name]:.3g} (more than {tolerance:g})"
            )
    return differences
