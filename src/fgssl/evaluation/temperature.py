"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017,
section 4.2): calibrated probabilities ``softmax(z / T)`` of the logits z, with the one
scalar T > 0 that minimises the negative log-likelihood of a held-out (validation) split.
T does not change the argmax, so accuracy, balanced accuracy, F1 and kappa are unchanged;
AUROCs of one-vs-rest scores can change (the per-class ranking is not preserved for C > 2).

Logits are recovered from probabilities as ``log p`` (softmax is unchanged by a constant
added to each row's logits), so a saved prediction can be scaled without the network.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from fgssl.errors import DataLayoutError

__all__ = ["apply_temperature", "fit_temperature", "logits_from_probabilities"]

_TINY = 1e-300
"""Floor of a probability before its logarithm (a float64 softmax that underflowed to 0)."""

_T_RANGE = (0.01, 100.0)
"""The temperatures searched: far beyond those of trained networks (Guo et al.: 1 to 3)."""


def logits_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """(N, C) logits (``log p``, floored at log 1e-300) of (N, C) probabilities."""
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), _TINY))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in [0.01, 100] minimising the mean cross-entropy of
    ``softmax(logits / T)`` on (N, C) ``logits`` and (N,) integer ``labels`` (bounded Brent
    search on log T, float64, to a relative 1e-8).

    Raises DataLayoutError on no images, fewer than two classes among the labels, or a
    likelihood without a minimum inside the range: every image predicted right (the loss
    falls as T -> 0) or predictions no better than uniform (it falls as T -> infinity).
    """
    labels = np.asarray(labels).astype(np.int64)
    if labels.size == 0:
        raise DataLayoutError("temperature scaling needs labelled validation images: got none")
    if len(np.unique(labels)) < 2:
        raise DataLayoutError(
            "temperature scaling needs at least two classes among the validation labels, "
            f"got only class {int(labels[0])}"
        )
    z = np.asarray(logits, dtype=np.float64)
    true_logit = z[np.arange(len(labels)), labels]

    def loss(log_t: float) -> float:
        scaled = z / math.exp(log_t)
        return float(np.mean(logsumexp(scaled, axis=1) - true_logit / math.exp(log_t)))

    if (z.argmax(axis=1) == labels).all():
        raise DataLayoutError(
            "temperature scaling found no temperature: every validation image is predicted "
            "right, so the validation likelihood keeps rising as T -> 0"
        )
    low, high = math.log(_T_RANGE[0]), math.log(_T_RANGE[1])
    result = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-8})
    log_t = float(result.x)
    if min(log_t - low, high - log_t) < 1e-4:
        why = (
            "the predictions are no better than uniform on the validation split"
            if high - log_t < 1e-4
            else "the validation likelihood keeps rising as T falls"
        )
        raise DataLayoutError(
            f"temperature scaling found no temperature in [{_T_RANGE[0]}, {_T_RANGE[1]}]: "
            f"the best is at the bound T = {math.exp(log_t):.3g} ({why})"
        )
    return math.exp(log_t)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """(N, C) ``softmax(log p / T)`` of (N, C) probabilities p."""
    if not temperature > 0:
        raise ValueError(f"a temperature must be positive, got {temperature}")
    scaled = logits_from_probabilities(probabilities) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)
