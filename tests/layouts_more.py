"""Small trees in the official layouts of the wider benchmarks (EyePACS, Messidor-2, IDRiD,
DDR, ISIC 2019, ISIC 2020), as each reader's module docstring documents them, for tests.

File and folder names, headers (with their irregular spellings), id formats and the extra
files that sit beside the data are as downloaded; the images are tiny and coloured by class.
Each builder returns the ground truth it wrote: id -> label per split (``None`` for
ungradable / UNK images) and the groups (patient, lesion) where the dataset has them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from layouts import one_hot_rows, write_extras, write_image


@dataclass
class Tree:
    root: Path
    labels: dict[str, dict[str, int | None]] = field(default_factory=dict)
    """split (train / val / test) -> id -> label (None: ungradable or UNK)."""
    groups: dict[str, str] = field(default_factory=dict)
    """training id -> patient or lesion."""
    files: list[Path] = field(default_factory=list)
    """Every image file written."""


def _image(tree: Tree, path: Path, label: int, rng: np.random.Generator) -> None:
    write_image(path, label, rng)
    tree.files.append(path)


def make_eyepacs(root: Path, *, patients: int = 20, test_patients: int = 6, seed: int = 0) -> Tree:
    """trainLabels.csv (image,level), train/<patient>_{left,right}.jpeg, test/*.jpeg,
    retinopathy_solution.csv (image,level,Usage) and sampleSubmission.csv. Both eyes of a
    patient mostly share a grade (as in the data)."""
    rng = np.random.default_rng(seed)
    tree = Tree(root)
    for split, folder, first, count in (
        ("train", "train", 10, patients),
        ("test", "test", 2, test_patients),
    ):
        rows = []
        for index in range(count):
            patient = first + 3 * index  # ids are not consecutive in the real files
            grade = index % 5
            for eye in ("left", "right"):
                level = grade if eye == "left" or index % 3 else (grade + 1) % 5
                image = f"{patient}_{eye}"
                _image(tree, root / folder / f"{image}.jpeg", level, rng)
                rows.append({"image": image, "level": level})
                tree.labels.setdefault(split, {})[image] = level
                if split == "train":
                    tree.groups[image] = str(patient)
        table = pd.DataFrame(rows)
        if split == "train":
            table.to_csv(root / "trainLabels.csv", index=False)
        else:
            table["Usage"] = ["Public" if i % 3 == 0 else "Private" for i in range(len(table))]
            table.to_csv(root / "retinopathy_solution.csv", index=False)
            table[["image"]].assign(level=0).to_csv(root / "sampleSubmission.csv", index=False)
    return tree


def make_messidor2(root: Path, *, count: int = 30, ungradable: int = 3, seed: int = 0) -> Tree:
    """IMAGES/ (Messidor-Original PNGs, Messidor-Extension ``.JPG`` files listed as
    ``.jpg``), messidor_data.csv (image_id with extension, adjudicated_dr_grade,
    adjudicated_dme, adjudicated_gradable; ungradable rows have an empty grade) and the
    readme that comes with it."""
    rng = np.random.default_rng(seed)
    tree = Tree(root, labels={"train": {}})
    rows = []
    for index in range(count):
        if index % 2:
            listed, on_disk = f"IM{index:06d}.jpg", f"IM{index:06d}.JPG"
        else:
            listed = on_disk = f"20051020_{43808 + index}_0100_PP.png"
        gradable = index >= ungradable
        grade = index % 5
        _image(tree, root / "IMAGES" / on_disk, grade, rng)
        rows.append(
            {
                "image_id": listed,
                "adjudicated_dr_grade": f"{grade}.0" if gradable else "",
                "adjudicated_dme": ("1.0" if grade > 2 else "0.0") if gradable else "",
                "adjudicated_gradable": "1" if gradable else "0",
            }
        )
        tree.labels["train"][Path(listed).stem] = grade if gradable else None
    pd.DataFrame(rows).to_csv(root / "messidor_data.csv", index=False)
    (root / "messidor_readme.txt").write_text("Adjudicated grades for Messidor-2\n")
    return tree


IDRID = "B. Disease Grading"
IDRID_TRAIN_CSV = "2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv"
IDRID_TEST_CSV = "2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv"


def make_idrid(root: Path, *, train: int = 25, test: int = 10, seed: int = 0) -> Tree:
    """``B. Disease Grading/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NNN.jpg``
    (both numbered from 001) and the two grading CSVs with the official header
    ``Image name,Retinopathy grade,Risk of macular edema `` (trailing space); the training
    file also has trailing empty columns and ends in empty rows, as downloaded."""
    rng = np.random.default_rng(seed)
    tree = Tree(root)
    base = root / IDRID
    for split, folder, csv_name, count in (
        ("train", "a. Training Set", IDRID_TRAIN_CSV, train),
        ("test", "b. Testing Set", IDRID_TEST_CSV, test),
    ):
        extra = ",,,,,,,,," if split == "train" else ""
        lines = [f"Image name,Retinopathy grade,Risk of macular edema {extra}"]
        for index in range(1, count + 1):
            image, grade = f"IDRiD_{index:03d}", (index * 7 + (split == "test")) % 5
            _image(tree, base / "1. Original Images" / folder / f"{image}.jpg", grade, rng)
            lines.append(f"{image},{grade},{min(grade, 2)}{extra}")
            tree.labels.setdefault(split, {})[image] = grade
        if split == "train":
            lines += [",,,,,,,,,,,"] * 2
        path = base / csv_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\r\n".join(lines) + "\r\n")
    return tree


DDR_SPLITS = {"train": ("train", 25), "val": ("valid", 10), "test": ("test", 10)}


def make_ddr(root: Path, *, seed: int = 0) -> Tree:
    """DR_grading/{train,valid,test}/ and {train,valid,test}.txt of ``<file name> <label>``
    lines; label 5 (ungradable) on a few images of each set."""
    rng = np.random.default_rng(seed)
    tree = Tree(root)
    base = root / "DR_grading"
    number = 0
    for split, (name, count) in DDR_SPLITS.items():
        lines = []
        for index in range(count):
            number += 1
            image = f"007-{number:04d}-000.jpg" if index % 2 else f"2017032309{number:07d}.jpg"
            label = 5 if index % 8 == 7 else index % 5
            _image(tree, base / name / image, label % 5, rng)
            lines.append(f"{image} {label}")
            tree.labels.setdefault(split, {})[Path(image).stem] = None if label == 5 else label
        (base / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return tree


ISIC2019_COLUMNS = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
ISIC2019_COUNTS = (6, 12, 5, 4, 5, 4, 4, 4)  # training images of the 8 known classes


def make_isic2019(
    root: Path, *, metadata: bool = True, test_truth: bool = True, seed: int = 0
) -> Tree:
    """ISIC_2019_Training_Input/ (some ``_downsampled`` names, ATTRIBUTION/LICENSE files),
    the one-hot ground truth over the 9 columns (UNK never 1 in training), the metadata
    (lesion_id, empty for some images), ISIC_2019_Test_Input/ with its metadata and, with
    ``test_truth``, its ground truth (2 UNK images)."""
    rng = np.random.default_rng(seed)
    tree = Tree(root)
    ids, labels, lesions = [], [], []
    number, lesion = 0, 0
    for label, count in enumerate(ISIC2019_COUNTS):
        left = count
        while left:
            size = min(left, int(rng.choice([1, 2, 3])))
            for _ in range(size):
                suffix = "_downsampled" if number % 7 == 3 else ""
                ids.append(f"ISIC_{number:07d}{suffix}")
                labels.append(label)
                lesions.append("" if size == 1 and number % 2 else f"IL_{lesion:07d}")
                number += 1
            left -= size
            lesion += 1
    images = root / "ISIC_2019_Training_Input"
    write_extras(images)
    for image, label in zip(ids, labels, strict=True):
        _image(tree, images / f"{image}.jpg", label, rng)
    one_hot_rows(ids, labels, ISIC2019_COLUMNS).to_csv(
        root / "ISIC_2019_Training_GroundTruth.csv", index=False
    )
    if metadata:
        pd.DataFrame(
            {
                "image": ids,
                "age_approx": "55.0",
                "anatom_site_general": "anterior torso",
                "lesion_id": lesions,
                "sex": "female",
            }
        ).to_csv(root / "ISIC_2019_Training_Metadata.csv", index=False)
    tree.labels["train"] = dict(zip(ids, labels, strict=True))
    tree.groups = {i: (g or i) for i, g in zip(ids, lesions, strict=True)}
    test_ids = [f"ISIC_{70000 + i:07d}" for i in range(10)]
    test_labels = [i % 9 for i in range(9)] + [8]  # two UNK
    test_images = root / "ISIC_2019_Test_Input"
    write_extras(test_images)
    for image, label in zip(test_ids, test_labels, strict=True):
        _image(tree, test_images / f"{image}.jpg", label, rng)
    pd.DataFrame({"image": test_ids, "age_approx": "40.0", "sex": "male"}).to_csv(
        root / "ISIC_2019_Test_Metadata.csv", index=False
    )
    if test_truth:
        truth = one_hot_rows(test_ids, test_labels, ISIC2019_COLUMNS)
        truth["score_weight"] = "1.0"
        truth.to_csv(root / "ISIC_2019_Test_GroundTruth.csv", index=False)
        tree.labels["test"] = {
            i: (None if label == 8 else label)
            for i, label in zip(test_ids, test_labels, strict=True)
        }
    return tree


def make_isic2020(root: Path, *, kaggle: bool = False, seed: int = 0) -> Tree:
    """The ISIC archive layout (ISIC_2020_Training_GroundTruth_v2.csv, train/*.jpg,
    ISIC_2020_Training_Duplicates.csv, ISIC_2020_Test_Input/) or, with ``kaggle``, the
    competition's (train.csv, jpeg/train/, train/*.dcm, jpeg/test/, test.csv). Patients have
    1-4 images; about a quarter of the patients have a melanoma. The duplicates list pairs
    two images of one patient (``labels["train"]`` holds every listed image)."""
    rng = np.random.default_rng(seed)
    tree = Tree(root, labels={"train": {}})
    rows = []
    number = 0
    for patient in range(16):
        malignant = patient % 4 == 0
        for image_index in range(1 + patient % 4):
            image = f"ISIC_{1000000 + 37 * number:07d}"
            number += 1
            target = int(malignant and image_index == 0)
            rows.append(
                {
                    "image_name": image,
                    "patient_id": f"IP_{4000000 + patient * 11:07d}",
                    "lesion_id": f"IL_{number:07d}",
                    "sex": "male",
                    "age_approx": "45.0",
                    "anatom_site_general_challenge": "torso",
                    "diagnosis": "melanoma" if target else "nevus",
                    "benign_malignant": "malignant" if target else "benign",
                    "target": str(target),
                }
            )
            tree.labels["train"][image] = target
            tree.groups[image] = rows[-1]["patient_id"]
    table = pd.DataFrame(rows)
    train_folder = root / ("jpeg/train" if kaggle else "train")
    for row in rows:
        _image(tree, train_folder / f"{row['image_name']}.jpg", int(row["target"]), rng)
    test_folder = root / ("jpeg/test" if kaggle else "ISIC_2020_Test_Input")
    test_ids = [f"ISIC_{9000000 + i:07d}" for i in range(5)]
    for image in test_ids:
        _image(tree, test_folder / f"{image}.jpg", 0, rng)
    if kaggle:
        table.drop(columns="lesion_id").to_csv(root / "train.csv", index=False)
        (root / "train").mkdir()
        for row in rows[:3]:
            (root / "train" / f"{row['image_name']}.dcm").write_bytes(b"DICM")
        pd.DataFrame({"image_name": test_ids, "patient_id": "IP_0000001"}).to_csv(
            root / "test.csv", index=False
        )
    else:
        table.to_csv(root / "ISIC_2020_Training_GroundTruth_v2.csv", index=False)
        table.drop(columns="lesion_id").to_csv(
            root / "ISIC_2020_Training_GroundTruth.csv", index=False
        )
        by_patient = table.groupby("patient_id")["image_name"].agg(list)
        pairs = [images[:2] for images in by_patient if len(images) > 1][:2]
        pd.DataFrame(pairs, columns=["image_name_1", "image_name_2"]).to_csv(
            root / "ISIC_2020_Training_Duplicates.csv", index=False
        )
    return tree
