"""fgssl from Python (a notebook, another program), each step one call returning plain
objects, as timm's ``create_model`` and lightly-train's ``pretrain``::

    import fgssl

    run = fgssl.train("demo", ["finetune_epochs=2"])  # TrainedRun: run_dir, results
    model = fgssl.load(run)          # Model: class_names, transform, predict()
    model.predict(["a.png", "b.png"])  # DataFrame: one row per image, one column per class
    fgssl.predict(run, "new_photos/")  # fgssl-predict's table, as a DataFrame

:func:`train` is ``fgssl-train`` (the same configs, overrides and run directory, without a
sweep); :func:`load` and :func:`predict` are ``fgssl-predict``'s loading and prediction,
with its rules: the class names the checkpoint records, a pretrain-phase checkpoint
refused, the run's own image size, transforms and precision.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, open_dict
from PIL import Image

from fgssl.cli.common import hydra_arguments, resolve_device, resolve_precision
from fgssl.cli.train import prepared_config
from fgssl.data.transforms import TensorTransform
from fgssl.errors import ConfigError, ImageReadError
from fgssl.evaluation.inference import predict_probabilities
from fgssl.evaluation.predict import eval_transform, image_reader, predict_images, read_inputs
from fgssl.models.base import StagedNet
from fgssl.overrides import override_key
from fgssl.run.loading import load_run
from fgssl.run.pipeline import run_training
from fgssl.thresholds import FittedThresholds

__all__ = ["ImageLike", "Model", "TrainedRun", "load", "predict", "train"]

ImageLike = str | os.PathLike[str] | np.ndarray | Image.Image
"""An image file, an (H, W, 3) uint8 RGB array, or a PIL image."""


@dataclass(frozen=True)
class TrainedRun(os.PathLike[str]):
    """A finished run: its folder (the object is a path to it: ``fgssl.load(run)``) and its
    ``results.json`` (test metrics of the best checkpoint, timings, ...)."""

    run_dir: Path
    results: dict[str, Any]

    def __fspath__(self) -> str:
        return os.fspath(self.run_dir)


def train(
    experiment: str | None = None,
    overrides: Sequence[str] = (),
    *,
    run_dir: str | os.PathLike[str] | None = None,
) -> TrainedRun:
    """Train as ``fgssl-train experiment=<experiment> <overrides>`` does: pretrain ->
    finetune -> test, everything written to ``run_dir`` (default: fgssl-train's
    ``outputs/<name>/<date>_<time>`` under the working directory; a folder that holds a run
    is refused). ``overrides`` are Hydra's (``["seed=1", "data.root=/data/aptos"]``), and
    may continue a run (``resume=<run dir>``).

    Raises :class:`ConfigError` for a config Hydra cannot compose (an unknown experiment or
    key, a sweep), and fgssl's errors of bad settings or data, before training.
    """
    arguments = [*([f"experiment={experiment}"] if experiment else []), *overrides]
    hydra_config = HydraConfig.instance()
    outer = hydra_config.cfg
    cfg = _compose_train(arguments)
    hydra_config.set_config(cfg)  # the config's ${hydra:...} values, read while it runs
    try:
        folder = Path(run_dir if run_dir is not None else str(cfg.hydra.run.dir))
        if run_dir is not None and any(override_key(o) == "hydra.run.dir" for o in overrides):
            raise ConfigError(f"run_dir={str(run_dir)!r} and hydra.run.dir: give one of them")
        if cfg.resume and run_dir is not None and Path(cfg.resume).resolve() != folder.resolve():
            raise ConfigError(
                f"run_dir={str(run_dir)!r} with resume={cfg.resume}: a resumed run continues "
                "in its own folder; leave run_dir out"
            )
        choices = dict(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg["hydra"]
        cfg = prepared_config(
            cfg, arguments, output_dir=folder, choices=choices, started_in=os.getcwd()
        )
        results = run_training(cfg, folder)
    finally:
        hydra_config.cfg = outer
    return TrainedRun(folder.expanduser().resolve(), results)


def _compose_train(arguments: list[str]) -> DictConfig:
    """fgssl-train's config (with its ``hydra`` node) for ``arguments``. Hydra's global
    state of the caller's own application, if any, is put back afterwards."""
    global_hydra = GlobalHydra.instance()
    outer = global_hydra.hydra
    global_hydra.clear()
    try:
        with initialize_config_module("fgssl.conf", version_base="1.3"):
            return compose("train", overrides=hydra_arguments(arguments), return_hydra_config=True)
    except HydraException as error:
        raise ConfigError(f"cannot compose the config of {arguments}: {error}") from error
    finally:
        GlobalHydra.instance().hydra = outer


@dataclass
class Model:
    """A trained network with what it takes to predict: the run's preprocessing and the
    names of its output columns. Made by :func:`load`."""

    net: StagedNet
    class_names: list[str]
    """The class of each output column, as the checkpoint records them."""
    transform: TensorTransform
    """The run's evaluation preprocessing: (H, W, 3) uint8 RGB array -> (3, S, S) float
    tensor (resize, centre crop, normalisation)."""
    reader: Callable[[str | os.PathLike[str]], np.ndarray]
    """The run's image decoder: a file -> (H, W, 3) uint8 RGB array."""
    device: torch.device
    precision: str
    """The precision the run tested in (``trainer.precision``), which predictions use."""
    checkpoint: Path
    config: DictConfig | None
    """The run's ``config.yaml`` (None for a checkpoint without its run directory)."""
    thresholds: FittedThresholds | None = None
    """A graded run's thresholds fitted for kappa (docs/metrics.md, "Thresholds fitted for kappa"):
    :func:`predict` adds the thresholded grade to its table."""

    def predict(
        self, images: ImageLike | Sequence[ImageLike], *, tta: bool = False, batch_size: int = 32
    ) -> pd.DataFrame:
        """Class probabilities of the combined prediction: one row per image (indexed by
        its path, or its position for an array or PIL image), one column per class name,
        each row summing to one. ``tta``: averaged over the four flips.

        Raises :class:`ImageReadError` naming a file that cannot be read, ``ValueError``
        for an array that is not (H, W, 3) uint8 and for a folder (:func:`predict` takes
        folders)."""
        if isinstance(images, str | os.PathLike | np.ndarray | Image.Image):
            items: list[ImageLike] = [images]
        else:
            items = list(images)
        index = [
            os.fspath(item) if isinstance(item, str | os.PathLike) else position
            for position, item in enumerate(items)
        ]
        outputs = predict_probabilities(
            self.net,
            self._batches(items, batch_size),
            device=self.device,
            tta=tta,
            precision=self.precision,
        )
        classes = len(self.class_names)
        probabilities = outputs["combined"].numpy() if outputs else np.zeros((0, classes))
        return pd.DataFrame(probabilities, index=index, columns=self.class_names)

    def _batches(self, items: list[ImageLike], size: int) -> Iterator[dict[str, torch.Tensor]]:
        for start in range(0, len(items), size):
            arrays = [self._array(item) for item in items[start : start + size]]
            yield {"image": torch.stack([self.transform(array) for array in arrays])}

    def _array(self, item: ImageLike) -> np.ndarray:
        """``item`` as an (H, W, 3) uint8 RGB array."""
        if isinstance(item, Image.Image):
            return np.asarray(item.convert("RGB"))
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim != 3 or item.shape[-1] != 3:
                raise ValueError(
                    f"expected an (H, W, 3) uint8 RGB image array, got shape "
                    f"{item.shape} of {item.dtype}"
                )
            return item
        if Path(item).is_dir():
            raise ValueError(
                f"{os.fspath(item)!r} is a folder: fgssl.predict(model, folder) predicts "
                "the images of a folder"
            )
        return self.reader(item)


def load(
    run: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    image_size: int | None = None,
    trusted: bool = False,
) -> Model:
    """The finetuned network of ``run`` (a run directory, its best checkpoint, or a
    :class:`TrainedRun`; or a finetune ``.ckpt``) with the run's preprocessing and class
    names. ``device``: default CUDA when available, else the CPU. ``image_size``: for a
    checkpoint without its run's config (resize to 8/7 of it, centre crop). ``trusted``:
    allow a checkpoint that needs full unpickling.

    Raises :class:`CheckpointError` for a missing or unreadable checkpoint and for a
    pretrain-phase checkpoint (its heads never saw a label), :class:`ConfigError` without
    a config or ``image_size``."""
    loaded = load_run(run, trusted=trusted)
    loaded.require_classifier()
    return Model(
        net=loaded.module.net,
        class_names=loaded.class_names,
        transform=eval_transform(loaded.config, image_size=image_size),
        reader=image_reader(loaded.config, image_size=image_size),
        device=resolve_device(None if device is None else str(device)),
        precision=resolve_precision(None, loaded.config, "fgssl.load"),
        checkpoint=loaded.checkpoint,
        config=loaded.config,
        thresholds=loaded.module.ordinal_thresholds,
    )


def predict(
    run: str | os.PathLike[str] | Model,
    images: str | os.PathLike[str],
    *,
    image_dir: str | os.PathLike[str] | None = None,
    tta: bool = False,
    batch_size: int = 32,
    skip_unreadable: bool = False,
) -> pd.DataFrame:
    """The table ``fgssl-predict`` writes for the images of ``images`` (a folder, or a CSV
    of paths or ids naming files in ``image_dir``): one row per image, ``id``, ``path``,
    ``prediction`` (class index), ``class`` (its name) and ``prob_<class>`` per class.
    ``run``: as :func:`load` takes it, or a loaded :class:`Model`.

    An image that cannot be read raises :class:`ImageReadError` (naming how many, and the
    first); with ``skip_unreadable`` the others are predicted, a warning counts the
    unread ones and ``table.attrs["failures"]`` lists them as (id, reason)."""
    inputs = read_inputs(images, image_dir=image_dir)  # a bad listing before the model loads
    model = run if isinstance(run, Model) else load(run)
    predictions = predict_images(
        model.net,
        inputs,
        model.transform,
        model.class_names,
        device=model.device,
        tta=tta,
        batch_size=batch_size,
        reader=model.reader,
        precision=model.precision,
        thresholds=model.thresholds,
    )
    failures = predictions.failures
    if failures:
        unread = f"{len(failures)} of {len(inputs.ids)} images could not be read"
        first = f"e.g. {failures[0][0]!r}: {failures[0][1]}"
        if not skip_unreadable:
            raise ImageReadError(f"{unread} ({first}); skip_unreadable=True predicts the rest")
        warnings.warn(f"{unread}, listed in the table's attrs['failures'] ({first})", stacklevel=2)
    table = predictions.table
    table.attrs["failures"] = list(failures)
    return table
