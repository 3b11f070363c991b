"""Calibration: ECE against torchmetrics and a hand count, its resampled form, temperature
scaling recovering a known temperature, the reliability diagram."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax
from torchmetrics.classification import MulticlassCalibrationError

from fgssl.errors import DataLayoutError
from fgssl.evaluation.calibration import (
    expected_calibration_error,
    reliability_bins,
    resampled_ece,
)
from fgssl.evaluation.temperature import (
    apply_temperature,
    fit_temperature,
    logits_from_probabilities,
)
from fgssl.plots.calibration import plot_reliability_diagram


@pytest.mark.parametrize("classes", [2, 5])
def test_ece_equals_torchmetrics_l1_15_bins(classes):
    rng = np.random.default_rng(classes)
    logits = rng.normal(0, 2, (500, classes))
    p = softmax(logits, axis=1)
    y = rng.integers(0, classes, 500)
    reference = MulticlassCalibrationError(num_classes=classes, n_bins=15, norm="l1")
    expected = float(reference(torch.tensor(p, dtype=torch.float64), torch.tensor(y)))
    assert expected_calibration_error(p, y) == pytest.approx(expected, abs=1e-6)


def test_ece_by_hand():
    # confidences 0.95 (right), 0.95 (wrong), 0.5 (right), 0.3 (wrong): three bins
    p = np.array(
        [[0.95, 0.05, 0, 0], [0.95, 0.05, 0, 0], [0.5, 0.2, 0.2, 0.1], [0.3, 0.25, 0.25, 0.2]]
    )
    y = np.array([0, 1, 0, 3])
    bins = reliability_bins(p, y)
    assert bins.ece == pytest.approx(0.5 * 0.45 + 0.25 * 0.5 + 0.25 * 0.3)
    assert bins.count.sum() == 4 and bins.count[14] == 2 and bins.count[7] == 1
    assert bins.count[4] == 1  # 0.3 in (4/15, 5/15]
    assert math.isnan(bins.accuracy[0]) and bins.accuracy[14] == 0.5
    # a confidence exactly on an edge (0.4 = 6/15) goes to the bin it closes, (5/15, 6/15]
    edge = reliability_bins(np.array([[0.4, 0.3, 0.3]]), np.array([0]))
    assert edge.count[5] == 1
    assert math.isnan(expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int)))


def test_resampled_ece_equals_ece_of_each_resample():
    rng = np.random.default_rng(1)
    p = softmax(rng.normal(0, 2, (80, 3)), axis=1)
    y = rng.integers(0, 3, 80)
    indices = rng.integers(0, 80, (25, 80))
    got = resampled_ece(p, y, indices)
    expected = [expected_calibration_error(p[row], y[row]) for row in indices]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_temperature_scaling_recovers_the_temperature_of_calibrated_logits(true_temperature):
    """Labels drawn from softmax(z / T0) are perfectly calibrated for z / T0: the fit on z
    must find T0 (and from the probabilities softmax(z) as well)."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (20000, 5))
    truth = softmax(z / true_temperature, axis=1)
    y = np.array([rng.choice(5, p=row) for row in truth])
    assert fit_temperature(z, y) == pytest.approx(true_temperature, rel=0.05)
    p = softmax(z, axis=1)
    fitted = fit_temperature(logits_from_probabilities(p), y)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    scaled = apply_temperature(p, fitted)
    assert np.array_equal(scaled.argmax(axis=1), p.argmax(axis=1))
    np.testing.assert_allclose(scaled, truth, atol=0.02)
    assert expected_calibration_error(scaled, y) < expected_calibration_error(p, y)


def test_temperature_refusals():
    z = np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    with pytest.raises(DataLayoutError, match="two classes"):
        fit_temperature(z, np.array([0, 0, 0]))
    with pytest.raises(DataLayoutError, match="every validation image is predicted right"):
        fit_temperature(z, np.array([0, 1, 0]))
    with pytest.raises(DataLayoutError, match="no better than uniform"):
        fit_temperature(z, np.array([1, 0, 1]))
    with pytest.raises(DataLayoutError, match="got none"):
        fit_temperature(np.zeros((0, 2)), np.zeros(0, int))
    np.testing.assert_allclose(apply_temperature(softmax(z, axis=1), 1.0), softmax(z, axis=1))


def test_reliability_diagram_draws_the_filled_bins(tmp_path):
    p = np.array([[0.95, 0.05], [0.9, 0.1], [0.55, 0.45], [0.6, 0.4]])
    bins = reliability_bins(p, np.array([0, 1, 0, 0]))
    figure = plot_reliability_diagram(bins, tmp_path / "reliability.png", title="combined")
    assert (tmp_path / "reliability.png").stat().st_size > 0
    top, bottom = figure.axes
    filled = int((bins.count > 0).sum())
    assert filled == 3
    # accuracy bars + gap bars of the filled bins; one count bar per bin
    assert len(top.patches) == 2 * filled
    assert len(bottom.patches) == 15
    assert "ECE" in top.get_title()
