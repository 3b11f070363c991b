"""Self-supervised evaluation: linear probe and k-NN on the frozen features of a network."""

from __future__ import annotations

import time
from typing import Any

import torch

from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.unlabelled import UNLABELLED_SPLIT
from fgssl.errors import ConfigError
from fgssl.evaluation.features import extract_features
from fgssl.evaluation.knn import knn_predict
from fgssl.evaluation.probe import linear_probe_predict
from fgssl.evaluation.scoring import score_heads
from fgssl.models.base import StagedNet

__all__ = ["PROTOCOLS", "evaluate_frozen"]

PROTOCOLS = ("linear_probe", "knn")


def evaluate_frozen(
    net: StagedNet,
    datamodule: ImageClassificationDataModule,
    *,
    split: str = "test",
    protocols: tuple[str, ...] = PROTOCOLS,
    device: torch.device | str = "cpu",
    knn_k: int = 20,
    knn_temperature: float = 0.07,
    probe_c: float = 1.0,
    features: str = "backbone",
) -> dict[str, Any]:
    """Fit each protocol on the frozen features of the training split, score it on ``split``.

    Both splits go through the evaluation transforms (no augmentation). ``features`` picks
    the representation: see :data:`~fgssl.evaluation.features.FEATURES`. Returns the metrics of each
    protocol (same names and rules as the finetuned model's, NaN where undefined) with the
    facts of the evaluation.
    """
    started = time.perf_counter()
    _check_request(datamodule, split, protocols)

    def extract(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        loader = datamodule.eval_dataloader(name)
        return extract_features(net, loader, device=device, features=features)

    train_x, train_y = extract("train")
    test_x, test_y = extract(split)
    if (test_y < 0).any():
        raise ConfigError(f"the {split!r} split has no labels to score frozen features against")
    num_classes = datamodule.num_classes
    predictions = {}
    if "linear_probe" in protocols:
        predictions["linear_probe"] = linear_probe_predict(
            train_x, train_y, test_x, num_classes, c=probe_c
        )
    if "knn" in protocols:
        predictions["knn"] = knn_predict(
            train_x, train_y, test_x, num_classes, k=knn_k, temperature=knn_temperature
        )
    results: dict[str, Any] = score_heads(
        predictions,
        test_y,
        split=split,
        ordinal=datamodule.ordinal,
        class_names=list(datamodule.class_names),
    )
    results.update(
        split=split,
        train_images=int(train_x.shape[0]),
        eval_images=int(test_x.shape[0]),
        features=features,
        feature_dim=int(train_x.shape[1]),
        settings={"knn_k": knn_k, "knn_temperature": knn_temperature, "probe_c": probe_c},
        seconds=time.perf_counter() - started,
    )
    return results


def _check_request(
    datamodule: ImageClassificationDataModule, split: str, protocols: tuple[str, ...]
) -> None:
    """Refuse (:class:`ConfigError`) an unknown protocol, and a split to score on that the
    data does not have or that the protocols are fitted on (``train``)."""
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ConfigError(f"unknown protocol(s) {sorted(unknown)}: expected {list(PROTOCOLS)}")
    datamodule.setup()
    assert datamodule.splits is not None
    if split not in datamodule.splits or split == "train":
        raise ConfigError(
            f"cannot evaluate frozen features on split {split!r}: choose one of "
            f"{sorted(set(datamodule.splits) - {'train', 'predict', UNLABELLED_SPLIT})}"
        )
