"""Class imbalance: cross-entropy class weights and a class-balancing sampler."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from fgssl.errors import ConfigError

__all__ = ["balancing_weights", "class_weights"]

log = logging.getLogger(__name__)


def class_weights(
    method: str | Sequence[float] | None, counts: np.ndarray, class_names: Sequence[str]
) -> list[float] | None:
    """Cross-entropy class weights from the images per class ``counts``.

    ``method``: None (or ``"none"``) for none; ``"balanced"`` for ``n / (K * n_c)`` (0 for a
    class with no image, as in scikit-learn's ``compute_class_weight``); or an explicit list
    of one non-negative weight per class.
    """
    if method is None or method == "none":
        return None
    if method == "balanced":
        counts = np.asarray(counts, dtype=float)
        weights = np.divide(
            counts.sum(), len(counts) * counts, out=np.zeros_like(counts), where=counts > 0
        )
        log.info("class weights (balanced): %s", np.round(weights, 3).tolist())
        return [float(w) for w in weights]
    if isinstance(method, str):
        raise ConfigError(
            f"loss.class_weights must be null, 'balanced' or a list of weights, got {method!r}"
        )
    weights_list = [float(w) for w in method]
    if len(weights_list) != len(class_names) or min(weights_list) < 0:
        raise ConfigError(
            f"loss.class_weights={weights_list} must hold {len(class_names)} non-negative "
            f"weights, one per class {list(class_names)}"
        )
    return weights_list


def balancing_weights(labels: Sequence[int]) -> list[float]:
    """Sampling weight of each image, inverse to the frequency of its class, so that every
    class is drawn about equally often (see :class:`fgssl.data.sampling.EpochSampler`)."""
    labels_array = np.asarray(labels)
    counts = np.bincount(labels_array)
    return (1.0 / counts[labels_array]).tolist()
