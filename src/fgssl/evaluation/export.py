"""Exporting a trained network for use without fgssl: ONNX and TorchScript files whose one
output is the combined prediction's class probabilities, with the preprocessing beside them.

The exported function maps ``image``, a float32 (B, 3, S, S) batch of preprocessed RGB
images (any B), to ``probabilities``, (B, C) float32: the softmax of the sum of all heads'
logits (fgssl's combined prediction, the one fgssl-predict writes). Each model file carries
its class names, one per output column, as a JSON list under :data:`CLASS_NAMES_KEY` (ONNX:
the model's metadata; TorchScript: an extra file). The preprocessing JSON
(``<name>.preprocessing.json``) gives the image size, the resize size, mean and std, the
class names, the per-image preprocessing (``preprocess``: ``data.preprocess`` with its
parameters, or null; also in each model file under :data:`PREPROCESS_KEY`; it is not in the
graph), the steps in words, and the exact evaluation pipeline as an albumentations dict
(``albumentations.from_dict`` rebuilds it). Running the exported files:
:mod:`fgssl.evaluation.exported`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fgssl.data.preprocess import Preprocessing
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.export_inputs import model_metadata, preprocessing_of_run, write_preprocessing
from fgssl.evaluation.exported import (
    CLASS_NAMES_KEY,
    INPUT_NAME,
    OUTPUT_NAME,
    PREPROCESS_KEY,
    ExportedModel,
    ExportedNet,
    preprocessing_path,
)
from fgssl.models.base import StagedNet

__all__ = [
    "CLASS_NAMES_KEY",
    "EXPORT_FORMATS",
    "PREPROCESS_KEY",
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
    net: StagedNet,
    path: str | os.PathLike[str],
    image_size: int,
    class_names: Sequence[str],
    preprocess: Preprocessing | None = None,
) -> Path:
    """Write ``net``'s combined probabilities as ONNX (opset 18, dynamic batch size) with
    torch.onnx's exporter (needs the ``onnx`` and ``onnxscript`` packages: the ``export``
    extra), ``class_names`` (one per output column) in its metadata under
    :data:`CLASS_NAMES_KEY` as a JSON list, ``preprocess`` under :data:`PREPROCESS_KEY`.
    Raises ConfigError naming the extra when they are missing."""
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
    program.model.metadata_props.update(model_metadata(class_names, preprocess))
    program.save(str(path))
    return path


def export_torchscript(
    net: StagedNet,
    path: str | os.PathLike[str],
    image_size: int,
    class_names: Sequence[str],
    preprocess: Preprocessing | None = None,
) -> Path:
    """Write ``net``'s combined probabilities as a traced TorchScript module
    (``torch.jit.load`` runs it without fgssl), ``class_names`` (one per output column) as a
    JSON list in its extra file :data:`CLASS_NAMES_KEY` (read back with
    ``torch.jit.load(path, _extra_files={CLASS_NAMES_KEY: ""})``), ``preprocess`` in
    :data:`PREPROCESS_KEY`."""
    model = ProbabilityNet(net).eval().cpu()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it fixes
        traced = torch.jit.trace(model, _example(image_size))
    traced.save(str(path), _extra_files=model_metadata(class_names, preprocess))
    return path


def export_run(
    net: StagedNet,
    config: Any,
    class_names: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = EXPORT_FORMATS,
    image_size: int | None = None,
    preprocess: str | None = None,
    source: str = "",
    tolerance: float = 1e-4,
) -> dict[str, Any]:
    """Export ``net`` in each of ``formats`` into ``out_dir`` (``model.onnx``, ``model.pt``,
    ``model.preprocessing.json``), then run each file on 4 random images (seed 0) next to
    PyTorch: returns ``{"files": {format: path}, "max_abs_difference": {format: float}}``.

    ``config`` is the run's config (its ``data`` gives the preprocessing), or None with
    ``image_size`` and ``preprocess`` (a ``data.preprocess`` name; with a config it must be
    the run's); ``class_names`` name the output columns, in order (written into each
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
    per_image, (size, resize, mean, std, pipeline) = preprocessing_of_run(
        config, image_size, preprocess
    )
    out_dir, net = Path(out_dir), net.eval().cpu()
    files: dict[str, Path] = {}
    if "onnx" in formats:
        files["onnx"] = export_onnx(net, out_dir / "model.onnx", size, class_names, per_image)
    if "torchscript" in formats:
        path = out_dir / "model.pt"
        files["torchscript"] = export_torchscript(net, path, size, class_names, per_image)
    write_preprocessing(
        preprocessing_path(out_dir / "model.onnx"),
        pipeline=pipeline,
        image_size=size,
        resize_size=resize,
        mean=mean,
        std=std,
        class_names=class_names,
        source=source,
        preprocess=per_image,
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
