"""What an exported model says about its inputs: the preprocessing JSON beside the model
files (:func:`write_preprocessing`), the metadata each model file carries (class names and
per-image preprocessing, :func:`model_metadata`), and what both are made from, a run's
preprocessing and evaluation pipeline (:func:`preprocessing_of_run`). The format:
:mod:`fgssl.evaluation.export`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgssl._version import __version__
from fgssl.atomic import write_text_atomically
from fgssl.data.preprocess import Preprocessing
from fgssl.evaluation.exported import CLASS_NAMES_KEY, INPUT_NAME, OUTPUT_NAME, PREPROCESS_KEY

__all__ = ["model_metadata", "preprocessing_of_run", "write_preprocessing"]


def model_metadata(class_names: Sequence[str], preprocess: Preprocessing | None) -> dict[str, str]:
    """What each model file carries itself: its class names and per-image preprocessing."""
    return {
        CLASS_NAMES_KEY: json.dumps(list(class_names)),
        PREPROCESS_KEY: json.dumps(preprocess.to_dict() if preprocess is not None else None),
    }


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
    preprocess: Preprocessing | None = None,
) -> Path:
    """The preprocessing JSON of a model (:mod:`fgssl.evaluation.export`); ``pipeline`` is
    the finalised albumentations evaluation pipeline (an ``albumentations.Compose``),
    ``preprocess`` the per-image preprocessing applied before it (None: none)."""
    import albumentations as A

    first = ["read the image as 8-bit RGB (H, W, 3)"]
    if preprocess is not None:  # not in the graph: see fgssl.evaluation.exported
        first.append(f"'preprocess', on the full image: {preprocess.describe()}")
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
        "preprocess": preprocess.to_dict() if preprocess is not None else None,
        "steps": [
            *first,
            "the run's evaluation pipeline (by default: short side resized to resize_size, "
            "bilinear; centre crop to image_size x image_size); exactly: 'albumentations'",
            "divide by max_pixel_value, subtract mean and divide by std, per channel",
            "to float32 (3, image_size, image_size); stack images into a batch",
        ],
        "albumentations": A.to_dict(pipeline),
    }
    return write_text_atomically(Path(path), json.dumps(tree, indent=2) + "\n")


def preprocessing_of_run(
    config: Any, image_size: int | None, preprocess: str | None
) -> tuple[Preprocessing | None, tuple[int, int, list, list, Any]]:
    """The per-image preprocessing, and (image size, resize size, mean, std, finalised
    pipeline) of a run, as :func:`fgssl.evaluation.predict.run_preprocessing` and
    :func:`~fgssl.evaluation.predict.eval_transform` make them."""
    from fgssl.conf.resolvers import default_resize_size
    from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from fgssl.evaluation.predict import eval_transform, run_preprocessing

    per_image = run_preprocessing(config, preprocess, image_size)
    pipeline = eval_transform(config, image_size=image_size).pipeline  # type: ignore[attr-defined]
    data: Any = config.get("data") if config is not None and image_size is None else None
    if data is None:  # no config: eval_transform refused a missing image_size already
        size = int(image_size or 0)
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        return per_image, (size, default_resize_size(size), mean, std, pipeline)
    size = int(data.image_size)
    resize = int(data.get("resize_size") or default_resize_size(size))
    mean, std = list(data.get("mean", IMAGENET_MEAN)), list(data.get("std", IMAGENET_STD))
    return per_image, (size, resize, mean, std, pipeline)
