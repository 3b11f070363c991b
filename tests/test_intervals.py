"""Bootstrap intervals: the vectorised metrics against compute_scores (scikit-learn) on every
resample, the intervals against scipy.stats.bootstrap and a hand-written stratified loop."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import stats

from fgssl.errors import ConfigError
from fgssl.evaluation.bootstrap import (
    BootstrapSettings,
    bootstrap_intervals,
    percentile_interval,
    resample_indices,
)
from fgssl.evaluation.reporting import paper_report
from fgssl.evaluation.resampled_scores import resampled_scores, weighted_auroc
from fgssl.metrics import compute_scores


def _ece(p: np.ndarray, y: np.ndarray) -> float:
    """Guo et al.'s ECE written out: 15 bins ((m - 1) / 15, m / 15] of the confidence."""
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == y
    total = 0.0
    for m in range(15):
        inside = (confidence > m / 15) & (confidence <= (m + 1) / 15)
        if m == 0:
            inside |= confidence == 0
        if inside.any():
            total += inside.sum() / len(y) * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def _probabilities(rng: np.random.Generator, n: int, c: int, decimals: int | None = None):
    p = rng.dirichlet(np.ones(c), size=n)
    return np.round(p, decimals) if decimals is not None else p  # rounding makes ties


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray, bool, list[str] | None]]:
    rng = np.random.default_rng(0)
    cases = {}
    cases["ordinal, ties"] = (_probabilities(rng, 40, 5, 1), rng.integers(0, 5, 40), True, None)
    # class 3 absent from the targets; class 2 never predicted
    p = _probabilities(rng, 30, 4)
    p[:, 2] = 0.0
    cases["absent and never predicted"] = (p, rng.choice([0, 1, 2], 30), True, None)
    cases["binary"] = (_probabilities(rng, 25, 2, 2), rng.integers(0, 2, 25), False, None)
    cases["one class"] = (_probabilities(rng, 12, 3), np.full(12, 1), True, None)
    labels = np.r_[np.zeros(15, int), np.ones(10, int), [2]]  # class 2: one image
    cases["one image of a class"] = (_probabilities(rng, 26, 3), labels, True, None)
    names = ["melanoma", "nevus", "seborrheic_keratosis"]
    cases["isic2017"] = (_probabilities(rng, 30, 3, 1), rng.integers(0, 3, 30), False, names)
    return cases


@pytest.mark.parametrize("case", list(_cases()))
@pytest.mark.parametrize("stratified", [True, False])
def test_resampled_scores_equal_compute_scores_on_every_resample(case, stratified):
    p, y, ordinal, names = _cases()[case]
    if stratified:
        indices = next(resample_indices(y, BootstrapSettings(resamples=40, seed=3)))
    else:  # unstratified draws lose classes: the undefined rules are exercised too
        indices = np.random.default_rng(3).integers(0, len(y), (40, len(y)))
    fast = resampled_scores(p, y, indices, ordinal=ordinal, class_names=names)
    for b, row in enumerate(indices):
        expected = compute_scores(p[row], y[row], ordinal=ordinal, class_names=names).values
        assert set(expected) <= set(fast)
        for name, value in expected.items():
            got = fast[name][b]
            assert (math.isnan(value) and math.isnan(got)) or got == pytest.approx(
                value, rel=1e-12, abs=1e-12
            ), (case, b, name, got, value)


def test_weighted_auroc_counts_ties_one_half():
    # hand count: positives score 0.5, 0.9; negatives 0.5, 0.1 -> pairs (0.5 vs 0.5: 1/2,
    # 0.5 vs 0.1: 1, 0.9 vs 0.5: 1, 0.9 vs 0.1: 1) = 3.5 / 4; the second row doubles 0.9
    score = np.array([0.5, 0.9, 0.5, 0.1])
    positive = np.array([True, True, False, False])
    weights = np.array([[1, 1, 1, 1], [1, 2, 1, 1], [0, 0, 1, 1]], float)
    got = weighted_auroc(positive, score, weights)
    assert got[0] == 3.5 / 4
    assert got[1] == (0.5 + 1 + 2 * 2) / (3 * 2)
    assert math.isnan(got[2])  # no positive drawn


def test_resamples_are_stratified_seeded_and_chunked():
    y = np.array([0] * 7 + [1] * 3 + [2] * 1 + [4] * 5)
    settings = BootstrapSettings(resamples=30, seed=11)
    indices = np.concatenate(list(resample_indices(y, settings)))
    assert indices.shape == (30, len(y))
    for row in indices:
        assert np.array_equal(np.bincount(y[row], minlength=5), np.bincount(y, minlength=5))
    assert (indices[:, 10] == 10).all()  # the single image of class 2, in every resample
    again = np.concatenate(list(resample_indices(y, settings)))
    other = np.concatenate(list(resample_indices(y, BootstrapSettings(resamples=30, seed=12))))
    assert np.array_equal(indices, again) and not np.array_equal(indices, other)


def test_single_class_interval_equals_scipy_percentile_bootstrap():
    """On a one-class split the stratified draw is scipy's plain draw: the accuracy interval
    must equal scipy.stats.bootstrap(method='percentile') with the same seed."""
    rng = np.random.default_rng(5)
    n = 60
    p = _probabilities(rng, n, 3)
    y = np.zeros(n, int)
    correct = (p.argmax(axis=1) == 0).astype(float)
    settings = BootstrapSettings(resamples=500, seed=7)
    reference = stats.bootstrap(
        (correct,),
        np.mean,
        n_resamples=500,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(7),
        vectorized=True,
    ).confidence_interval
    got = bootstrap_intervals({"combined": p}, y, settings=settings)["combined"]
    assert got["acc"].low == pytest.approx(reference.low, abs=1e-12)
    assert got["acc"].high == pytest.approx(reference.high, abs=1e-12)
    # the AUROC of a one-class split is undefined: so is its interval
    assert got["auroc"].low is None and got["auroc"].reason


def test_intervals_equal_a_hand_written_stratified_loop():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(20, int), np.ones(12, int), np.full(6, 2), np.full(2, 3), [4]]
    heads = {
        "combined": _probabilities(rng, len(y), 5, 1),
        "concat": _probabilities(rng, len(y), 5),
    }
    settings = BootstrapSettings(resamples=100, confidence=0.9, seed=4)
    got = bootstrap_intervals(heads, y, ordinal=True, settings=settings, ece=True)
    # the draws by the documented rule, scored one resample at a time with scikit-learn
    draw = np.random.default_rng(4)
    rows = np.concatenate(
        [
            np.flatnonzero(y == c)[draw.integers(0, (y == c).sum(), (100, (y == c).sum()))]
            for c in range(5)
        ],
        axis=1,
    )
    for head, p in heads.items():
        values = [
            {**compute_scores(p[r], y[r], ordinal=True).values, "ece": _ece(p[r], y[r])}
            for r in rows
        ]
        assert set(got[head]) == set(values[0])
        for name in values[0]:
            column = np.array([v[name] for v in values])
            low, high = np.percentile(column, [5, 95])
            assert got[head][name].low == pytest.approx(low, abs=1e-12), (head, name)
            assert got[head][name].high == pytest.approx(high, abs=1e-12), (head, name)
            assert got[head][name].undefined_resamples == 0


def test_undefined_resamples_rule():
    settings = BootstrapSettings(resamples=1000, confidence=0.95)
    values = np.linspace(0, 1, 1000)
    values[:25] = np.nan  # 25 = 2.5 % of 1000: still an interval, over the 975 defined
    interval = percentile_interval(0.5, values, settings)
    assert interval.undefined_resamples == 25
    assert interval.low == pytest.approx(np.quantile(values[25:], 0.025))
    values[25] = np.nan  # 26: more than one tail holds
    interval = percentile_interval(0.5, values, settings)
    assert interval.low is None and interval.high is None and "26 of 1000" in interval.reason
    assert percentile_interval(math.nan, np.zeros(1000), settings).low is None


def test_coverage_of_accuracy_near_nominal():
    """Of 200 simulated test sets with a true accuracy of 0.8, the 95 % interval covers 0.8
    about 95 % of the time (seeded: deterministic)."""
    rng = np.random.default_rng(2)
    covered = 0
    for trial in range(200):
        y = rng.integers(0, 2, 150)
        right = rng.random(150) < 0.8
        predicted = np.where(right, y, 1 - y)
        p = np.eye(2)[predicted]
        acc = bootstrap_intervals(
            {"c": p}, y, settings=BootstrapSettings(resamples=400, seed=trial)
        )["c"]["acc"]
        covered += acc.low <= 0.8 <= acc.high
    assert 0.9 <= covered / 200 <= 0.99


def test_no_images_and_bad_settings():
    got = bootstrap_intervals({"c": np.zeros((0, 3))}, np.zeros(0, int))
    assert all(i.low is None and i.reason == "no images" for i in got["c"].values())
    with pytest.raises(ConfigError, match="resamples must be at least 1"):
        BootstrapSettings(resamples=0)
    with pytest.raises(ConfigError, match="confidence must be a number in"):
        BootstrapSettings(confidence=95)
    with pytest.raises(ConfigError, match="integer"):
        BootstrapSettings(resamples=10.5)  # type: ignore[arg-type]


def test_a_split_too_small_for_its_intervals_is_warned_about(caplog):
    """Hand-made splits: one image per class (every resample equals the split), and one
    class of a single image among larger ones."""
    names = [f"grade{c}" for c in range(9)]
    labels = np.arange(9)
    predicted = np.r_[np.arange(7), 0, 0]  # 7 of 9 right: accuracy 0.778
    p = np.eye(9)[predicted] * 0.9 + 0.1 / 9
    with caplog.at_level(logging.WARNING):
        report = paper_report({"combined": p}, labels, ordinal=False, class_names=names)
    acc = report["intervals"]["test"]["combined"]["acc"]
    assert acc["low"] == acc["high"] == pytest.approx(7 / 9)
    assert "every resample gives the same value" in acc["warning"]
    assert "'grade8'" in acc["warning"] and "single image in the test split" in acc["warning"]
    assert "['grade0', 'grade1'," in caplog.text and "zero width for combined/acc" in caplog.text

    caplog.clear()
    labels = np.r_[np.zeros(6, int), np.ones(5, int), [2]]
    predicted = np.r_[[0, 0, 0, 1, 1, 0], [1, 1, 0, 1, 2], [2]]
    p = np.eye(3)[predicted] * 0.9 + 0.1 / 3
    with caplog.at_level(logging.WARNING):
        got = bootstrap_intervals({"combined": p}, labels, class_names=["a", "b", "c"])
    acc_interval = got["combined"]["acc"]
    assert acc_interval.low is not None and acc_interval.high is not None
    assert acc_interval.low < acc_interval.high  # classes a and b vary
    assert acc_interval.warning is not None and "['c'] have a single image" in acc_interval.warning
    assert "['c'] have a single image" in caplog.text
    # two images of every class: no warning about class sizes
    labels = np.r_[np.zeros(6, int), np.ones(5, int), [2, 2]]
    p = np.eye(3)[np.r_[predicted, [0]]] * 0.9 + 0.1 / 3
    assert bootstrap_intervals({"combined": p}, labels)["combined"]["acc"].warning is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("intervals.resamples=0", "intervals.resamples must be at least 1, got 0"),
        ("intervals.confidence=95", r"intervals.confidence must be a number in \(0, 1\)"),
    ],
)
def test_fgssl_train_refuses_bad_interval_settings(compose_config, override, message):
    from fgssl.run.config_checks import check_config

    with pytest.raises(ConfigError, match=message):
        check_config(compose_config("+experiment=demo", override))
    cfg = compose_config("+experiment=demo", "seed=3")
    check_config(cfg)
    from fgssl.run.factory import bootstrap_settings

    assert bootstrap_settings(cfg) == BootstrapSettings(resamples=1000, confidence=0.95, seed=3)


def test_the_interval_of_the_thresholded_kappa_is_the_percentile_bootstrap_by_hand() -> None:
    """kappa_thresholded's interval: scikit-learn's QWK of the expected grades cut by the
    thresholds, on every stratified resample, then the percentiles (numpy's)."""
    from sklearn.metrics import cohen_kappa_score

    from fgssl.evaluation.bootstrap import resample_indices
    from fgssl.thresholds import FittedThresholds, HeadThresholds

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 15)
    logits = rng.normal(size=(60, 4)) + 2.0 * np.eye(4)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = ("a", "b", "c", "d")
    cuts = FittedThresholds(names, {"combined": HeadThresholds((0.7, 1.4, 2.3))})
    settings = BootstrapSettings(resamples=200, confidence=0.9, seed=5)
    got = bootstrap_intervals(
        {"combined": probabilities, "concat": probabilities},
        labels,
        ordinal=True,
        class_names=names,
        settings=settings,
        thresholds=cuts,
    )
    grades = np.searchsorted([0.7, 1.4, 2.3], probabilities @ np.arange(4), side="left")
    values = [
        cohen_kappa_score(labels[i], grades[i], weights="quadratic", labels=range(4))
        for indices in resample_indices(labels, settings)
        for i in indices
    ]
    low, high = np.percentile(values, [5, 95])
    interval = got["combined"]["kappa_thresholded"]
    assert interval.low == pytest.approx(low) and interval.high == pytest.approx(high)
    assert got["concat"]["kappa_thresholded"].low is None  # no thresholds for that head
    assert (
        "kappa_thresholded"
        not in bootstrap_intervals(
            {"combined": probabilities}, labels, ordinal=True, class_names=names, settings=settings
        )["combined"]
    )
