"""Validation, test and prediction of a staged network in a LightningModule: the metrics of
the combined prediction and the concat head, their undefined values, the test confusion
matrices. :class:`fgssl.module.FGSSLModule` inherits them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from fgssl.metrics import (
    ClassificationMetrics,
    classification_metrics,
    confusion_matrix_metric,
    metric_names,
)
from fgssl.models.base import EVAL_HEADS, NetOutput
from fgssl.ops.tta import NO_TTA, averaged_probabilities
from fgssl.thresholds import FittedThresholds, add_thresholded_kappa
from fgssl.undefined import undefined_messages

__all__ = ["EvaluatedModule", "eval_metric_keys"]

log = logging.getLogger(__name__)


def eval_metric_keys(split: str, *, ordinal: bool, class_names: Sequence[str] | None) -> list[str]:
    """The keys :class:`EvaluatedModule` logs for ``split`` (``val``, ``test``) at the end of
    an epoch, in order: ``<split>/loss``, then ``<split>/<head>/<metric>`` for each head of
    :data:`~fgssl.models.base.EVAL_HEADS` and each metric of
    :func:`fgssl.metrics.metric_names` (``ordinal`` and ``class_names`` as the module's)."""
    names = metric_names(ordinal=ordinal, class_names=class_names)
    return [_loss_key(split), *(_metric_key(split, h, n) for h in EVAL_HEADS for n in names)]


def _loss_key(split: str) -> str:
    return f"{split}/loss"


def _metric_key(split: str, head: str, name: str) -> str:
    return f"{split}/{head}/{name}"


class IndexCollector(Metric):
    """The dataset indices of an epoch's batches, gathered from every process in the order
    :class:`~fgssl.metrics.ClassificationMetrics` gathers their predictions."""

    full_state_update = False
    indices: list[torch.Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("indices", default=[], dist_reduce_fx="cat")

    def update(self, indices: torch.Tensor) -> None:
        self.indices.append(indices.detach().long().reshape(-1))

    def compute(self) -> torch.Tensor:
        if isinstance(self.indices, list) and not self.indices:  # a tensor once gathered
            return torch.zeros(0, dtype=torch.long)
        return dim_zero_cat(self.indices)


class EvaluatedModule(pl.LightningModule):
    """The evaluation hooks; a subclass calls :meth:`_init_evaluation` in its ``__init__``
    and implements :meth:`_full_pass` (every head on a batch of images)."""

    def _init_evaluation(
        self, num_classes: int, *, ordinal: bool, class_names: Sequence[str] | None
    ) -> None:
        self.num_classes: int = num_classes
        self.class_names = list(class_names) if class_names else None
        self.eval_metrics = nn.ModuleDict(
            {
                f"{split}_{head}": classification_metrics(
                    self.num_classes, ordinal=ordinal, class_names=self.class_names
                )
                for split in ("val", "test")
                for head in EVAL_HEADS
            }
        )
        self._undefined_warned: dict[str, set[str]] = {}
        """By split: what :func:`fgssl.undefined.undefined_messages` already warned about."""
        self.test_confusion = nn.ModuleDict(
            {head: confusion_matrix_metric(self.num_classes) for head in EVAL_HEADS}
        )
        self.test_confusion_matrices: dict[str, list[list[int]]] = {}
        """Confusion matrices (rows true, columns predicted) of the last test epoch, by head."""
        self.test_predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        """(N, C) probabilities and (N,) labels of the last test epoch (every process's,
        gathered), by head: what the test metrics scored and their intervals resample."""
        self.val_predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        """The same of the last validation epoch: what the ordinal thresholds are fitted on."""
        self.test_index = IndexCollector()
        self.test_indices: np.ndarray | None = None
        """(N,) the dataset index of each row of :attr:`test_predictions` (rows in the
        gathered order, which under DDP is not the dataset's): names the images."""
        self.test_views: tuple[str, ...] = NO_TTA
        """Test-time augmentation of the test split: the views of :mod:`fgssl.ops.tta`
        whose probabilities are averaged (the run sets it from its ``tta`` config)."""
        self.ordinal_thresholds: FittedThresholds | None = None
        """Thresholds of the expected grade (:mod:`fgssl.thresholds`): when set, the test
        adds ``test/<head>/kappa_thresholded``; the run sets them before its test."""

    def _full_pass(self, x: torch.Tensor) -> NetOutput:
        raise NotImplementedError

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Mapping[str, torch.Tensor], split: str) -> None:
        """Update ``split``'s metrics with the batch's probabilities (the test split: their
        mean over :attr:`test_views`) and log the loss of the concat head on the images as
        they are."""
        output = self._full_pass(batch["image"])
        labels = batch["label"]
        views = self.test_views if split == "test" else NO_TTA
        means = averaged_probabilities(
            lambda x: self._full_pass(x).eval_logits(),
            batch["image"],
            views,
            first=output.eval_logits(),
        )
        for head, probabilities in means.items():
            cast(Metric, self.eval_metrics[f"{split}_{head}"]).update(probabilities, labels)
            if split == "test":
                cast(Metric, self.test_confusion[head]).update(probabilities, labels)
        if split == "test" and "index" in batch:
            self.test_index.update(batch["index"])
        loss = F.cross_entropy(output.concat.float(), labels)
        self.log(_loss_key(split), loss, on_step=False, on_epoch=True, sync_dist=True)

    def _log_eval_metrics(self, split: str) -> None:
        """Log ``<split>/<head>/<metric>`` of the whole epoch and reset the metrics.

        compute() gathers every process's predictions (a collective: every rank runs it), so
        the values are equal on all ranks. Undefined values are logged as NaN, with one
        warning per split and metric (none during the sanity check).
        """
        scores = {}
        for head in EVAL_HEADS:
            metric = cast(ClassificationMetrics, self.eval_metrics[f"{split}_{head}"])
            if not metric.update_called:
                continue
            values = {name: float(value) for name, value in metric.compute().items()}
            assert metric.scores is not None and metric.scored is not None
            if split == "test" and self.ordinal_thresholds is not None:
                add_thresholded_kappa(
                    metric.scores, *metric.scored, self.ordinal_thresholds, head, self.class_names
                )
                values = dict(metric.scores.values)
            self.log_dict(
                {_metric_key(split, head, name): value for name, value in values.items()},
                on_step=False,
                on_epoch=True,
                sync_dist=True,  # equal on every rank: the mean changes nothing
            )
            scores[f"{split}/{head}/"] = metric.scores
            (self.test_predictions if split == "test" else self.val_predictions)[head] = (
                metric.scored
            )
            metric.reset()
        if self._trainer is not None and self.trainer.sanity_checking:
            return
        warned = self._undefined_warned.setdefault(split, set())
        for message in undefined_messages(split, scores, warned):
            if self.global_rank == 0:
                log.warning("%s", message)

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_start(self) -> None:
        for metric in self.test_confusion.values():
            cast(Metric, metric).reset()
        self.test_index.reset()
        self.test_predictions = {}
        self.test_indices = None

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")
        if self.test_index.update_called:  # gathered as the predictions are (a collective)
            self.test_indices = self.test_index.compute().cpu().numpy()
        # compute() gathers the counts of every process (a collective: every rank runs it).
        self.test_confusion_matrices = {
            head: cast(Metric, metric).compute().long().tolist()
            for head, metric in self.test_confusion.items()
        }

    def predict_step(
        self, batch: Mapping[str, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """Class probabilities of the combined prediction and of the concat head."""
        output = self._full_pass(batch["image"])
        return {
            "probabilities": output.combined.float().softmax(dim=1),
            "concat_probabilities": output.concat.float().softmax(dim=1),
        }
