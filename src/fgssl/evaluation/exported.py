"""Running a model that fgssl-export wrote: the ONNX file with onnxruntime and its
preprocessing JSON beside it (:class:`ExportedModel`), and as a network fgssl's inference
takes (:class:`ExportedNet`). The format of both files: :mod:`fgssl.evaluation.export`.

The per-image preprocessing (``data.preprocess``: a field-of-view crop, Ben Graham's colour
subtraction, Shades of Gray) is not in the ONNX graph: it works on the full decoded image,
before the resize, and the crop's size depends on the image. The JSON's ``preprocess`` and
the model's metadata under :data:`PREPROCESS_KEY` name it; fgssl-predict applies it
(:func:`fgssl.data.preprocess.Preprocessing.from_dict` rebuilds it)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fgssl.data.preprocess import Preprocessing
from fgssl.errors import CheckpointError, ConfigError
from fgssl.models.base import NetOutput

__all__ = [
    "CLASS_NAMES_KEY",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PREPROCESS_KEY",
    "ExportedModel",
    "ExportedNet",
    "preprocessing_path",
]

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
CLASS_NAMES_KEY = "fgssl.class_names"
"""Where an exported model file keeps its class names (a JSON list, one per output column):
a key of the ONNX model's metadata, the name of a TorchScript extra file."""
PREPROCESS_KEY = "fgssl.preprocess"
"""Where an exported model file names its per-image preprocessing (JSON: an object of
:meth:`~fgssl.data.preprocess.Preprocessing.to_dict`, or null), as :data:`CLASS_NAMES_KEY`."""


def preprocessing_path(model_path: str | os.PathLike[str]) -> Path:
    """``<folder>/<stem>.preprocessing.json`` beside an exported model."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.preprocessing.json")


@dataclass
class ExportedModel:
    """An exported ONNX model run with onnxruntime, with its preprocessing."""

    path: Path
    preprocessing: dict[str, Any]
    session: Any

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExportedModel:
        """Open ``path`` (.onnx) and its preprocessing JSON. Raises CheckpointError when
        either is missing or unreadable, or when the class names in the model's metadata
        or the preprocessing in the model's metadata are not those of the JSON (a model and
        a JSON of two exports); ConfigError without onnxruntime, or for a preprocessing this
        fgssl does not compute. A model without class names or preprocessing in its metadata
        (exported before they were written there) takes the JSON's; a JSON without
        ``preprocess`` (written before it existed) means none."""
        path = Path(path).expanduser()
        meta = preprocessing_path(path)
        for needed in (path, meta):
            if not needed.is_file():
                raise CheckpointError(
                    f"{str(needed)!r} does not exist: fgssl-export writes the model and "
                    f"{meta.name} side by side"
                )
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                "running an ONNX model needs onnxruntime: pip install 'fgssl[export]'"
            ) from None
        try:
            preprocessing = json.loads(meta.read_text())
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime and json fail in many ways on foreign files
            raise CheckpointError(
                f"cannot load the exported model {str(path)!r}: {error}"
            ) from None
        model = cls(path, preprocessing, session)
        model._check_class_names(meta)
        model._check_preprocess(meta)
        return model

    @property
    def meta_path(self) -> Path:
        """The preprocessing JSON beside the model."""
        return preprocessing_path(self.path)

    @property
    def preprocess(self) -> Preprocessing | None:
        """The per-image preprocessing the model was trained with (None: none)."""
        return Preprocessing.from_dict(
            self.preprocessing.get("preprocess"), source=repr(str(self.meta_path))
        )

    @property
    def class_names(self) -> list[str]:
        """The names of the output columns, in order."""
        return list(self.preprocessing["class_names"])

    def _check_class_names(self, meta: Path) -> None:
        recorded = self.session.get_modelmeta().custom_metadata_map.get(CLASS_NAMES_KEY)
        if recorded is None:
            return
        if json.loads(recorded) != self.class_names:
            raise CheckpointError(
                f"the class names of {str(self.path)!r} ({json.loads(recorded)}) are not "
                f"those of {str(meta)!r} ({self.class_names}): the two files come from "
                "different exports; export the model again"
            )

    def _check_preprocess(self, meta: Path) -> None:
        recorded = self.session.get_modelmeta().custom_metadata_map.get(PREPROCESS_KEY)
        written = self.preprocessing.get("preprocess")
        if recorded is not None and json.loads(recorded) != written:
            raise CheckpointError(
                f"the preprocessing of {str(self.path)!r} ({json.loads(recorded)}) is not "
                f"that of {str(meta)!r} ({written}): the two files come from different "
                "exports; export the model again"
            )
        Preprocessing.from_dict(written, source=repr(str(meta)))  # refuses an unknown one now

    def transform(self) -> Any:
        """The preprocessing as a callable (H, W, 3) uint8 RGB array -> (3, S, S) tensor."""
        import albumentations as A

        pipeline = A.from_dict(self.preprocessing["albumentations"])
        return lambda image: pipeline(image=image)["image"]

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """(B, C) probabilities of a (B, 3, S, S) batch of preprocessed images."""
        batch = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
        output: np.ndarray = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        return output


class ExportedNet(nn.Module):
    """An :class:`ExportedModel` where fgssl's inference expects a network: its output's
    logits are ``log p`` of the exported probabilities (softmax gives p back), the same for
    the combined prediction and the concat head (the export holds only the former)."""

    def __init__(self, model: ExportedModel):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> NetOutput:
        probabilities = torch.from_numpy(self.model(image.detach().cpu().numpy()))
        logits = probabilities.double().clamp_min(1e-300).log().to(image.device)
        return NetOutput(logits=[logits], embeddings=[])
