"""Referable-DR screening numbers against scikit-learn on hand-made predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from fgssl import data
from fgssl.evaluation.bootstrap import BootstrapSettings, resample_indices
from fgssl.evaluation.reporting import paper_report
from fgssl.evaluation.screening import ICDR_GRADES, is_icdr_graded, referable_dr


def _grade_probabilities(predicted: list[int], confidence: list[float]) -> np.ndarray:
    """(N, 5): ``confidence`` on the predicted grade, the rest spread evenly."""
    p = np.tile(((1 - np.array(confidence)) / 4)[:, None], (1, 5))
    p[np.arange(len(predicted)), predicted] = confidence
    return p


def test_referable_dr_against_sklearn_by_hand():
    grades = np.array([0, 0, 1, 1, 2, 2, 3, 4, 0, 4])
    predicted = [0, 2, 1, 3, 2, 1, 3, 4, 1, 0]  # 2 false referable, 2 missed referable
    p = _grade_probabilities(predicted, [0.9, 0.5, 0.6, 0.4, 0.7, 0.5, 0.8, 0.9, 0.6, 0.5])
    result = referable_dr(p, grades, BootstrapSettings(resamples=200, seed=1))
    truth = grades >= 2
    call = np.array(predicted) >= 2
    # by hand: 5 referable, 3 of them called referable; 5 not, 3 of them called not
    assert truth.sum() == 5 and (truth & call).sum() == 3 and (~truth & ~call).sum() == 3
    assert result.metrics["sensitivity"] == pytest.approx(recall_score(truth, call)) == 3 / 5
    assert result.metrics["specificity"] == pytest.approx(recall_score(truth, call, pos_label=0))
    assert result.metrics["auroc"] == pytest.approx(roc_auc_score(truth, p[:, 2:].sum(axis=1)))
    assert (result.referable_images, result.non_referable_images) == (5, 5)
    # the intervals: the same stratified resamples, scored one at a time by scikit-learn
    rows = next(resample_indices(grades, BootstrapSettings(resamples=200, seed=1)))
    for name, scorer in {
        "sensitivity": lambda r: recall_score(truth[r], call[r]),
        "specificity": lambda r: recall_score(truth[r], call[r], pos_label=0),
        "auroc": lambda r: roc_auc_score(truth[r], p[r, 2:].sum(axis=1)),
    }.items():
        low, high = np.percentile([scorer(r) for r in rows], [2.5, 97.5])
        assert result.intervals[name].low == pytest.approx(low, abs=1e-12), name
        assert result.intervals[name].high == pytest.approx(high, abs=1e-12), name
    tree = result.to_json()
    assert tree["metrics"]["sensitivity"] == 0.6 and "undefined" not in tree


def test_no_referable_image_leaves_sensitivity_and_auroc_undefined():
    grades = np.array([0, 1, 0, 1, 1])
    p = _grade_probabilities([0, 1, 2, 1, 0], [0.9] * 5)
    result = referable_dr(p, grades, BootstrapSettings(resamples=50))
    assert result.metrics["specificity"] == pytest.approx(4 / 5)
    tree = result.to_json()
    assert tree["metrics"]["sensitivity"] is None and tree["metrics"]["auroc"] is None
    assert tree["intervals"]["sensitivity"]["low"] is None
    assert set(tree["undefined"]) == {"sensitivity", "auroc"}
    assert tree["intervals"]["specificity"]["low"] is not None


@pytest.mark.parametrize(
    "reader",
    [
        data.APTOS2019DataModule,
        data.DemoAPTOSDataModule,
        data.EyePACSDataModule,
        data.Messidor2DataModule,
        data.IDRiDDataModule,
        data.DDRDataModule,
    ],
)
def test_the_dr_readers_are_icdr_graded(reader):
    assert is_icdr_graded(reader.class_names, reader.ordinal)


def test_which_tasks_are_icdr_graded():
    assert not is_icdr_graded(data.ISIC2018DataModule.class_names, False)
    assert not is_icdr_graded(ICDR_GRADES, False)
    assert not is_icdr_graded(("a", "b", "c", "d", "e"), True)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        referable_dr(np.zeros((3, 4)), np.zeros(3, int))


def test_paper_report_adds_screening_only_for_icdr_grading():
    rng = np.random.default_rng(0)
    grades = rng.integers(0, 5, 40)
    heads = {"combined": rng.dirichlet(np.ones(5), 40), "concat": rng.dirichlet(np.ones(5), 40)}
    settings = BootstrapSettings(resamples=50)
    report = paper_report(heads, grades, ordinal=True, class_names=ICDR_GRADES, settings=settings)
    assert report["screening"]["head"] == "combined"
    expected = referable_dr(heads["combined"], grades, settings).to_json()["metrics"]
    assert report["screening"]["metrics"] == expected
    assert set(report["intervals"]["test"]) == {"combined", "concat"}
    assert "ece" in report["intervals"]["test"]["concat"]
    other = paper_report(heads, grades, ordinal=False, class_names=list("abcde"), settings=settings)
    assert "screening" not in other and other["calibration"]["heads"]["combined"]["ece"] > 0
