"""The base of fgssl's data modules: options, reading and checking the splits, the split
table. What each phase reads is :mod:`fgssl.data.phases`; the dataloaders,
:mod:`fgssl.data.loaders`."""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch

from fgssl.data.cache import CacheFormat
from fgssl.data.disjoint import require_disjoint_splits
from fgssl.data.draws import label_subset
from fgssl.data.duplicates import DuplicateMode, check_duplicates, require_duplicate_mode
from fgssl.data.folds import check_folds
from fgssl.data.image_files import ImageLookup
from fgssl.data.io import check_bits_stored
from fgssl.data.loaders import DataLoaderHooks
from fgssl.data.options import check_policies, check_resize_size, make_reading
from fgssl.data.phases import DataPhase, PhaseTables
from fgssl.data.preprocess import Preprocessing
from fgssl.data.split_record import SplitRecord
from fgssl.data.splits import SplitTables
from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, finalize, load_pipelines
from fgssl.data.unlabelled import add_unlabelled, exclude_overlap
from fgssl.data.unlabelled_sources import parse_sources
from fgssl.data.verify import VerifyMode
from fgssl.data.workers import NumWorkers
from fgssl.errors import DataLayoutError

__all__ = ["ImageClassificationDataModule", "SplitTables"]

log = logging.getLogger(__name__)

REQUIRED_SPLITS = ("train", "val", "test")


class ImageClassificationDataModule(
    PhaseTables, SplitRecord, DataLoaderHooks, ImageLookup, pl.LightningDataModule
):
    """Base class: subclasses read their files in :meth:`read_splits`.

    Batches are dicts with ``image`` (float B x 3 x S x S, normalised), ``label`` (long B),
    ``index`` and, while ``phase == "pretrain"``, ``view`` (the second view).

    Before training (:meth:`setup`), no image file may be in two of the train, val and
    test splits (:func:`fgssl.data.disjoint.require_disjoint_splits`), and every listed
    image must exist and pass the ``verify_images`` check, else a clear error names the
    files; with ``missing_images="skip"`` they are left out and their count is logged.

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
        preprocess: the preprocessing applied to each image as it is read or cached
            (:mod:`fgssl.data.preprocess`).
        preprocess_radius: the fundus preprocessings' retina radius.
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
        folds: the number of cross-validation folds of the training images (default 5;
            :mod:`fgssl.data.folds`).
        fold: validate on this fold of ``folds``; only readers that draw their splits take
            ``folds`` and ``fold``.
    """

    class_names: Sequence[str] = ()
    ordinal: bool = False
    official_metric: str = "balanced_acc"
    """Key of the validation metric the dataset's benchmark ranks by."""
    transforms_preset: str = "default"
    """The shipped transforms config (``conf/data/transforms``) used by default."""
    verify_workers: int | None = None
    """Threads that check the images in :meth:`setup` (None: CPU count, at most 16)."""
    verify_progress: Callable[[int, int], None] | None = None
    """Called with (done, total) as :meth:`setup` checks the images (fgssl-prepare's
    progress bar)."""
    draws_splits: bool = False
    """Whether the reader draws its validation split (and takes ``fold``)."""
    unreadable: dict[str, str]
    """The images :meth:`setup` found unreadable (path -> reason), left out under
    ``missing_images="skip"``."""

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
        phase: DataPhase = "finetune",
        missing_images: Literal["error", "skip"] = "error",
        verify_images: VerifyMode = "header",
        cache_dir: str | os.PathLike[str] | None = None,
        cache_size: int | None = None,
        cache_format: CacheFormat = "npy",
        label_fraction: float = 1.0,
        sampler: Literal["weighted"] | None = None,
        bits_stored: int | None = None,
        preprocess: str | None = None,
        preprocess_radius: int | None = None,
        duplicates: DuplicateMode = "warn",
        unlabelled: Any = None,
        unlabelled_own: bool = False,
        folds: int | None = None,
        fold: int | None = None,
    ):
        super().__init__()
        self.root = Path(root).expanduser()
        self.seed = seed
        self.image_size = image_size
        self.resize_size = check_resize_size(image_size, resize_size)
        self.bits_stored = check_bits_stored(bits_stored)
        self.mean, self.std = tuple(mean), tuple(std)
        pipelines = load_pipelines(self.transforms_preset, image_size, self.resize_size)
        self.transforms = finalize({**pipelines, **(transforms or {})}, mean=mean, std=std)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers  # refuses a bad value now
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers
        """Keep the workers between epochs (when there are any)."""
        self.enter_phase(phase)
        self._set_policies(
            missing_images, verify_images, duplicates, label_fraction, sampler, folds, fold
        )
        self.unlabelled = parse_sources(unlabelled)
        self.unlabelled_own = bool(unlabelled_own)
        self._plain_reader, self.cache = make_reading(
            self.bits_stored, preprocess, preprocess_radius, image_size, self.resize_size,
            cache_dir, cache_size, cache_format,
        )  # fmt: skip
        self.unreadable: dict[str, str] = {}
        self.splits: SplitTables | None = None

    def _set_policies(
        self,
        missing_images: Literal["error", "skip"],
        verify_images: VerifyMode,
        duplicates: DuplicateMode,
        label_fraction: float,
        sampler: Literal["weighted"] | None,
        folds: int | None,
        fold: int | None,
    ) -> None:
        """The policies of reading the images (``missing_images``, ``verify_images``,
        ``duplicates``) and of drawing the splits (``label_fraction``, ``sampler``, ``folds``
        and ``fold``), each checked: :class:`ConfigError` naming the key of a bad value."""
        check_policies(missing_images, verify_images, label_fraction, sampler)
        self.missing_images = missing_images
        self.duplicates = require_duplicate_mode(duplicates)
        self.verify_images: VerifyMode = verify_images
        self.label_fraction = label_fraction
        self.sampler = sampler
        self.folds, self.fold = check_folds(folds, fold, reader=self)

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def read_splits(self) -> SplitTables:
        """Read the files and return the ``train``, ``val``, ``test`` (and optionally
        ``predict``) tables, raising a clear error for anything malformed.

        :meth:`resolve_images` (:class:`~fgssl.data.image_files.ImageLookup`) finds the
        image files of listed ids and applies the ``missing_images`` policy;
        :func:`fgssl.data.splits.assemble_splits` makes the splits the dataset does not
        provide.
        """

    # ----------------------------------------------------------------------- public
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def known_class_names(self) -> Sequence[str] | None:
        """The class names if they are known without reading the data (a dataset's fixed
        classes, or given in the config); None when only the data can tell them."""
        return tuple(self.class_names)

    @property
    def preprocess(self) -> Preprocessing | None:
        """The preprocessing applied to each image as it is read (``data.preprocess``)."""
        return self._plain_reader.preprocess

    @property
    def reader(self) -> Callable[[str | os.PathLike[str]], np.ndarray]:
        """Decodes an image file into RGB uint8 by the rule of :mod:`fgssl.data.io` and
        preprocesses it (through the cache when there is one)."""
        return self._plain_reader if self.cache is None else self.cache

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        read = self.read_splits()
        require_disjoint_splits(read)  # however a reader made them: no image in two splits
        splits = add_unlabelled(
            read,
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

    def reread(
        self,
        *,
        verify_images: VerifyMode | None = None,
        workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> SplitTables:
        """Read and check the dataset's files again, as :meth:`setup` does the first time,
        and return the split tables: the images are checked by ``verify_images`` (None: the
        current setting; given, it becomes the setting) with ``workers`` threads, and
        ``progress`` is called with (done, total) meanwhile (fgssl-prepare's decoding)."""
        if verify_images is not None:
            check_policies(self.missing_images, verify_images, self.label_fraction, self.sampler)
            self.verify_images = verify_images
        self.verify_workers, self.verify_progress = workers, progress
        self.splits = None
        try:
            return self._ready_splits()
        finally:
            self.verify_progress = None

    # -------------------------------------------------------------------- internals
    def _ready_splits(self) -> SplitTables:
        self.setup()
        assert self.splits is not None
        return self.splits
