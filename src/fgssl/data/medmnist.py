"""MedMNIST v2 and MedMNIST+ (Yang et al., Sci Data 10, 41, 2023; Doerrich et al. 2024):
the 2D single-label datasets, read from their official ``.npz`` files with their official
splits.

Layout: the files as the MedMNIST site (zenodo.org/records/10519652) and the ``medmnist``
package name them, one per dataset and size::

    root/dermamnist.npz        28 px   (MedMNIST v2)
    root/dermamnist_64.npz     64 px   (MedMNIST+; also _128, _224)

each holding ``train_images``, ``val_images``, ``test_images`` (uint8, N x H x W for grey
images or N x H x W x 3 for colour) and ``train_labels``, ``val_labels``, ``test_labels``
(N x 1 integer class indices). The ``medmnist`` package downloads them at run time; fgssl
reads local files only.

fgssl's pipeline reads image files (checks, cache, duplicates, ``split.csv``,
``fgssl-predict``), so the arrays are written once as PNG files, ``<split>/<index>.png``
(index zero-padded, the row of the array), into ``extract_dir``; a changed ``.npz`` (path,
size or modification time) is extracted anew. Ids are ``<split>/<index>``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from fgssl.data.base import ImageClassificationDataModule, SplitTables
from fgssl.data.icdr import ICDR_GRADES
from fgssl.data.tables import require_file
from fgssl.errors import ConfigError, DataLayoutError

__all__ = ["DATASETS", "MedMNISTDataModule", "MedMNISTInfo", "npz_name", "save_npz"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SIZES = (28, 64, 128, 224)


@dataclass(frozen=True)
class MedMNISTInfo:
    """A 2D MedMNIST dataset: its classes in label order, whether they are grades, and its
    official split sizes (train, val, test; the ``medmnist`` package's ``INFO``)."""

    classes: tuple[str, ...]
    samples: tuple[int, int, int]
    ordinal: bool = False


_ORGANS = (
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver",
    "lung-left", "lung-right", "pancreas", "spleen",
)  # fmt: skip
DATASETS: dict[str, MedMNISTInfo] = {
    "pathmnist": MedMNISTInfo(
        (
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ),
        (89996, 10004, 7180),
    ),
    "dermamnist": MedMNISTInfo(
        (
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ),
        (7007, 1003, 2005),
    ),
    "octmnist": MedMNISTInfo(
        ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
        (97477, 10832, 1000),
    ),
    "pneumoniamnist": MedMNISTInfo(("normal", "pneumonia"), (4708, 524, 624)),
    # DeepDRiD's grades are the ICDR scale: named as fgssl's other DR readers name them
    "retinamnist": MedMNISTInfo(ICDR_GRADES, (1080, 120, 400), ordinal=True),
    "breastmnist": MedMNISTInfo(("malignant", "normal, benign"), (546, 78, 156)),
    "bloodmnist": MedMNISTInfo(
        (
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ),
        (11959, 1712, 3421),
    ),
    "tissuemnist": MedMNISTInfo(
        (
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ),
        (165466, 23640, 47280),
    ),
    "organamnist": MedMNISTInfo(_ORGANS, (34561, 6491, 17778)),
    "organcmnist": MedMNISTInfo(_ORGANS, (12975, 2392, 8216)),
    "organsmnist": MedMNISTInfo(_ORGANS, (13932, 2452, 8827)),
}
"""The 2D single-label MedMNIST datasets by their MedMNIST flag."""
MULTI_LABEL = {"chestmnist": "ChestMNIST is multi-label (14 findings per image)"}


def npz_name(flag: str, size: int) -> str:
    """The official file name: ``<flag>.npz`` at 28 px, ``<flag>_<size>.npz`` above."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def save_npz(
    path: str | os.PathLike[str],
    images: dict[str, np.ndarray],
    labels: dict[str, Sequence[int] | np.ndarray],
) -> Path:
    """Write a ``.npz`` in the official MedMNIST format: ``<split>_images`` (uint8, N x H x W
    [x 3]) and ``<split>_labels`` (N x 1, int) for train, val and test (e.g. to turn other
    data into MedMNIST's format, or for tests)."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        arrays[f"{split}_images"] = np.asarray(images[split], dtype=np.uint8)
        arrays[f"{split}_labels"] = np.asarray(labels[split], dtype=np.uint8).reshape(-1, 1)
    path = Path(path)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    return path


class MedMNISTDataModule(ImageClassificationDataModule):
    """A 2D MedMNIST dataset from its official ``.npz`` (see the module docstring), with the
    official train / val / test splits.

    The official metric (the best checkpoint) is AUROC, as the MedMNIST benchmark selects
    its models by validation AUC; RetinaMNIST's grades are ordinal (kappa is reported too).

    Args:
        root: the folder holding the ``.npz`` files, or one ``.npz`` file.
        flag: the dataset, a key of :data:`DATASETS` (``dermamnist``, ``retinamnist``, ...).
        size: the files' image size: 28 (``<flag>.npz``), 64, 128 or 224
            (``<flag>_<size>.npz``); unused when ``root`` is a file. The network's input
            size is ``image_size`` (images are resized to it, as MedMNIST's 28 -> 224 runs).
        extract_dir: where the images are written as PNG files (default
            ``$FGSSL_CACHE_DIR/medmnist``, else ``~/.cache/fgssl/medmnist``).
        **kwargs: see :class:`ImageClassificationDataModule`.

    Raises:
        ConfigError: an unknown or multi-label ``flag`` (ChestMNIST), an unknown ``size``.
        DataLayoutError: a file without the official arrays, labels out of range, a
            split whose images and labels differ in number.
    """

    official_metric = "auroc"
    transforms_preset = "medmnist"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        flag: str = "dermamnist",
        size: int = 28,
        extract_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ):
        if flag in MULTI_LABEL:
            raise ConfigError(
                f"data.flag={flag}: {MULTI_LABEL[flag]}; fgssl trains single-label classifiers"
            )
        if flag not in DATASETS:
            raise ConfigError(f"data.flag={flag!r}: expected one of {sorted(DATASETS)}")
        if size not in SIZES:
            raise ConfigError(f"data.size={size}: MedMNIST files come in sizes {list(SIZES)}")
        super().__init__(root, **kwargs)
        self.flag, self.size = flag, size
        self.info = DATASETS[flag]
        self.class_names = self.info.classes
        self.ordinal = self.info.ordinal
        default = Path(os.environ.get("FGSSL_CACHE_DIR", "~/.cache/fgssl")) / "medmnist"
        self.extract_dir = Path(extract_dir or default).expanduser()

    @property
    def npz_path(self) -> Path:
        """The ``.npz`` file read."""
        if self.root.suffix == ".npz":
            return require_file(self.root, f"MedMNIST {self.flag} file")
        name = npz_name(self.flag, self.size)
        return require_file(self.root / name, f"MedMNIST {self.flag} file ({self.size} px)")

    def read_splits(self) -> SplitTables:
        npz = self.npz_path
        with np.load(npz) as arrays:
            labels = {split: self._labels(arrays, split, npz) for split in SPLITS}
            folder = self._extracted(npz, arrays)
        tables = {}
        for split in SPLITS:
            ids = [f"{split}/{i:06d}" for i in range(len(labels[split]))]
            tables[split] = pd.DataFrame(
                {
                    "id": ids,
                    "label": labels[split],
                    "path": [str(folder / f"{i}.png") for i in ids],
                }
            )
        expected = dict(zip(SPLITS, self.info.samples, strict=True))
        found = {split: len(labels[split]) for split in SPLITS}
        if found != expected:
            log.info("%s: split sizes %s (the official files: %s)", npz.name, found, expected)
        return tables

    def _labels(self, arrays: Any, split: str, npz: Path) -> np.ndarray:
        for key in (f"{split}_images", f"{split}_labels"):
            if key not in arrays.files:
                raise DataLayoutError(
                    f"{str(npz)!r} has no array {key!r}: expected the official MedMNIST "
                    f"arrays {[f'{s}_{k}' for s in SPLITS for k in ('images', 'labels')]}, "
                    f"found {sorted(arrays.files)}"
                )
        labels = np.asarray(arrays[f"{split}_labels"])
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise DataLayoutError(
                f"{str(npz)!r}: {split}_labels has shape {labels.shape}, {labels.shape[1]} "
                "labels per image (a multi-label dataset); fgssl trains single-label classifiers"
            )
        labels = labels.reshape(-1).astype(np.int64)
        classes = len(self.class_names)
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise DataLayoutError(
                f"{str(npz)!r}: {split}_labels holds values in [{labels.min()}, {labels.max()}]; "
                f"{self.flag} has {classes} classes (0..{classes - 1})"
            )
        shape = arrays[f"{split}_images"].shape
        if shape[0] != len(labels) or len(shape) not in (3, 4):
            raise DataLayoutError(
                f"{str(npz)!r}: {split}_images has shape {shape} for {len(labels)} labels: "
                "expected N x H x W or N x H x W x 3"
            )
        return labels

    def _extracted(self, npz: Path, arrays: Any) -> Path:
        """The folder of PNG files of ``npz``, written on first use (atomically: a
        temporary folder renamed into place, so concurrent processes may race)."""
        stat = npz.stat()
        key = f"{npz.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
        folder = self.extract_dir / f"{npz.stem}-{hashlib.blake2b(key, digest_size=6).hexdigest()}"
        if folder.is_dir():
            return folder
        self.extract_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{npz.stem}-", dir=self.extract_dir))
        count = 0
        for split in SPLITS:
            (staging / split).mkdir()
            for index, image in enumerate(arrays[f"{split}_images"]):
                pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(staging / split / f"{index:06d}.png"), pixels)
                count += 1
        try:
            staging.rename(folder)
            log.info("%s: %d images written as PNG files to %s", npz.name, count, folder)
        except OSError:  # another process was faster: use its folder
            shutil.rmtree(staging, ignore_errors=True)
        return folder
