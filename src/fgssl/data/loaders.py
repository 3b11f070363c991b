"""The DataLoaders of the data modules (:class:`DataLoaderHooks`, Lightning's dataloader
hooks), the per-process batch check and the test sampler that never repeats an image under
DDP."""

from __future__ import annotations

import abc
from typing import Any

import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Sampler

from fgssl.data.dataset import ImageDataset
from fgssl.data.imbalance import balancing_weights
from fgssl.data.sampling import EpochSampler, shared_epoch
from fgssl.data.worker_signals import SignalSafeDataLoader, WorkerInit
from fgssl.data.workers import NumWorkers, resolve_num_workers
from fgssl.errors import ConfigError

__all__ = ["DataLoaderHooks", "check_whole_batch", "unrepeated_sampler"]


def check_whole_batch(images: int, batch_size: int, processes: int = 1) -> None:
    """Refuse a training split that gives a process fewer than ``batch_size`` images (the
    incomplete last batch is dropped, so it would train on nothing). Under DDP each of the
    ``processes`` gets ceil(images / processes) images and ``batch_size`` is per process."""
    per_process = -(-images // processes)
    if per_process < batch_size:
        shares = f" ({processes} processes get {per_process} each)" if processes > 1 else ""
        raise ConfigError(
            f"the training split has {images} images{shares}, fewer than batch_size="
            f"{batch_size} per process: lower data.batch_size"
        )


def unrepeated_sampler(dataset: ImageDataset) -> Sampler[int] | None:
    """A sampler giving each process a disjoint share of ``dataset`` (no padding) when
    torch.distributed runs several processes, else None (Lightning's default)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    if torch.distributed.get_world_size() == 1:
        return None
    return UnrepeatedDistributedSampler(dataset, shuffle=False)


class DataLoaderHooks(abc.ABC):
    """Mixin of :class:`~fgssl.data.base.ImageClassificationDataModule`: Lightning's
    dataloader hooks and :meth:`eval_dataloader`, over the module's :meth:`dataset` of each
    split. Every loader is a :class:`~fgssl.data.worker_signals.SignalSafeDataLoader`."""

    batch_size: int
    eval_batch_size: int
    seed: int
    sampler: str | None
    pin_memory: bool
    persistent_workers: bool
    _num_workers: NumWorkers

    @property
    @abc.abstractmethod
    def phase(self) -> str: ...

    @abc.abstractmethod
    def dataset(self, split: str, *, pipeline: str | None = None) -> ImageDataset: ...

    @property
    def num_workers(self) -> int:
        """Dataloader worker processes: the ``num_workers`` setting, with ``"auto"`` sized
        for the devices of the attached trainer (one when there is none)."""
        trainer = self._trainer()
        return resolve_num_workers(
            self._num_workers, trainer.num_devices if trainer is not None else 1
        )

    @num_workers.setter
    def num_workers(self, value: NumWorkers) -> None:
        resolve_num_workers(value)  # refuses a bad value now
        self._num_workers = value

    first_epoch: int = 0
    """The epoch the next fit starts at: 0, or a resumed phase's first epoch (set by
    :func:`fgssl.run.pipeline.fit_phase` from the checkpoint it resumes)."""

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or class-balanced) anew each epoch from (seed, epoch) alone, with
        augmentations seeded per image: a resumed run sees the same data as an
        uninterrupted one.

        The shared epoch starts at the fit's first epoch (:attr:`first_epoch`), not at the
        trainer's: Lightning builds this loader and its iterator before it restores a
        resumed fit's epoch (the optimizers' schedule asks for the number of batches) and
        sets the sampler's epoch only afterwards, when worker processes have already drawn
        the order and begun reading images with the epoch they saw."""
        dataset = self.dataset("train")
        trainer = self._trainer()
        epoch = trainer.current_epoch if trainer is not None else 0
        dataset.epoch = shared_epoch(max(epoch, self.first_epoch))
        weights = None
        if self.sampler == "weighted" and self.phase == "finetune":
            weights = balancing_weights(dataset.labels.tolist())
        sampler = EpochSampler(len(dataset), seed=self.seed, epoch=dataset.epoch, weights=weights)
        # An incomplete last batch is dropped: one image would make batch norm fail. Under
        # DDP each of the W processes gets ceil(N / W) images and batch_size is per process.
        processes = trainer.world_size if trainer is not None else 1
        check_whole_batch(len(dataset), self.batch_size, processes)
        return self._loader(dataset, self.batch_size, drop_last=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        """Each image once under DDP, as :meth:`test_dataloader`: the monitored metric and
        the ordinal thresholds fitted on this split count every image once."""
        dataset = self.dataset("val")
        return self._loader(dataset, self.eval_batch_size, sampler=unrepeated_sampler(dataset))

    def test_dataloader(self) -> DataLoader:
        """Under DDP each image is tested exactly once (Lightning's default sampler pads the
        last batch with repeated images, which would count them twice in the metrics)."""
        dataset = self.dataset("test")
        return self._loader(dataset, self.eval_batch_size, sampler=unrepeated_sampler(dataset))

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("predict"), self.eval_batch_size)

    def eval_dataloader(self, split: str) -> DataLoader:
        """Batches of ``split`` in order, with the evaluation transforms: for evaluating a
        network outside the Trainer (one process)."""
        return SignalSafeDataLoader(
            self.dataset(split, pipeline="eval"),
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
            worker_init_fn=self._worker_init(),
        )

    def _trainer(self) -> Any:
        """The attached Lightning trainer, or None."""
        return getattr(self, "trainer", None)

    def _loader(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        drop_last: bool = False,
        sampler: Sampler[int] | None = None,
    ) -> DataLoader:
        workers = self.num_workers
        return SignalSafeDataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            worker_init_fn=self._worker_init(),
        )

    def _worker_init(self) -> WorkerInit | None:
        """Workers that leave a SIGTERM sent to the whole process group (``timeout``,
        SLURM) to the main process, which ends the run cleanly (see fgssl.data.worker_signals)."""
        if not self.num_workers:
            return None
        trainer = self._trainer()
        return WorkerInit(rank=trainer.global_rank if trainer is not None else 0)
