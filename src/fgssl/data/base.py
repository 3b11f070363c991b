"""The shared machinery of fgssl's data modules: splits, checks, cache, transforms, loaders."""

from __future__ import annotations

import abc
import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from fgssl.conf.resolvers import default_resize_size
from fgssl.data.cache import CacheFormat, ImageCache
from fgssl.data.dataset import ImageDataset
from fgssl.data.duplicates import COLUMN as DUPLICATE_COLUMN
from fgssl.data.duplicates import DuplicateMode, check_duplicates, require_duplicate_mode
from fgssl.data.image_files import drop_missing, drop_unreadable, resolve_images
from fgssl.data.imbalance import balancing_weights, class_weights
from fgssl.data.io import check_bits_stored, read_rgb
from fgssl.data.loaders import check_whole_batch, unrepeated_sampler
from fgssl.data.sampling import EpochSampler, shared_epoch
from fgssl.data.splits import label_subset
from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, finalize, load_pipelines
from fgssl.data.unlabelled import add_unlabelled, exclude_overlap, parse_sources, pretrain_images
from fgssl.data.verify import VERIFY_MODES, VerifyMode
from fgssl.data.worker_signals import SignalSafeDataLoader, WorkerInit
from fgssl.data.workers import NumWorkers, resolve_num_workers
from fgssl.errors import ConfigError, DataLayoutError

__all__ = ["ImageClassificationDataModule", "SplitTables"]

log = logging.getLogger(__name__)

SplitTables = dict[str, pd.DataFrame]
"""Split name -> table with columns ``id``, ``path`` and ``label`` (-1 when unlabelled)."""

REQUIRED_SPLITS = ("train", "val", "test")


class ImageClassificationDataModule(pl.LightningDataModule, abc.ABC):
    """Base class: subclasses read their files in :meth:`read_splits`.

    Batches are dicts with ``image`` (float B x 3 x S x S, normalised), ``label`` (long B),
    ``index`` and, while ``phase == "pretrain"``, ``view`` (the second view).

    Before training (:meth:`setup`), every listed image must exist and pass the
    ``verify_images`` check, else a clear error names the files; with
    ``missing_images="skip"`` they are left out and their count is logged.

    Args:
        root: the dataset folder as downloaded.
        image_size: side of the square crops fed to the network.
        resize_size: short side images are resized to before cropping (default 8/7 of
            ``image_size``, i.e. 256 for 224: :func:`fgssl.conf.resolvers.default_resize_size`);
            smaller than ``image_size`` raises :class:`ConfigError`.
        num_workers: dataloader worker processes per training process, or ``"auto"``
            (default: the available CPUs shared among the devices, one left free, at most
            4; see :func:`fgssl.data.workers.auto_num_workers`).
        bits_stored: the significant bits of 16-bit images (8..16; None: 16), e.g. 12 for
            12-bit scans stored in 16-bit files (see :mod:`fgssl.data.io`).
        transforms: albumentations pipelines by name (``train``, ``eval``, ``view1``,
            ``view2``) replacing the defaults (the ``transforms_preset`` config);
            normalisation and tensor conversion follow.
        seed: seeds the splits, the label subset and the sampler.
        missing_images: ``"error"`` (default) or ``"skip"``: what to do with listed images
            that are missing, corrupt or truncated.
        verify_images: ``"header"`` (default: a fast check of each file's signature and
            ending, which truncated files fail), ``"decode"`` (decode every image; with a
            cache this fills it) or ``"none"``.
        cache_dir: a folder for the image cache (:class:`~fgssl.data.cache.ImageCache`),
            or None for no cache.
        cache_size: short side of cached images (default: twice ``image_size``, at least
            ``resize_size``; smaller than ``resize_size`` raises :class:`ConfigError`).
        cache_format: ``"npy"`` (lossless, default) or ``"jpg"`` (about 10x smaller).
        label_fraction: share of the training labels the finetune phase keeps (seeded,
            stratified, at least one image per class); the pretrain phase uses every
            training image.
        sampler: None (shuffle) or ``"weighted"``: the finetune phase draws training images
            with probabilities inverse to their class frequency.
        phase: ``"pretrain"`` (batches get a second view) or ``"finetune"``.
        duplicates: byte-identical image files under different names (see
            :mod:`fgssl.data.duplicates`): ``"warn"`` (default) logs those that fall in
            different splits and ``split.csv`` marks them (``duplicate_group``); ``"error"``
            refuses them; both keep them on one side of splits drawn from the training
            images. ``"ignore"`` reads no file for it.
        unlabelled: extra images for the pretrain phase only: a folder (recursively) or a
            CSV with a path column, or a list of them (see :mod:`fgssl.data.unlabelled`);
            the ``unlabelled`` split. None of them may be a validation or test image.
        unlabelled_own: also pretrain on the dataset's own unlabelled images (its
            ``predict`` split, e.g. APTOS ``test.csv``).
    """

    class_names: Sequence[str] = ()
    ordinal: bool = False
    official_metric: str = "balanced_acc"
    """Key of the validation metric the dataset's benchmark ranks by."""
    transforms_preset: str = "default"
    """The shipped transforms config (``conf/data/transforms``) used by default."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        image_size: int = 224,
        resize_size: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: NumWorkers = "auto",
        seed: int = 0,
        transforms: Mapping[str, Callable[..., Any]] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        phase: Literal["pretrain", "finetune"] = "finetune",
        missing_images: Literal["error", "skip"] = "error",
        verify_images: VerifyMode = "header",
        cache_dir: str | os.PathLike[str] | None = None,
        cache_size: int | None = None,
        cache_format: CacheFormat = "npy",
        label_fraction: float = 1.0,
        sampler: Literal["weighted"] | None = None,
        bits_stored: int | None = None,
        duplicates: DuplicateMode = "warn",
        unlabelled: Any = None,
        unlabelled_own: bool = False,
    ):
        super().__init__()
        self.root = Path(root).expanduser()
        self.image_size = image_size
        self.resize_size = resize_size or default_resize_size(image_size)
        if self.resize_size < image_size:
            raise ConfigError(
                f"data.resize_size={self.resize_size} is smaller than data.image_size="
                f"{image_size}: images would be enlarged again to be cropped; leave "
                f"data.resize_size unset (8/7 of data.image_size: "
                f"{default_resize_size(image_size)}) or set it >= {image_size}"
            )
        self.bits_stored = check_bits_stored(bits_stored)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        resolve_num_workers(num_workers)  # refuses a bad value now
        self._num_workers: NumWorkers = num_workers
        self.seed = seed
        pipelines = load_pipelines(self.transforms_preset, self.image_size, self.resize_size)
        pipelines.update(transforms or {})
        self.mean, self.std = tuple(mean), tuple(std)
        self.transforms = finalize(pipelines, mean=mean, std=std)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers
        """Keep the workers between epochs (when there are any)."""
        self.phase = phase
        if missing_images not in ("error", "skip"):
            raise ConfigError(f"missing_images must be 'error' or 'skip', got {missing_images!r}")
        if verify_images not in VERIFY_MODES:
            raise ConfigError(
                f"verify_images must be one of {list(VERIFY_MODES)}, got {verify_images!r}"
            )
        if not 0 < label_fraction <= 1:
            raise ConfigError(f"label_fraction must be in (0, 1], got {label_fraction}")
        if sampler not in (None, "weighted"):
            raise ConfigError(f"sampler must be null or 'weighted', got {sampler!r}")
        self.missing_images = missing_images
        self.duplicates = require_duplicate_mode(duplicates)
        self.verify_images: VerifyMode = verify_images
        self.label_fraction = label_fraction
        self.sampler = sampler
        self.unlabelled = parse_sources(unlabelled)
        self.unlabelled_own = bool(unlabelled_own)
        self.cache = self._make_cache(cache_dir, cache_size, cache_format)
        self.verify_workers: int | None = None
        """Threads that check the images in :meth:`setup` (None: CPU count, at most 16)."""
        self.verify_progress: Callable[[int, int], None] | None = None
        """Called with (done, total) as :meth:`setup` checks the images (fgssl-prepare's
        progress bar)."""
        self.unreadable: dict[str, str] = {}
        """The images :meth:`setup` found unreadable (path -> reason), left out under
        ``missing_images="skip"``."""
        self.splits: SplitTables | None = None

    def _make_cache(
        self, folder: str | os.PathLike[str] | None, size: int | None, fmt: CacheFormat
    ) -> ImageCache | None:
        if folder is None or str(folder) == "":
            return None
        size = size or max(2 * self.image_size, self.resize_size)
        if size < self.resize_size:
            raise ConfigError(
                f"data.cache_size={size} is smaller than data.resize_size={self.resize_size}: "
                "cached images would be enlarged again; raise data.cache_size or leave it "
                "unset (twice data.image_size)"
            )
        return ImageCache(folder, size, fmt=fmt, bits_stored=self.bits_stored)

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def read_splits(self) -> SplitTables:
        """Read the files and return the ``train``, ``val``, ``test`` (and optionally
        ``predict``) tables, raising a clear error for anything malformed.

        :meth:`resolve_images` finds the image files of listed ids and applies the
        ``missing_images`` policy; :func:`fgssl.data.splits.assemble_splits` makes the
        splits the dataset does not provide.
        """

    # ----------------------------------------------------------------------- public
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        if value not in ("pretrain", "finetune"):
            raise ValueError(f"phase must be 'pretrain' or 'finetune', got {value!r}")
        self._phase = value

    @property
    def num_workers(self) -> int:
        """Dataloader worker processes: the ``num_workers`` setting, with ``"auto"`` sized
        for the devices of the attached trainer (one when there is none)."""
        trainer = getattr(self, "trainer", None)
        return resolve_num_workers(
            self._num_workers, trainer.num_devices if trainer is not None else 1
        )

    @num_workers.setter
    def num_workers(self, value: NumWorkers) -> None:
        resolve_num_workers(value)
        self._num_workers = value

    @property
    def reader(self) -> Callable[[str | os.PathLike[str]], np.ndarray]:
        """Decodes an image file into RGB uint8 by the rule of :mod:`fgssl.data.io`
        (through the cache when there is one)."""
        if self.cache is not None:
            return self.cache
        return functools.partial(read_rgb, bits_stored=self.bits_stored)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        splits = add_unlabelled(
            self.read_splits(),
            self.unlabelled,
            own=self.unlabelled_own,
            missing_images=self.missing_images,
            dataset=type(self).__name__,
        )
        splits = self._drop_unreadable(splits)
        for name in REQUIRED_SPLITS:
            if name not in splits or splits[name].empty:
                raise DataLayoutError(
                    f"{type(self).__name__} found no images for the {name!r} split in "
                    f"{str(self.root)!r}"
                )
        splits = exclude_overlap(splits, own=self.unlabelled_own)  # never val/test images
        splits = check_duplicates(splits, self.duplicates)
        train = splits["train"]
        labelled = label_subset(train["label"].tolist(), self.label_fraction, seed=self.seed)
        splits["train"] = train.assign(labelled=labelled)
        self.splits = splits
        sizes = ", ".join(f"{name} {len(table)}" for name, table in splits.items())
        log.info("%s: %s images", type(self).__name__, sizes)
        if self.label_fraction < 1:
            log.info(
                "label_fraction=%s: finetuning on %d of %d labelled training images",
                self.label_fraction,
                int(labelled.sum()),
                len(labelled),
            )

    def split_table(self) -> pd.DataFrame:
        """One row per image: ``id``, ``label``, ``split`` (train/val/test/predict, and
        ``unlabelled`` for the extra pretraining images of ``data.unlabelled``),
        ``labelled`` (False for unlabelled images and for training images whose label
        ``label_fraction`` held back from finetuning) and, unless ``duplicates="ignore"``,
        ``duplicate_group`` (shared by byte-identical files, empty for the others)."""
        splits = self._ready_splits()
        frames = []
        for name, table in splits.items():
            labelled = table["labelled"] if "labelled" in table else table["label"] >= 0
            frames.append(table.assign(split=name, labelled=labelled))
        columns = ["id", "label", "split", "labelled"]
        if DUPLICATE_COLUMN in frames[0]:
            columns.append(DUPLICATE_COLUMN)
        return pd.concat(frames, ignore_index=True)[columns]

    def write_split(self, path: str | Path) -> Path:
        """Write :meth:`split_table` as CSV to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.split_table().to_csv(path, index=False)
        return path

    def table(self, split: str) -> pd.DataFrame:
        """The images of ``split`` as the current phase uses them: in the finetune phase,
        the training split keeps only the images whose label ``label_fraction`` kept; in
        the pretrain phase it holds every training image and the unlabelled ones
        (:func:`fgssl.data.unlabelled.pretrain_images`)."""
        splits = self._ready_splits()
        if split not in splits:
            raise KeyError(f"{type(self).__name__} has no {split!r} split: {list(splits)}")
        if split == "train" and self.phase == "pretrain":
            return pretrain_images(splits, own=self.unlabelled_own)
        table = splits[split]
        if split == "train" and self.phase == "finetune":
            table = table[table["labelled"]]
        return table

    def dataset(self, split: str, *, pipeline: str | None = None) -> ImageDataset:
        """The dataset of ``split`` with the transforms of the current phase."""
        table = self.table(split)
        view = None
        if pipeline is None:
            if split == "train" and self.phase == "pretrain":
                pipeline, view = "view1", self.transforms["view2"]
            else:
                pipeline = "train" if split == "train" else "eval"
        return ImageDataset(
            table["path"].tolist(),
            table["label"].tolist(),
            self.transforms[pipeline],
            view,
            reader=self.reader,
            seed=self.seed if split == "train" else None,
        )

    def class_counts(self) -> np.ndarray:
        """Images per class in the finetune phase's training set."""
        splits = self._ready_splits()
        train = splits["train"]
        labels = train.loc[train["labelled"], "label"].to_numpy()
        return np.bincount(labels, minlength=self.num_classes)

    def class_weights(self, method: str | Sequence[float] | None) -> list[float] | None:
        """Cross-entropy class weights for the finetune training labels (``loss.class_weights``:
        None, ``"balanced"`` or one weight per class; see
        :func:`fgssl.data.imbalance.class_weights`)."""
        return class_weights(method, self.class_counts(), self.class_names)

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or class-balanced) anew each epoch from (seed, epoch) alone, with
        augmentations seeded per image: a resumed run sees the same data as an
        uninterrupted one."""
        dataset = self.dataset("train")
        trainer = getattr(self, "trainer", None)
        dataset.epoch = shared_epoch(trainer.current_epoch if trainer is not None else 0)
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
        return self._loader(self.dataset("val"), self.eval_batch_size)

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

    # ------------------------------------------------------------- for subclasses
    def resolve_images(
        self,
        table: pd.DataFrame,
        folders: Sequence[Path],
        *,
        source: Path,
        ignore: str | None = None,
    ) -> pd.DataFrame:
        """Add the ``path`` of each row's ``<id>.<image extension>`` found in ``folders``.

        Ids without a file raise :class:`MissingImagesError` naming the first few and their
        count, or, with ``missing_images="skip"``, are left out with a logged count; ids
        that name several files (``x.png`` and ``x.jpg``) raise :class:`DataLayoutError`.
        ``source`` names the file that listed them; ``ignore`` is a regular expression of
        file stems that are not images of the dataset.
        """
        return resolve_images(
            table, folders, source=source, ignore=ignore, missing_images=self.missing_images
        )

    def drop_missing(self, frame: pd.DataFrame, *, source: Path, expected: str) -> pd.DataFrame:
        """Apply the ``missing_images`` policy to the rows of ``frame`` whose ``path`` is
        None (their image file was not found)."""
        return drop_missing(
            frame, source=source, expected=expected, missing_images=self.missing_images
        )

    # -------------------------------------------------------------------- internals
    def _ready_splits(self) -> SplitTables:
        self.setup()
        assert self.splits is not None
        return self.splits

    def _drop_unreadable(self, splits: SplitTables) -> SplitTables:
        kept, self.unreadable = drop_unreadable(
            splits,
            mode=self.verify_images,
            reader=self.reader,
            bits_stored=self.bits_stored,
            workers=self.verify_workers,
            progress=self.verify_progress,
            missing_images=self.missing_images,
        )
        return kept

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
        trainer = getattr(self, "trainer", None)
        return WorkerInit(rank=trainer.global_rank if trainer is not None else 0)
