"""Every task metric against scikit-learn and hand counts: random predictions, classes absent
from the targets and/or predictions, one class, ties; over batches and processes; undefined
values (NaN, warnings, null) and a monitor that is undefined in some epochs."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn import metrics as skm
from torch import nn

from ddp_worker import metrics_on_a_shard, random_predictions
from fgssl.evaluation.scoring import confusion_matrix, per_class_report, score
from fgssl.metrics import classification_metrics, compute_scores
from fgssl.plots.curves import plot_training_curves, read_validation_series
from fgssl.run.factory import monitor_callbacks
from fgssl.undefined import format_metric, undefined_messages, undefined_to_null
from helpers import RandomDataModule, one_thread, tiny_module, tiny_trainer

ISIC2017 = ("melanoma", "seborrheic_keratosis", "nevus")


def sklearn_reference(probabilities: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The rule of each metric (docs/metrics.md), spelled with scikit-learn."""
    p, y = probabilities.double().numpy(), labels.numpy()
    predicted = p.argmax(axis=1)
    num_classes = p.shape[1]
    present = np.unique(y)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y, predicted, average="macro", zero_division=np.nan
    )
    if len(present) < 2:
        auroc = math.nan
    elif num_classes == 2:
        auroc = skm.roc_auc_score(y, p[:, 1])
    else:
        auroc = np.mean([skm.roc_auc_score(y == c, p[:, c]) for c in present])
    return {
        "acc": skm.accuracy_score(y, predicted),
        "balanced_acc": skm.balanced_accuracy_score(y, predicted),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auroc": auroc,
        "kappa": skm.cohen_kappa_score(
            y, predicted, weights="quadratic", labels=list(range(num_classes))
        ),
    }


def assert_matches(ours: dict[str, float], expected: dict[str, float]) -> None:
    assert set(ours) == set(expected)
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(ours[name]), name
        else:
            assert ours[name] == pytest.approx(value, abs=1e-9), name


def case(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions of 4 classes (2 for ``binary*``) where classes miss as ``name`` says."""
    generator = torch.Generator().manual_seed(len(name))
    num_classes = 2 if name.startswith("binary") else 4
    labels = torch.randint(num_classes, (120,), generator=generator)
    labels[:num_classes] = torch.arange(num_classes)
    if name in ("absent_from_targets", "absent_from_both"):
        labels[labels == 2] = 3
    if name in ("single_class", "single_class_everywhere", "binary_single_class"):
        labels[:] = 1
    logits = torch.randn(120, num_classes, generator=generator)
    logits[torch.arange(120), labels] += 1.5
    if name in ("absent_from_predictions", "absent_from_both"):
        logits[:, 2] = -20.0
    if name == "single_class_everywhere":
        logits[:, 1] = 20.0
    probabilities = logits.softmax(dim=1)
    if name == "ties":  # a few distinct values per column, and tied maxima within rows
        probabilities = (probabilities * 4).round() + 0.01
        probabilities[:10] = 1.0
        probabilities = probabilities / probabilities.sum(dim=1, keepdim=True)
    return probabilities, labels


CASES = [
    "all_present",
    "absent_from_targets",
    "absent_from_predictions",
    "absent_from_both",
    "single_class",
    "single_class_everywhere",
    "ties",
    "binary",
    "binary_single_class",
]


@pytest.mark.parametrize("name", CASES)
def test_metrics_match_sklearn_when_classes_are_missing(name: str) -> None:
    probabilities, labels = case(name)
    predicted = probabilities.argmax(dim=1)
    num_classes = probabilities.shape[1]
    if name in ("absent_from_targets", "absent_from_both"):
        assert 2 not in labels
    if name in ("absent_from_predictions", "absent_from_both"):
        assert 2 not in predicted
    if name == "absent_from_targets":
        assert 2 in predicted
    if name == "ties":
        assert (probabilities[:10] == 1 / num_classes).all()  # argmax: the first, class 0
    assert_matches(score(probabilities, labels, ordinal=True), sklearn_reference(*case(name)))


@pytest.mark.parametrize(("num_classes", "seed"), [(5, 0), (5, 1), (7, 2), (3, 3)])
def test_metrics_match_sklearn_on_random_predictions(num_classes: int, seed: int) -> None:
    probabilities, labels = random_predictions(300, num_classes, seed)
    assert_matches(
        score(probabilities, labels, ordinal=True), sklearn_reference(probabilities, labels)
    )


def test_three_class_head_on_a_split_of_two_classes_by_hand() -> None:
    """Class 2 absent from the targets but predicted once: every value counted by hand."""
    probabilities = torch.tensor(
        [[0.6, 0.3, 0.1], [0.3, 0.5, 0.2], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]]
    )
    labels = torch.tensor([0, 0, 1, 1])  # predicted: 0, 1, 1, 2
    ours = score(probabilities, labels, ordinal=True)
    assert ours["acc"] == pytest.approx(2 / 4)
    assert ours["balanced_acc"] == ours["recall"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert ours["precision"] == pytest.approx((1 + 1 / 2 + 0) / 3)  # class 2: predicted, wrong
    assert ours["f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    # class 0: both positives above both negatives; class 1: 2 of 4 pairs ordered right
    assert ours["auroc"] == pytest.approx((1.0 + 0.5) / 2)
    # sum(w O) = 2 and sum(w E) = 4 with w = (i - j)^2 and E = row x column totals / 4
    assert ours["kappa"] == pytest.approx(1 - 2 / 4)


def test_binary_auroc_with_tied_scores_by_hand() -> None:
    probabilities = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.8, 0.2], [0.2, 0.8]])
    labels = torch.tensor([0, 1, 0, 1])
    # pairs (positive, negative): 0.5~0.5 tie (1/2), 0.5>0.2, 0.8>0.5, 0.8>0.2
    assert score(probabilities, labels)["auroc"] == pytest.approx(3.5 / 4)


def test_undefined_values_are_nan_with_the_reason() -> None:
    probabilities = torch.tensor([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    labels = torch.tensor([1, 1])
    scores = compute_scores(
        probabilities.numpy(), labels.numpy(), ordinal=True, class_names=["a", "b", "c"]
    )
    assert math.isnan(scores.values["auroc"]) and math.isnan(scores.values["kappa"])
    assert set(scores.undefined) == {"auroc", "kappa"}
    assert "'b'" in scores.undefined["auroc"] and "'b'" in scores.undefined["kappa"]
    assert scores.absent == ["'a'", "'c'"]
    assert scores.values["acc"] == scores.values["balanced_acc"] == 1.0
    # a wrong single-class prediction leaves kappa defined: 0, as scikit-learn
    wrong = compute_scores(probabilities.numpy(), np.array([0, 0]), ordinal=True)
    assert wrong.values["kappa"] == skm.cohen_kappa_score([0, 0], [1, 1], weights="quadratic")


def test_binary_task_auroc_is_the_positive_class_auroc() -> None:
    probabilities, labels = random_predictions(200, 2, seed=4)
    ours = score(probabilities, labels)
    assert ours["auroc"] == pytest.approx(
        skm.roc_auc_score(labels.numpy(), probabilities[:, 1].numpy()), abs=1e-9
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
        assert ours[f"auroc_{name}"] == pytest.approx(expected[name], abs=1e-9)
    mean = (expected["melanoma"] + expected["seborrheic_keratosis"]) / 2
    assert ours["mean_auroc"] == pytest.approx(mean, abs=1e-9)


@pytest.mark.parametrize("missing", ["melanoma", "seborrheic_keratosis"])
def test_isic2017_auroc_of_an_absent_class_is_undefined(missing: str, caplog) -> None:
    probabilities, labels = random_predictions(200, 3, seed=9)
    absent = ISIC2017.index(missing)
    labels[labels == absent] = 2  # nevus
    other = "seborrheic_keratosis" if missing == "melanoma" else "melanoma"
    with caplog.at_level(logging.WARNING):
        ours = score(probabilities, labels, class_names=ISIC2017, split="test")
    assert math.isnan(ours[f"auroc_{missing}"]) and math.isnan(ours["mean_auroc"])
    index = ISIC2017.index(other)
    assert ours[f"auroc_{other}"] == pytest.approx(
        skm.roc_auc_score(labels.numpy() == index, probabilities[:, index].numpy()), abs=1e-9
    )
    present = np.unique(labels.numpy())
    assert ours["auroc"] == pytest.approx(
        np.mean([skm.roc_auc_score(labels == c, probabilities[:, c]) for c in present]), abs=1e-9
    )
    text = caplog.text
    assert f"auroc_{missing} is undefined (null) on the test split: no target is {missing!r}" in (
        text
    )
    assert "mean_auroc is undefined (null) on the test split" in text
    assert f"the test split holds no image of {missing!r}" in text


def test_isic2017_aurocs_only_for_its_class_names() -> None:
    names = set(classification_metrics(3, class_names=("a", "b", "c")).names)
    assert names == {"acc", "balanced_acc", "precision", "recall", "f1", "auroc"}
    assert "mean_auroc" in classification_metrics(3, class_names=ISIC2017).names
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        classification_metrics(3, class_names=("melanoma", "nevus"))


@pytest.mark.parametrize("name", ["all_present", "absent_from_both", "single_class_everywhere"])
def test_metrics_accumulate_over_batches_like_one_pass(name: str) -> None:
    probabilities, labels = case(name)
    metrics = classification_metrics(4, ordinal=True)
    for chunk in range(0, len(labels), 32):
        metrics.update(probabilities[chunk : chunk + 32], labels[chunk : chunk + 32])
    accumulated = {k: float(v) for k, v in metrics.compute().items()}
    assert_matches(accumulated, score(probabilities, labels, ordinal=True))
    assert metrics.scores is not None
    assert set(metrics.scores.undefined) == {k for k, v in accumulated.items() if math.isnan(v)}
    metrics.reset()
    with pytest.warns(UserWarning, match="called before the ``update``"):
        values = metrics.compute()
    assert all(math.isnan(v) for v in values.values())  # nothing seen: undefined


def test_undefined_messages_name_split_keys_and_classes_once() -> None:
    probabilities = np.array([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    scores = compute_scores(probabilities, np.array([1, 1]), ordinal=True, class_names="abc")
    by_head = {"val/combined/": scores, "val/concat/": scores}
    warned: set[str] = set()
    messages = undefined_messages("val", by_head, warned)
    assert messages[0].startswith("the val split holds no image of 'a', 'c'")
    kappa = next(m for m in messages if m.startswith("kappa"))
    assert "val/combined/kappa, val/concat/kappa: the targets and predictions are all 'b'" in (
        kappa
    )
    assert len(messages) == 3  # absent classes, auroc, kappa
    assert undefined_messages("val", by_head, warned) == []  # the next epoch: already said


def test_undefined_is_null_in_json() -> None:
    tree = {"test": {"auroc": math.nan, "acc": 0.5}, "scores": [math.inf, 1.0], "n": 3}
    text = json.dumps(undefined_to_null(tree), allow_nan=False)
    assert json.loads(text) == {"test": {"auroc": None, "acc": 0.5}, "scores": [None, 1.0], "n": 3}
    assert format_metric(math.nan, 8) == "    null" and format_metric(None, 5) == " null"
    assert format_metric(0.123456, 8) == "  0.1235"


def test_confusion_matrix_and_per_class_report_match_sklearn() -> None:
    probabilities, labels = random_predictions(300, 5, seed=7)
    y, predicted = labels.numpy(), probabilities.argmax(dim=1).numpy()
    assert np.array_equal(
        confusion_matrix(probabilities, labels), skm.confusion_matrix(y, predicted)
    )
    names = [f"c{i}" for i in range(5)]
    report = per_class_report(probabilities, labels, names)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, predicted, labels=list(range(5))
    )
    assert report["class"].tolist() == names
    np.testing.assert_allclose(report["precision"], precision, atol=1e-12)
    np.testing.assert_allclose(report["recall"], recall, atol=1e-12)
    np.testing.assert_allclose(report["f1"], f1, atol=1e-12)
    np.testing.assert_array_equal(report["support"], support)
    onevsrest = [skm.roc_auc_score(y == c, probabilities[:, c].numpy()) for c in range(5)]
    np.testing.assert_allclose(report["auroc"], onevsrest, atol=1e-12)


def test_per_class_report_leaves_undefined_values_empty() -> None:
    # class 1: predicted, never a target; class 2: never predicted, a target; class 3: neither
    probabilities = torch.tensor(
        [[0.9, 0.1, 0.0, 0.0], [0.2, 0.7, 0.1, 0.0], [0.6, 0.3, 0.1, 0.0], [0.5, 0.0, 0.4, 0.1]]
    )
    labels = torch.tensor([0, 0, 2, 2])
    report = per_class_report(probabilities, labels, ["a", "b", "c", "d"]).set_index("class")
    assert report.loc["a", "precision"] == pytest.approx(1 / 3)  # 3 predicted, 1 right
    assert report.loc["a", "recall"] == pytest.approx(1 / 2)
    assert report.loc["b", "precision"] == 0.0 and math.isnan(report.loc["b", "recall"])
    assert report.loc["b", "f1"] == 0.0 and math.isnan(report.loc["b", "auroc"])
    assert math.isnan(report.loc["c", "precision"]) and report.loc["c", "recall"] == 0.0
    assert report.loc["c", "f1"] == 0.0
    # positives 0.1, 0.4 against negatives 0.0, 0.1: 3 pairs ordered right, one tie
    assert report.loc["c", "auroc"] == pytest.approx(3.5 / 4)
    assert report.loc["d"].drop("support").isna().all() and report.loc["d", "support"] == 0
    assert report["support"].tolist() == [2, 0, 2, 0]


# ------------------------------------------------------------- an undefined monitor value


class ScriptedMetric(pl.LightningModule):
    """Logs ``values[epoch]`` as ``val/metric`` at each validation epoch (NaN = undefined)."""

    def __init__(self, values: list[float]):
        super().__init__()
        self.values = values
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.layer(batch).sum()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        self.log("val/metric", self.values[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(torch.ones(2, 2), batch_size=2)

    val_dataloader = train_dataloader


def fit_scripted(values: list[float], tmp_path: Path, patience: int | None = None) -> tuple:
    checkpoint, callbacks = monitor_callbacks(
        "val/metric", tmp_path / "best.ckpt", patience=patience
    )
    trainer = tiny_trainer(max_epochs=len(values), callbacks=callbacks, enable_checkpointing=True)
    trainer.fit(ScriptedMetric(values))
    return checkpoint, trainer


def test_an_undefined_epoch_is_never_the_best(tmp_path: Path) -> None:
    checkpoint, _ = fit_scripted([math.nan, 0.5, math.nan, 0.7, math.nan, 0.6], tmp_path)
    assert checkpoint.best_model_score == pytest.approx(0.7)
    assert torch.load(checkpoint.best_model_path, weights_only=True)["epoch"] == 3


def test_no_best_checkpoint_when_every_epoch_is_undefined(tmp_path: Path) -> None:
    checkpoint, _ = fit_scripted([math.nan, math.nan], tmp_path)
    assert checkpoint.best_model_path == "" and checkpoint.best_model_score is None
    assert not (tmp_path / "best.ckpt").exists()


def test_early_stopping_counts_undefined_epochs_as_no_improvement(tmp_path: Path) -> None:
    # Lightning's default (check_finite) would stop at the first NaN, after epoch 1
    _, trainer = fit_scripted([0.5, math.nan, 0.6, math.nan, math.nan, 0.9], tmp_path, 2)
    assert trainer.current_epoch == 5  # stopped after epoch 4: 2 epochs without improvement
    _, trainer = fit_scripted([0.5, math.nan, 0.6, 0.7], tmp_path / "b", 2)
    assert trainer.current_epoch == 4  # never stopped


@pytest.fixture
def single_thread():
    yield from one_thread()


def test_module_logs_nan_and_warns_once_per_split_and_metric(
    tmp_path: Path, caplog, single_thread
) -> None:
    """A validation split holding one class: AUROC is NaN in the logs, warned about once."""

    class OneClassValidation(RandomDataModule):
        def val_dataloader(self) -> torch.utils.data.DataLoader:
            loader = super().val_dataloader()
            data = loader.dataset
            data.labels[:] = 1  # type: ignore[attr-defined]
            return torch.utils.data.DataLoader(data, batch_size=self.batch_size)

    module = tiny_module()
    trainer = tiny_trainer(max_epochs=2, limit_train_batches=1)
    with caplog.at_level(logging.WARNING, logger="fgssl.module_eval"):
        trainer.fit(module, datamodule=OneClassValidation(count=16))
    assert math.isnan(float(trainer.callback_metrics["val/combined/auroc"]))
    assert math.isnan(float(trainer.callback_metrics["val/concat/auroc"]))
    assert 0 <= float(trainer.callback_metrics["val/combined/acc"]) <= 1
    auroc = [r.message for r in caplog.records if r.message.startswith("auroc is undefined")]
    assert len(auroc) == 1, caplog.text  # two epochs, two heads: one warning
    assert "on the val split" in auroc[0] and "val/combined/auroc, val/concat/auroc" in auroc[0]
    assert "the targets hold only class 1" in auroc[0]
    assert sum("holds no image of class 0, class 2" in r.message for r in caplog.records) == 1


def test_training_curve_leaves_a_gap_at_undefined_epochs(tmp_path: Path) -> None:
    """Lightning writes an undefined value as 'nan': the epoch stays, with NaN (a gap)."""
    (tmp_path / "finetune").mkdir()
    lines = ["epoch,step,val/combined/auroc,val/concat/auroc,val/loss,finetune/loss_epoch"]
    lines += [
        "0,3,0.6,0.5,1.0,",
        "0,3,,,,1.1",
        "1,7,nan,nan,0.9,",
        "2,11,0.8,nan,0.8,",
    ]
    metrics_csv = tmp_path / "finetune" / "metrics.csv"
    metrics_csv.write_text("\n".join(lines) + "\n")
    series = read_validation_series(metrics_csv, "val/combined/auroc")
    assert series.index.tolist() == [0, 1, 2]
    assert series.columns.tolist() == ["val/combined/auroc", "val/concat/auroc"]
    assert series["val/combined/auroc"].isna().tolist() == [False, True, False]
    assert series["val/concat/auroc"].isna().tolist() == [False, True, True]
    assert read_validation_series(metrics_csv, "val/loss").columns.tolist() == ["val/loss"]
    assert plot_training_curves(tmp_path, tmp_path / "curves.png", monitor="val/combined/auroc")


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
        score(probabilities, labels, ordinal=True, class_names=ISIC2017), abs=1e-9
    )
