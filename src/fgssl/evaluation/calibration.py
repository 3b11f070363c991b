"""Calibration of predicted class probabilities: expected calibration error (ECE) and the
reliability-diagram bins.

Binning (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017, section 2):
each image's confidence is its largest class probability; M = 15 equal-width bins
``((m - 1) / M, m / M]`` over [0, 1] (a confidence of exactly 0 falls in the first bin).
A bin's accuracy is the share of its images whose argmax is the label, its confidence their
mean confidence, and

    ECE = sum over bins of (images in the bin / N) * |accuracy - confidence|,

in [0, 1]; undefined (NaN) on no images.

fgssl's own rather than torchmetrics' ``MulticlassCalibrationError(norm="l1")``, which
computes the same sum with bins closed on the left, ``[(m - 1) / M, m / M)`` (the two differ
only for a confidence exactly on a bin edge; tests/test_calibration.py compares them),
because: the bins are Guo et al.'s; the reliability diagram needs the bins themselves, not
only their sum; and the bootstrap intervals need the ECE of a thousand resamples at once
(:func:`resampled_ece`, one ``bincount``), which a torchmetrics metric would compute one
resample at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ECE_BINS",
    "ReliabilityBins",
    "confidence_bins",
    "expected_calibration_error",
    "reliability_bins",
    "resampled_ece",
]

ECE_BINS = 15
"""Guo et al. 2017's number of equal-width confidence bins."""


def confidence_bins(probabilities: np.ndarray, num_bins: int = ECE_BINS) -> np.ndarray:
    """(N,) bin index in [0, num_bins) of each image's confidence (the max of its (N, C)
    probabilities), bins ``((m - 1) / M, m / M]``."""
    confidence = probabilities.max(axis=1)
    return np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)


@dataclass(frozen=True)
class ReliabilityBins:
    """Per bin (arrays of length M): the reliability diagram's data."""

    edges: np.ndarray
    """(M + 1,) bin edges, 0 to 1."""
    count: np.ndarray
    """(M,) images per bin."""
    accuracy: np.ndarray
    """(M,) share of correct argmax predictions; NaN in an empty bin."""
    confidence: np.ndarray
    """(M,) mean confidence; NaN in an empty bin."""
    ece: float
    """The expected calibration error (NaN on no images)."""


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, num_bins: int = ECE_BINS
) -> ReliabilityBins:
    """The bins of (N, C) ``probabilities`` against (N,) integer ``labels`` and their ECE."""
    bins = confidence_bins(probabilities, num_bins)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    confidence = probabilities.max(axis=1).astype(np.float64)
    count = np.bincount(bins, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(bins, weights=correct, minlength=num_bins) / count
        mean_confidence = np.bincount(bins, weights=confidence, minlength=num_bins) / count
    total = count.sum()
    gaps = np.where(count > 0, np.abs(accuracy - mean_confidence), 0.0)
    ece = float((count * gaps).sum() / total) if total else math.nan
    return ReliabilityBins(
        np.linspace(0.0, 1.0, num_bins + 1), count, accuracy, mean_confidence, ece
    )


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, num_bins: int = ECE_BINS
) -> float:
    """ECE of (N, C) ``probabilities`` against (N,) integer ``labels`` (module docstring);
    NaN on no images."""
    return reliability_bins(probabilities, labels, num_bins).ece


def resampled_ece(
    probabilities: np.ndarray, labels: np.ndarray, indices: np.ndarray, num_bins: int = ECE_BINS
) -> np.ndarray:
    """(B,) ECE on each row of the (B, M) ``indices`` (bootstrap resamples): per resample and
    bin, the sum of (correct - confidence) over its drawn images, vectorised."""
    resamples, drawn = indices.shape
    if drawn == 0:
        return np.full(resamples, np.nan)
    bins = confidence_bins(probabilities, num_bins)
    gap = (probabilities.argmax(axis=1) == labels) - probabilities.max(axis=1)
    codes = (bins[indices] + num_bins * np.arange(resamples)[:, None]).ravel()
    sums = np.bincount(codes, weights=gap[indices].ravel(), minlength=resamples * num_bins)
    return np.abs(sums.reshape(resamples, num_bins)).sum(axis=1) / drawn
