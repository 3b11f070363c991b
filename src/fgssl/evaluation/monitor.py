"""An online monitor of the self-supervised phase: k-NN on frozen features and collapse
indicators, every few pretrain epochs and once before the first step.

What a pass measures, on the network as it is (eval mode, no gradients):

- ``monitor/knn/<metric>``: the weighted k-NN protocol (:func:`fgssl.evaluation.knn_predict`,
  cosine similarity, votes ``exp(s / T)``) of the validation images on the pooled last
  backbone stage, against the labelled training images (those ``label_fraction`` keeps),
  scored with the dataset's official metric (NaN, with a warning, where undefined).
- ``monitor/<head>/std`` and ``monitor/<head>/rankme``: the collapse indicators of each
  head's embedding of the validation images (:mod:`fgssl.evaluation.collapse`); a warning
  names a head when its embedding collapses.
- ``monitor/epochs_trained``: 0 for the pass before any step (the random-weight reference
  of a fresh phase; at the start of a fresh pretrain phase), else the epochs done.

Rows go to the trainer's loggers (``pretrain/metrics.csv``). Under DDP the pass runs on the
first process only, on the whole validation and training sets, and logs from there: it uses
no collective operation, so the other processes wait for it at their next gradient
synchronisation and never hang. It draws no random number from the training's generators
(the loaders' seeds are drawn inside :func:`torch.random.fork_rng`), so a run with the
monitor trains exactly as one without it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.dataset import ImageDataset
from fgssl.data.worker_signals import SignalSafeDataLoader, WorkerInit
from fgssl.errors import ConfigError
from fgssl.evaluation.collapse import CollapseIndicators, collapse_indicators
from fgssl.evaluation.knn import knn_predict
from fgssl.evaluation.scoring import score
from fgssl.models.base import StagedNet

__all__ = ["PREFIX", "SSLMonitor"]

log = logging.getLogger(__name__)

PREFIX = "monitor/"
"""The prefix of every key the monitor logs."""


class SSLMonitor(pl.Callback):
    """k-NN accuracy of frozen features and embedding collapse indicators during
    self-supervised training (see the module docstring for what is logged).

    Args:
        every_n_epochs: run after every ``every_n_epochs``-th epoch and after the last one;
            0 turns the monitor off.
        knn_k: the k-NN protocol's number of neighbours.
        knn_temperature: the k-NN protocol's temperature.
        reference: also run before the first step of a fresh phase (``epochs_trained=0``).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        *,
        knn_k: int = 20,
        knn_temperature: float = 0.07,
        reference: bool = True,
    ) -> None:
        if not isinstance(every_n_epochs, int) or every_n_epochs < 0:
            raise ConfigError(
                f"ssl_monitor.every_n_epochs must be a whole number >= 0 (0: off), got "
                f"{every_n_epochs!r}"
            )
        if knn_k < 1 or knn_temperature <= 0:
            raise ConfigError(
                f"ssl_monitor.knn_k must be >= 1 and ssl_monitor.knn_temperature > 0, got "
                f"{knn_k} and {knn_temperature}"
            )
        self.every_n_epochs = every_n_epochs
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        self.reference = reference
        self.history: list[dict[str, float]] = []
        """Every row logged by this process, in order."""
        self.seconds: list[float] = []
        """Wall time of each pass (seconds)."""
        self._collapsed: set[str] = set()

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fresh = trainer.current_epoch == 0 and trainer.global_step == 0
        if self.every_n_epochs and self.reference and fresh and trainer.is_global_zero:
            self._run(trainer, pl_module, epochs_trained=0)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        done = trainer.current_epoch + 1
        last = done == trainer.max_epochs or trainer.should_stop
        due = self.every_n_epochs and (done % self.every_n_epochs == 0 or last)
        if due and trainer.is_global_zero:
            self._run(trainer, pl_module, epochs_trained=done, epoch=trainer.current_epoch)

    # ------------------------------------------------------------------------ a pass
    def measure(
        self,
        net: StagedNet,
        datamodule: ImageClassificationDataModule,
        device: torch.device,
        *,
        epochs_trained: int = 0,
    ) -> dict[str, float]:
        """One pass on ``net`` as it is, after ``epochs_trained`` epochs: the logged values
        by key (without the epoch). A head whose embedding has collapsed is named in a
        warning (at random initialisation, in the log at INFO: the features of a random deep
        network in eval mode often span only a few directions)."""
        train_loader, val_loader = monitor_loaders(datamodule)
        was_training = net.training
        net.eval()
        try:
            with torch.random.fork_rng(devices=_cuda_devices(device)):
                train_x, train_y, _ = _features(net, train_loader, device, embeddings=False)
                val_x, val_y, heads = _features(net, val_loader, device, embeddings=True)
        finally:
            net.train(was_training)
        probabilities = knn_predict(
            train_x,
            train_y,
            val_x,
            datamodule.num_classes,
            k=self.knn_k,
            temperature=self.knn_temperature,
        )
        metric = datamodule.official_metric
        scores = score(
            probabilities,
            val_y,
            ordinal=datamodule.ordinal,
            class_names=list(datamodule.class_names),
            split="val (pretrain monitor k-NN)",
        )
        row = {f"{PREFIX}knn/{metric}": float(scores.get(metric, math.nan))}
        for name, embedding in zip(net.stage_names, heads, strict=True):
            indicators = collapse_indicators(embedding)
            row[f"{PREFIX}{name}/std"] = indicators.std
            row[f"{PREFIX}{name}/rankme"] = indicators.rank
            row[f"{PREFIX}embedding_dim"] = float(indicators.dim)
            self._warn_collapse(name, indicators, epochs_trained)
        return row

    def _run(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        *,
        epochs_trained: int,
        epoch: int | None = None,
    ) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        net = getattr(pl_module, "net", None)
        if not isinstance(datamodule, ImageClassificationDataModule) or not isinstance(
            net, StagedNet
        ):
            raise ConfigError(
                "SSLMonitor needs a module with a StagedNet `net` trained on an fgssl data "
                "module (ImageClassificationDataModule)"
            )
        started = time.perf_counter()
        row = {f"{PREFIX}epochs_trained": float(epochs_trained)}
        row.update(self.measure(net, datamodule, pl_module.device, epochs_trained=epochs_trained))
        # the pass's wall time stays out of the log: a resumed run logs what an
        # uninterrupted one does
        self.seconds.append(time.perf_counter() - started)
        self.history.append(row)
        logged: dict[str, float] = dict(row)
        if epoch is not None:  # the reference row has no epoch: metrics.csv trimming keeps it
            logged["epoch"] = float(epoch)
        for logger in trainer.loggers:
            logger.log_metrics(logged, step=trainer.global_step)

    def _warn_collapse(self, head: str, indicators: CollapseIndicators, when: int) -> None:
        if not indicators.collapsed:
            self._collapsed.discard(head)
            return
        if head in self._collapsed:
            return  # warned already; warned again if it recovers and collapses anew
        if when == 0:
            log.info(
                "pretrain monitor: at random initialisation the embedding of head %r spans "
                "few directions (std x sqrt(D) = %.3g, effective rank %.3g of D=%d)",
                head,
                indicators.std_ratio,
                indicators.rank,
                indicators.dim,
            )
            return
        self._collapsed.add(head)
        log.warning(
            "pretrain monitor: the embedding of head %r has collapsed after %d epoch(s) "
            "(std of the normalised embeddings x sqrt(D) = %.3g, collapse below 0.1; "
            "effective rank %.3g of D=%d on %d images, collapse below %.3g): lower the "
            "learning rate or loss.barlow_scale, or check the view augmentations",
            head,
            when,
            indicators.std_ratio,
            indicators.rank,
            indicators.dim,
            indicators.samples,
            indicators.rank_threshold,
        )


def monitor_loaders(datamodule: ImageClassificationDataModule) -> tuple[DataLoader, DataLoader]:
    """Loaders (evaluation transforms, in order, one process) of the labelled training
    images that ``label_fraction`` keeps and of the validation images."""
    datamodule.setup()
    splits = datamodule.splits
    assert splits is not None
    train = splits["train"]
    keep = train["label"] >= 0
    if "labelled" in train:
        keep &= train["labelled"].astype(bool)
    train = train[keep]
    if train.empty:
        raise ConfigError("the pretrain monitor needs labelled training images: there are none")

    def loader(paths: Iterable[str], labels: Iterable[int]) -> DataLoader:
        dataset = ImageDataset(
            list(paths),
            list(labels),
            datamodule.transforms["eval"],
            reader=datamodule.reader,
        )
        workers = datamodule.num_workers
        return SignalSafeDataLoader(
            dataset,
            batch_size=datamodule.eval_batch_size,
            num_workers=workers,
            worker_init_fn=WorkerInit() if workers else None,
        )

    val = splits["val"]
    return (
        loader(train["path"], train["label"].astype(int)),
        loader(val["path"], val["label"].astype(int)),
    )


@torch.no_grad()
def _features(
    net: StagedNet,
    batches: Iterable[Mapping[str, Any]],
    device: torch.device,
    *,
    embeddings: bool,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Backbone features (N, C), labels (N,) and, with ``embeddings``, each head's (N, D)
    embedding of the whole images."""
    dtype = next(net.parameters()).dtype
    rows: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    heads: list[list[torch.Tensor]] = []
    for batch in batches:
        images = batch["image"].to(device=device, dtype=dtype)
        rows.append(net.backbone_features(images).float().cpu())
        labels.append(batch["label"].long())
        if embeddings:
            heads.append([e.float().cpu() for e in net(images).embeddings])
    per_head = [torch.cat(h) for h in zip(*heads, strict=True)] if heads else []
    return torch.cat(rows), torch.cat(labels), per_head


def _cuda_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
