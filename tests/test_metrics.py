"""Every task metric against scikit-learn on random predictions, over batches and processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from ddp_worker import metrics_on_a_shard, random_predictions
from fgssl.evaluation.scoring import confusion_matrix, per_class_report, score
from fgssl.metrics import classification_metrics

ISIC2017 = ("melanoma", "seborrheic_keratosis", "nevus")


def sklearn_reference(probabilities: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    p, y = probabilities.double().numpy(), labels.numpy()
    predicted = p.argmax(axis=1)
    classes = list(range(p.shape[1]))
    return {
        "acc": skm.accuracy_score(y, predicted),
        "balanced_acc": skm.balanced_accuracy_score(y, predicted),
        "f1": skm.f1_score(y, predicted, average="macro", labels=classes, zero_division=0),
        "precision": skm.precision_score(
            y, predicted, average="macro", labels=classes, zero_division=0
        ),
        "recall": skm.recall_score(y, predicted, average="macro", labels=classes, zero_division=0),
        "auroc": skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=classes),
        "kappa": skm.cohen_kappa_score(y, predicted, weights="quadratic"),
    }


@pytest.mark.parametrize(("num_classes", "seed"), [(5, 0), (5, 1), (7, 2), (3, 3)])
def test_metrics_match_sklearn(num_classes: int, seed: int) -> None:
    probabilities, labels = random_predictions(300, num_classes, seed)
    ours = score(probabilities, labels, ordinal=True)
    expected = sklearn_reference(probabilities, labels)
    assert set(ours) == set(expected)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-5), name


def test_binary_task_auroc_is_the_positive_class_auroc() -> None:
    probabilities, labels = random_predictions(200, 2, seed=4)
    ours = score(probabilities, labels)
    assert ours["auroc"] == pytest.approx(
        skm.roc_auc_score(labels.numpy(), probabilities[:, 1].numpy()), abs=1e-5
    )
    assert "kappa" not in ours  # not ordinal


@pytest.mark.parametrize("order", [ISIC2017, ("nevus", "seborrheic_keratosis", "melanoma")])
def test_isic2017_aurocs_match_sklearn(order: tuple[str, ...]) -> None:
    probabilities, labels = random_predictions(400, 3, seed=5)
    ours = score(probabilities, labels, class_names=order)
    y, p = labels.numpy(), probabilities.double().numpy()
    expected = {}
    for name in ("melanoma", "seborrheic_keratosis"):
        index = order.index(name)
        expected[name] = skm.roc_auc_score(y == index, p[:, index])
        assert ours[f"auroc_{name}"] == pytest.approx(expected[name], abs=1e-5)
    mean = (expected["melanoma"] + expected["seborrheic_keratosis"]) / 2
    assert ours["mean_auroc"] == pytest.approx(mean, abs=1e-5)


def test_isic2017_aurocs_only_for_its_class_names() -> None:
    names = set(classification_metrics(3, class_names=("a", "b", "c")).keys())
    assert not names & {"mean_auroc", "auroc_melanoma"}
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        classification_metrics(3, class_names=("melanoma", "nevus"))


def test_metrics_accumulate_over_batches_like_one_pass() -> None:
    probabilities, labels = random_predictions(250, 3, seed=6)
    metrics = classification_metrics(3, ordinal=True, class_names=ISIC2017)
    for chunk in range(0, 250, 32):
        metrics.update(probabilities[chunk : chunk + 32], labels[chunk : chunk + 32])
    accumulated = {k: float(v) for k, v in metrics.compute().items()}
    whole = score(probabilities, labels, ordinal=True, class_names=ISIC2017)
    assert accumulated == pytest.approx(whole, abs=1e-6)


def test_confusion_matrix_and_per_class_report_match_sklearn() -> None:
    probabilities, labels = random_predictions(300, 5, seed=7)
    y, predicted = labels.numpy(), probabilities.argmax(dim=1).numpy()
    assert np.array_equal(
        confusion_matrix(probabilities, labels), skm.confusion_matrix(y, predicted)
    )
    names = [f"c{i}" for i in range(5)]
    report = per_class_report(probabilities, labels, names)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, predicted, labels=list(range(5)), zero_division=0
    )
    assert report["class"].tolist() == names
    np.testing.assert_allclose(report["precision"], precision, atol=1e-9)
    np.testing.assert_allclose(report["recall"], recall, atol=1e-9)
    np.testing.assert_allclose(report["f1"], f1, atol=1e-9)
    np.testing.assert_array_equal(report["support"], support)
    onevsrest = [skm.roc_auc_score(y == c, probabilities[:, c].numpy()) for c in range(5)]
    np.testing.assert_allclose(report["auroc"], onevsrest, atol=1e-5)


def test_per_class_report_of_a_never_predicted_class_is_zero() -> None:
    probabilities = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    labels = torch.tensor([0, 1, 2])
    report = per_class_report(probabilities, labels, ["a", "b", "c"])
    assert report.loc[2, ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]
    assert report.loc[0, "precision"] == pytest.approx(0.5)


@pytest.mark.slow
def test_metrics_are_computed_over_every_process() -> None:
    """Two processes each see half the predictions: the metrics are those of all of them."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(
        metrics_on_a_shard, args=(2, port, queue, ISIC2017), nprocs=2, start_method="spawn"
    )
    distributed = queue.get()
    probabilities, labels = random_predictions(301, 3, seed=8)
    assert distributed == pytest.approx(
        score(probabilities, labels, ordinal=True, class_names=ISIC2017), abs=1e-6
    )
