"""Predicting the class of new images: inputs from a folder or a CSV
(:mod:`.predict_inputs`), unreadable images reported (the rest still predicted), an APTOS
Kaggle submission."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.dataloader import default_collate

from fgssl.atomic import write_csv_atomically
from fgssl.conf.resolvers import default_resize_size
from fgssl.data.aptos import APTOS2019DataModule
from fgssl.data.io import read_rgb
from fgssl.data.preprocess import ImageReader, Preprocessing, make_preprocessing, preprocessing_of
from fgssl.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TensorTransform,
    build_pipelines,
    default_pipelines,
    finalize,
)
from fgssl.data.worker_signals import SignalSafeDataLoader, WorkerInit
from fgssl.errors import ConfigError, FgsslError
from fgssl.evaluation.inference import predict_probabilities
from fgssl.evaluation.predict_inputs import (
    EXCLUDED_BY_DEFAULT,
    ID_COLUMNS,
    IMAGE_EXTENSIONS,
    NO_FILE,
    ImageInputs,
    images_from_csv,
    images_from_folder,
    read_inputs,
)
from fgssl.evaluation.thresholds import thresholded_columns
from fgssl.models.base import StagedNet
from fgssl.thresholds import FittedThresholds

__all__ = [
    "EXCLUDED_BY_DEFAULT",
    "ID_COLUMNS",
    "IMAGE_EXTENSIONS",
    "NO_FILE",
    "ImageInputs",
    "Predictions",
    "eval_transform",
    "image_reader",
    "images_from_csv",
    "images_from_folder",
    "predict_images",
    "read_inputs",
    "run_preprocessing",
    "same_preprocessing",
    "submitted_column",
    "write_kaggle_submission",
]


@dataclass
class Predictions:
    """One row per predicted image, and the images that could not be predicted."""

    table: pd.DataFrame
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(id, reason) of every image that was missing or could not be read."""


def eval_transform(config: DictConfig | None, *, image_size: int | None = None) -> TensorTransform:
    """The evaluation transform of a run: its config's ``data.transforms.eval`` pipeline (or
    resize + centre crop at ``data.image_size``), then its normalisation.

    Without a config, ``image_size`` gives resize (short side to 8/7 of it) + centre crop
    with ImageNet normalisation, the data modules' default.
    """
    data: Any = config.get("data") if config is not None else None
    if image_size is None and data is None:
        raise ConfigError(
            "no run config to take the image size and transforms from: pass the run "
            "directory, --config <run>/config.yaml, or --image-size"
        )
    size = int(image_size or data.image_size)
    resize = default_resize_size(size)
    if image_size is None and data.get("resize_size"):
        resize = int(data.resize_size)
    pipeline: Callable[..., Any] = default_pipelines(size, resize)["eval"]
    if image_size is None and data.get("transforms") and "eval" in data.transforms:
        pipeline = build_pipelines(data.transforms, "data.transforms")["eval"]
    mean = data.get("mean", IMAGENET_MEAN) if data is not None else IMAGENET_MEAN
    std = data.get("std", IMAGENET_STD) if data is not None else IMAGENET_STD
    return finalize({"eval": pipeline}, mean=list(mean), std=list(std))["eval"]


def image_reader(
    config: DictConfig | None,
    bits_stored: int | None = None,
    preprocess: str | None = None,
    image_size: int | None = None,
) -> ImageReader:
    """The image reader of a run, as its data module reads without a cache:
    :func:`fgssl.data.io.read_rgb` with its config's ``data.bits_stored`` (unless
    ``bits_stored`` is given), then :func:`run_preprocessing`."""
    data: Any = config.get("data") if config is not None else None
    if bits_stored is None and data is not None:
        bits_stored = data.get("bits_stored")
    return ImageReader(bits_stored, run_preprocessing(config, preprocess, image_size))


def run_preprocessing(
    config: DictConfig | None, given: str | None = None, image_size: int | None = None
) -> Preprocessing | None:
    """The preprocessing a run's network was trained with: its config's ``data.preprocess``
    (``given``, a name or ``"none"``, must then name the same, see :func:`same_preprocessing`);
    without a config, ``given`` at ``image_size`` (fgssl-predict's and fgssl-export's
    ``--preprocess`` and ``--image-size``). Raises :class:`ConfigError`."""
    data: Any = config.get("data") if config is not None else None
    if data is not None:
        return same_preprocessing(preprocessing_of(data), given, "its run config")
    name = None if given in (None, "none") else given
    if name is not None and image_size is None:
        raise ConfigError(f"--preprocess {name} without a run config needs --image-size")
    return make_preprocessing(name, image_size=image_size or 0)


def same_preprocessing(
    recorded: Preprocessing | None, given: str | None, source: str
) -> Preprocessing | None:
    """``recorded``, the preprocessing the model was trained with (as ``source`` says),
    unless ``given`` (a name, or ``"none"``) names another: :class:`ConfigError`, since
    the network would see other inputs than it learned from."""
    recorded_name = recorded.name if recorded is not None else "none"
    if given is not None and given != recorded_name:
        raise ConfigError(
            f"--preprocess {given}: the model was trained with the preprocessing "
            f"{recorded_name} ({source}); predicting with another would feed it other "
            "inputs than it learned from: leave --preprocess out"
        )
    return recorded


class _TolerantImages(Dataset[dict[str, Any]]):
    """Images with their position; an unreadable one yields its error instead of a tensor."""

    def __init__(
        self,
        inputs: ImageInputs,
        transform: TensorTransform,
        reader: Callable[[str | os.PathLike[str]], np.ndarray],
    ):
        self.inputs = inputs
        self.transform = transform
        self.reader = reader

    def __len__(self) -> int:
        return len(self.inputs.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.inputs.paths[index]
        if path is None:
            where = f" (expected {self.inputs.expected})" if self.inputs.expected else ""
            return {"index": index, "error": f"{NO_FILE}{where}"}
        try:
            image: np.ndarray = self.reader(path)
            return {"index": index, "image": self.transform(image)}
        except FgsslError as error:
            return {"index": index, "error": str(error)}
        except Exception as error:  # a decodable but malformed image failing in a transform
            return {"index": index, "error": f"cannot transform {str(path)!r}: {error}"}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    good = [item for item in items if "image" in item]
    return {
        "batch": default_collate(good) if good else None,
        "failures": [(item["index"], item["error"]) for item in items if "error" in item],
    }


def _good_batches(
    loader: DataLoader, failures: list[tuple[int, str]]
) -> Iterator[Mapping[str, Any]]:
    for batch in loader:
        failures.extend(batch["failures"])
        if batch["batch"] is not None:
            yield batch["batch"]


def predict_images(
    net: StagedNet | Sequence[StagedNet],
    inputs: ImageInputs,
    transform: TensorTransform,
    class_names: Sequence[str],
    *,
    device: torch.device | str = "cpu",
    tta: Any = None,
    batch_size: int = 32,
    num_workers: int = 0,
    reader: Callable[[str | os.PathLike[str]], np.ndarray] = read_rgb,
    precision: str = "32-true",
    columns: Sequence[Sequence[int]] | None = None,
    thresholds: FittedThresholds | None = None,
) -> Predictions:
    """Predict every image that can be read (by ``reader``: the run's
    :func:`image_reader`) in ``precision``, averaged over the views of ``tta`` and, for
    several networks (an ensemble; ``columns``: each one's column of each class), over the
    networks (see :func:`~fgssl.evaluation.inference.predict_probabilities`). The table has
    one row per predicted image: ``id``, ``path``, ``prediction`` (class index), ``class``
    (its name) and ``prob_<class>`` for every class (the combined prediction's
    probabilities, summing to one); with ordinal ``thresholds`` (a single checkpoint's;
    an ensemble's members' are not applied, :func:`~.ensemble.ensemble_thresholds`), also
    ``expected_grade``, ``prediction_thresholded`` and ``class_thresholded``
    (:func:`~fgssl.evaluation.thresholds.thresholded_columns`)."""
    loader = SignalSafeDataLoader(
        _TolerantImages(inputs, transform, reader),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
        worker_init_fn=WorkerInit() if num_workers else None,
    )
    failed: list[tuple[int, str]] = []
    batches = _good_batches(loader, failed)
    outputs = predict_probabilities(
        net, batches, device=device, tta=tta, precision=precision, columns=columns
    )
    failures = [(inputs.ids[i], reason) for i, reason in sorted(failed)]
    if not outputs:
        return Predictions(_empty_table(class_names), failures)
    order = outputs["index"].tolist()
    probabilities = outputs["combined"]
    predicted = probabilities.argmax(dim=1).tolist()
    table = pd.DataFrame(
        {
            "id": [inputs.ids[i] for i in order],
            "path": [str(inputs.paths[i]) for i in order],
            "prediction": predicted,
            "class": [class_names[c] for c in predicted],
            **{f"prob_{name}": probabilities[:, c].tolist() for c, name in enumerate(class_names)},
            **thresholded_columns(probabilities.double().numpy(), thresholds, class_names),
        }
    )
    return Predictions(table, failures)


def _empty_table(class_names: Sequence[str]) -> pd.DataFrame:
    columns = ["id", "path", "prediction", "class", *(f"prob_{n}" for n in class_names)]
    return pd.DataFrame(columns=columns)


def submitted_column(predictions: pd.DataFrame) -> str:
    """The column of ``predictions`` a Kaggle submission takes its grades from."""
    return "prediction_thresholded" if "prediction_thresholded" in predictions else "prediction"


def write_kaggle_submission(
    predictions: pd.DataFrame, class_names: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """The APTOS 2019 submission file: header ``id_code,diagnosis``, one row per image; the
    diagnosis is ``prediction_thresholded`` where the table has it (the checkpoint's
    thresholds fitted for QWK, Kaggle's metric), else ``prediction`` (the argmax)."""
    if list(class_names) != list(APTOS2019DataModule.class_names):
        raise ConfigError(
            f"a Kaggle submission is for APTOS 2019 grading: the checkpoint's classes "
            f"{list(class_names)} are not APTOS's {list(APTOS2019DataModule.class_names)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grades = predictions[submitted_column(predictions)].astype(int)
    submission = pd.DataFrame({"id_code": predictions["id"], "diagnosis": grades})
    return write_csv_atomically(path, submission)
