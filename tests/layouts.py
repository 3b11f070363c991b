"""Small dataset trees in the exact official layouts (see ../shared/DATASETS.md), for tests.

Images are tiny (a few dozen pixels) and coloured by class; everything else (file and
folder names, CSV headers and value formats, the extra files that sit among the images)
is as downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

ISIC2018_CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
# Training images per class, imbalanced like the real set (NV the majority).
ISIC2018_TRAIN_COUNTS = {"MEL": 6, "NV": 16, "BCC": 4, "AKIEC": 3, "BKL": 6, "DF": 3, "VASC": 3}


def write_image(
    path: Path, label: int, rng: np.random.Generator, size: tuple[int, int] = (40, 30)
) -> None:
    """A small RGB image whose colour says its class, written in the format of its suffix."""
    width, height = size
    base = np.array([40 * (label % 6) + 20, 200 - 25 * (label % 7), 60 + 30 * (label % 5)])
    image = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[..., ::-1]), path


def write_extras(folder: Path) -> None:
    """The ATTRIBUTION and LICENSE files the ISIC archives put in their folders."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ATTRIBUTION.txt").write_text("ISIC Archive contributors\n")
    (folder / "LICENSE.txt").write_text("CC BY-NC 4.0\n")


def one_hot_rows(ids: list[str], labels: list[int], classes: tuple[str, ...]) -> pd.DataFrame:
    """Ground truth as the ISIC CSVs write it: one-hot floats, e.g. 0.0,1.0,0.0,..."""
    rows = np.zeros((len(ids), len(classes)))
    rows[np.arange(len(ids)), labels] = 1.0
    table = pd.DataFrame(rows, columns=list(classes)).map(lambda v: f"{v:.1f}")
    table.insert(0, "image", ids)
    return table


@dataclass
class ISIC2018Tree:
    root: Path
    labels: dict[str, int] = field(default_factory=dict)
    """image id -> class index, every split."""
    lesions: dict[str, str] = field(default_factory=dict)
    """training image id -> lesion id."""
    train_ids: list[str] = field(default_factory=list)
    val_ids: list[str] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)
    """The test images that count (ISIC_0035068 is listed but left out)."""


def _isic2018_training(seed: int) -> tuple[list[str], list[int], list[str]]:
    """Training ids, labels and lesion ids: most lesions have 1 image, some 2 or 3."""
    rng = np.random.default_rng(seed)
    ids, labels, lesions = [], [], []
    number, lesion = 24306, 0
    for label, name in enumerate(ISIC2018_CLASSES):
        left = ISIC2018_TRAIN_COUNTS[name]
        while left:
            images = min(left, int(rng.choice([1, 1, 2, 3])))
            for _ in range(images):
                ids.append(f"ISIC_{number:07d}")
                labels.append(label)
                lesions.append(f"HAM_{lesion:07d}")
                number += 1
            left -= images
            lesion += 1
    order = rng.permutation(len(ids))
    return [ids[i] for i in order], [labels[i] for i in order], [lesions[i] for i in order]


def make_isic2018(
    root: Path, *, groupings: bool = True, validation: bool = True, test: bool = True, seed: int = 0
) -> ISIC2018Tree:
    """The official ISIC 2018 Task 3 layout, including the ATTRIBUTION/LICENSE files and a
    test ground truth that lists ISIC_0035068 without its image."""
    rng = np.random.default_rng(seed)
    tree = ISIC2018Tree(root)
    ids, labels, lesions = _isic2018_training(seed)
    splits = {"Training": (ids, labels)}
    if validation:
        splits["Validation"] = ([f"ISIC_{34321 + i:07d}" for i in range(7)], list(range(7)))
    if test:
        test_ids = [f"ISIC_{34524 + i:07d}" for i in range(9)] + ["ISIC_0035068"]
        splits["Test"] = (test_ids, [i % 7 for i in range(9)] + [1])
    for split, (split_ids, split_labels) in splits.items():
        images = root / f"ISIC2018_Task3_{split}_Input"
        truth = root / f"ISIC2018_Task3_{split}_GroundTruth"
        write_extras(images)
        write_extras(truth)
        for image_id, label in zip(split_ids, split_labels, strict=True):
            if image_id != "ISIC_0035068":  # missing from some copies, as here
                write_image(images / f"{image_id}.jpg", label, rng)
        one_hot_rows(split_ids, split_labels, ISIC2018_CLASSES).to_csv(
            truth / f"ISIC2018_Task3_{split}_GroundTruth.csv", index=False
        )
        tree.labels.update(zip(split_ids, split_labels, strict=True))
    tree.train_ids = ids
    tree.lesions = dict(zip(ids, lesions, strict=True))
    tree.val_ids = splits["Validation"][0] if validation else []
    tree.test_ids = [i for i in splits["Test"][0] if i != "ISIC_0035068"] if test else []
    if groupings:
        pd.DataFrame(
            {
                "image": ids,
                "lesion_id": lesions,
                "diagnosis_confirm_type": rng.choice(["histopathology", "follow_up"], len(ids)),
            }
        ).to_csv(root / "ISIC2018_Task3_Training_LesionGroupings.csv", index=False)
    return tree


def make_ham10000(root: Path, *, seed: int = 0) -> ISIC2018Tree:
    """The HAM10000 layout (Kaggle / Dataverse): two image folders and the metadata CSV."""
    rng = np.random.default_rng(seed)
    ids, labels, lesions = _isic2018_training(seed)
    for index, (image_id, label) in enumerate(zip(ids, labels, strict=True)):
        part = "HAM10000_images_part_1" if index % 2 else "HAM10000_images_part_2"
        write_image(root / part / f"{image_id}.jpg", label, rng)
    (root / "HAM10000_images_part_1").mkdir(parents=True, exist_ok=True)
    (root / "HAM10000_images_part_2").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "lesion_id": lesions,
            "image_id": ids,
            "dx": [ISIC2018_CLASSES[label].lower() for label in labels],
            "dx_type": "histo",
            "age": "50.0",
            "sex": rng.choice(["male", "female"], len(ids)),
            "localization": "back",
        }
    ).to_csv(root / "HAM10000_metadata.csv", index=False)
    tree = ISIC2018Tree(root, train_ids=ids)
    tree.labels = dict(zip(ids, labels, strict=True))
    tree.lesions = dict(zip(ids, lesions, strict=True))
    return tree


ISIC2017_SPLITS = {
    "train": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part3_GroundTruth.csv", 30),
    "val": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part3_GroundTruth.csv", 9),
    "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part3_GroundTruth.csv", 12),
}


def make_isic2017(root: Path, *, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The official ISIC 2017 Part 3 layout: JPEGs with their superpixel PNGs and the
    metadata CSV in each image folder, and a ground-truth CSV per split. Returns the
    ground truth of each split."""
    rng = np.random.default_rng(seed)
    truths = {}
    number = 0
    for split, (folder, csv_name, count) in ISIC2017_SPLITS.items():
        images = root / folder
        ids = [f"ISIC_{number + i:07d}" for i in range(count)]
        number += count
        kind = np.arange(count) % 3  # 0 melanoma, 1 seborrheic keratosis, 2 nevus
        for image_id, k in zip(ids, kind, strict=True):
            write_image(images / f"{image_id}.jpg", int(k), rng)
            superpixels = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
            cv2.imwrite(str(images / f"{image_id}_superpixels.png"), superpixels)
        pd.DataFrame(
            {"image_id": ids, "age_approximate": "55", "sex": rng.choice(["male", "female"], count)}
        ).to_csv(images / f"{folder}_metadata.csv", index=False)
        truth = pd.DataFrame(
            {
                "image_id": ids,
                "melanoma": np.where(kind == 0, "1.0", "0.0"),
                "seborrheic_keratosis": np.where(kind == 1, "1.0", "0.0"),
            }
        )
        truth.to_csv(root / csv_name, index=False)
        truths[split] = truth
    return truths


FOLDER_CLASSES = {"benign": 12, "malignant": 6, "uncertain": 4}


def make_folder_tree(root: Path, counts: dict[str, int] | None = None, *, seed: int = 0) -> Path:
    """One sub-folder per class (some images one level deeper, some PNG, some JPEG), with
    the clutter real folders hold: a hidden file and a notes file."""
    rng = np.random.default_rng(seed)
    for label, (name, count) in enumerate((counts or FOLDER_CLASSES).items()):
        for index in range(count):
            nested = "visit2/" if index % 4 == 3 else ""
            suffix = ".png" if index % 2 else ".jpg"
            write_image(root / name / f"{nested}{name}_{index:03d}{suffix}", label, rng)
        (root / name / ".DS_Store").write_bytes(b"\x00\x01")
        (root / name / "notes.txt").write_text("scanned 2021\n")
    return root


def make_csv_tree(root: Path, *, seed: int = 0, integer_labels: bool = False) -> pd.DataFrame:
    """Images under root/scans/ listed in root/labels.csv (path,label,patient); returns
    the table as written."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(24):
        label = index % 3
        path = f"scans/p{index // 2:02d}_{index % 2}.png"
        write_image(root / path, label, rng)
        name = str(label + 1) if integer_labels else ("nevus", "melanoma", "keratosis")[label]
        rows.append({"path": path, "label": name, "patient": f"P{index // 2:02d}"})
    table = pd.DataFrame(rows)
    table.to_csv(root / "labels.csv", index=False)
    return table


def repeat_rows(csv_path: Path, column: str, values: dict[str, int], **changes: str) -> None:
    """Append to ``csv_path`` copies of the rows whose ``column`` is a key of ``values``:
    ``values[v] - 1`` more rows for ``v`` (so ``v`` is listed that many times), the last
    copy of each with ``changes`` (column -> new value) applied, e.g. a conflicting label."""
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    copies = []
    for value, times in values.items():
        row = table[table[column] == value]
        assert len(row) == 1, f"{value!r} is not listed once in {csv_path}"
        extra = pd.concat([row] * (times - 1), ignore_index=True)
        for key, new in changes.items():
            extra.loc[len(extra) - 1, key] = new
        copies.append(extra)
    pd.concat([table, *copies], ignore_index=True).to_csv(csv_path, index=False)
