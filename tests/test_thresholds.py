"""Ordinal thresholds fitted for QWK (fgssl.thresholds): the rule, the fit against known and
exhaustively searched optima, the undefined cases; scikit-learn's cohen_kappa_score is the
reference of every kappa."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from fgssl.metrics import compute_scores
from fgssl.thresholds import (
    THRESHOLDED_KAPPA,
    FittedThresholds,
    HeadThresholds,
    add_thresholded_kappa,
    cut_grades,
    expected_grade,
    fit_thresholds,
    quadratic_kappa,
)


def qwk(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    return float(
        cohen_kappa_score(labels, predicted, weights="quadratic", labels=list(range(classes)))
    )


def graded(expected: list[float], classes: int = 3) -> np.ndarray:
    """(N, C) probabilities with the given expected grades: mass on grades 0 and C-1."""
    e = np.asarray(expected, dtype=np.float64)
    p = np.zeros((len(e), classes))
    p[:, 0], p[:, -1] = 1 - e / (classes - 1), e / (classes - 1)
    return p


def random_task(rng: np.random.Generator, n: int, classes: int, strength: float = 1.0):
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes)) + strength * np.eye(classes)[labels]
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True), labels


def test_quadratic_kappa_is_scikit_learns() -> None:
    rng = np.random.default_rng(0)
    for classes in (2, 3, 5):
        labels, predicted = rng.integers(0, classes, 40), rng.integers(0, classes, 40)
        confusion = np.zeros((classes, classes))
        np.add.at(confusion, (labels, predicted), 1)
        assert quadratic_kappa(confusion) == pytest.approx(qwk(labels, predicted, classes))
    batch = np.stack([np.eye(3) * 4, np.ones((3, 3))])  # perfect; chance-level
    np.testing.assert_allclose(quadratic_kappa(batch), [1.0, 0.0], atol=1e-12)
    assert math.isnan(quadratic_kappa(np.diag([5.0, 0.0, 0.0])))  # one class: undefined


def test_cut_grades_right_closed_as_pandas_cut() -> None:
    """An expected grade on a threshold takes the lower grade (the APTOS kernels' pd.cut)."""
    e = np.array([0.0, 0.5, 0.50001, 1.5, 1.7, 2.0])
    thresholds = [0.5, 1.5]
    reference = pd.cut(e, [-np.inf, *thresholds, np.inf], labels=[0, 1, 2]).astype(int)
    assert cut_grades(e, thresholds).tolist() == list(reference) == [0, 0, 1, 1, 2, 2]
    p = np.array([[0.2, 0.3, 0.5]])
    assert expected_grade(p)[0] == pytest.approx(0.3 + 1.0)


def test_fit_finds_the_known_optimum_of_a_hand_made_case() -> None:
    """Grades 0/1/2 separable at 0.7|0.9 and 1.6|1.8, which rounding (0.5, 1.5) misses: the
    fitted thresholds are the midpoints of those gaps, and the QWK is 1."""
    expected = [0.2, 0.4, 0.7, 0.9, 1.1, 1.6, 1.8, 1.9]
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    fitted = fit_thresholds(graded(expected), labels)
    assert fitted.thresholds == pytest.approx((0.8, 1.7))
    assert fitted.kappa == 1.0 == qwk(labels, cut_grades(np.array(expected), [0.8, 1.7]), 3)
    rounded = qwk(labels, cut_grades(np.array(expected), [0.5, 1.5]), 3)
    assert fitted.kappa_rounded == pytest.approx(rounded) and rounded < 0.85


def test_fit_may_leave_a_grade_empty() -> None:
    """Grade 1 never helps here: both thresholds sit in the one gap (0.3, 1.7)."""
    labels = np.array([0, 0, 0, 2, 2, 2])
    fitted = fit_thresholds(graded([0.1, 0.2, 0.3, 1.7, 1.8, 1.9]), labels)
    assert fitted.kappa == 1.0 and fitted.thresholds is not None
    assert 0.3 < fitted.thresholds[0] < fitted.thresholds[1] < 1.7


def exhaustive_best(expected: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """The highest QWK over every sorted choice of thresholds among all cut points (two
    may share one gap), by scikit-learn."""
    points = np.unique(np.concatenate([[-0.5], expected, [classes - 0.5]]))
    cuts = (points[:-1] + points[1:]) / 2
    return max(
        qwk(labels, cut_grades(expected, chosen), classes)
        for chosen in itertools.combinations_with_replacement(cuts, classes - 1)
    )


@pytest.mark.parametrize(("classes", "images"), [(3, 14), (4, 10), (5, 7)])
def test_fit_reaches_the_exhaustive_optimum_on_small_random_cases(
    classes: int, images: int
) -> None:
    rng = np.random.default_rng(classes)
    for _ in range(4):
        p, labels = random_task(rng, images, classes)
        fitted = fit_thresholds(p, labels)
        assert fitted.thresholds is not None
        e = expected_grade(p)
        achieved = qwk(labels, cut_grades(e, fitted.thresholds), classes)
        assert achieved == pytest.approx(fitted.kappa, abs=1e-12)
        assert achieved == pytest.approx(exhaustive_best(e, labels, classes), abs=1e-9)
        assert list(fitted.thresholds) == sorted(set(fitted.thresholds))


def test_fit_is_deterministic_sorted_and_never_below_rounding() -> None:
    rng = np.random.default_rng(7)
    p, labels = random_task(rng, 500, 5, strength=0.8)
    fitted = fit_thresholds(p, labels)
    order = rng.permutation(500)
    assert fit_thresholds(p[order], labels[order]) == fitted  # the images' order is no input
    assert fitted.thresholds is not None
    assert all(a < b for a, b in itertools.pairwise(fitted.thresholds))
    e = expected_grade(p)
    assert fitted.kappa_rounded == pytest.approx(qwk(labels, np.rint(e).astype(int), 5))
    assert fitted.kappa > fitted.kappa_rounded
    # no single threshold can move to a better place (checked by scikit-learn)
    for k in range(4):
        for t in np.linspace(-0.4, 4.4, 97):
            moved = list(fitted.thresholds)
            moved[k] = t
            if moved == sorted(moved):
                assert qwk(labels, cut_grades(e, moved), 5) <= fitted.kappa + 1e-12


def test_rounding_that_is_already_best_is_kept() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    fitted = fit_thresholds(graded([0.1, 0.2, 0.9, 1.1, 1.9, 2.0]), labels)
    assert fitted.thresholds == (0.5, 1.5) and fitted.kappa == 1.0


@pytest.mark.parametrize(
    ("probabilities", "labels", "reason"),
    [
        (np.zeros((0, 3)), np.zeros(0, int), "no images"),
        (graded([0.1, 1.2]), np.array([1, 1]), "the labels are all grade 1"),
        (np.array([[np.nan, 0.5, 0.5], [0.2, 0.3, 0.5]]), np.array([0, 2]), "not finite"),
    ],
)
def test_no_thresholds_when_they_cannot_be_fitted(probabilities, labels, reason: str) -> None:
    fitted = fit_thresholds(probabilities, labels)
    assert fitted.thresholds is None and reason in (fitted.reason or "")
    if reason.startswith("the labels"):
        named = fit_thresholds(probabilities, labels, ["a", "b", "c"]).reason or ""
        assert named.startswith("the labels are all 'b'")
    assert fitted.to_json()["thresholds"] is None and fitted.to_json()["kappa"] is None


def test_thresholded_kappa_is_the_qwk_of_the_cut_grades() -> None:
    rng = np.random.default_rng(3)
    p, labels = random_task(rng, 60, 5)
    names = ("a", "b", "c", "d", "e")
    fitted = FittedThresholds(names, {"combined": HeadThresholds((0.7, 1.4, 2.6, 3.2))})
    scores = compute_scores(p, labels, ordinal=True, class_names=names)
    add_thresholded_kappa(scores, p, labels, fitted, "combined", names)
    grades = cut_grades(expected_grade(p), (0.7, 1.4, 2.6, 3.2))
    assert scores.values[THRESHOLDED_KAPPA] == pytest.approx(qwk(labels, grades, 5))
    assert scores.values["kappa"] == pytest.approx(qwk(labels, p.argmax(axis=1), 5))
    assert THRESHOLDED_KAPPA not in scores.undefined


@pytest.mark.parametrize(
    ("head", "names", "labels", "reason"),
    [
        (
            "concat",
            ("a", "b", "c"),
            [0, 2],
            "no thresholds were fitted: the labels are all 'b'",
        ),
        ("other", ("a", "b", "c"), [0, 2], "none for other"),
        ("combined", ("c", "b", "a"), [0, 2], "cut the grades ['a', 'b', 'c']"),
        ("combined", ("a", "b", "c"), [0, 0], "all one grade"),
    ],
)
def test_thresholded_kappa_undefined_with_the_reason(head, names, labels, reason) -> None:
    fitted = FittedThresholds(
        ("a", "b", "c"),
        {
            "combined": HeadThresholds((0.5, 1.5)),
            "concat": HeadThresholds(None, "the labels are all 'b' (QWK undefined)"),
        },
    )
    p = graded([0.1, 0.2])
    scores = compute_scores(p, np.array(labels), ordinal=True, class_names=names)
    add_thresholded_kappa(scores, p, np.array(labels), fitted, head, names)
    assert math.isnan(scores.values[THRESHOLDED_KAPPA])
    assert reason in scores.undefined[THRESHOLDED_KAPPA]


def test_the_record_reads_back_and_malformed_ones_are_refused() -> None:
    fitted = FittedThresholds(
        ("a", "b", "c"),
        {
            "combined": HeadThresholds((0.6, 1.3), None, 0.9, 0.8),
            "concat": HeadThresholds(None, "x"),
        },
        images=12,
    )
    back = FittedThresholds.from_json(fitted.to_json())
    assert back.class_names == fitted.class_names and back.images == 12
    assert back.heads["combined"] == fitted.heads["combined"]
    assert back.heads["concat"] == HeadThresholds(None, "x")
    record = fitted.to_json()
    for bad in ([1.3, 0.6], [0.6], [0.6, float("nan")]):
        record["heads"]["combined"]["thresholds"] = bad
        with pytest.raises(ValueError, match="combined"):
            FittedThresholds.from_json(record)
    with pytest.raises(ValueError, match="heads"):
        FittedThresholds.from_json([1, 2])
