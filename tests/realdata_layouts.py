"""Official dataset layouts built from real photographs (``../shared/realdata/``), for tests.

The photographs stay where they are (their terms allow research use, not redistribution):
these builders read them and write new files into a test's temporary folder, never into
the source folder, which may be read-only. None of the photographs carries a DR grade or an
ISIC diagnosis: every label given here is arbitrary.

The source images are decoded with Pillow, independently of fgssl's reader (OpenCV), so a
test can compare what fgssl decodes with what the file holds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from layouts import ISIC2018_CLASSES, one_hot_rows, write_extras

REALDATA_ENV = "FGSSL_REALDATA"
"""Environment variable naming the real-photograph folder (default: ../shared/realdata)."""
DEFAULT_REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

FUNDUS_PHOTOS = (
    "DRIVE_22.png",
    "DRIVE_40.png",
    "CHASEDB1_08L.png",
    "CHASEDB1_12R.png",
    "cropped.png",
    "sample_dark.png",
    "skimage_retina.jpg",
    "skimage_microaneurysms_gray.png",
)
"""The colour fundus photographs of realdata/fundus/ (565x584 to 1620x1080, one JPEG, one
102 px grey-level crop, one under-exposed capture)."""
GREY_CROP = "skimage_microaneurysms_gray.png"
DARK_CAPTURE = "sample_dark.png"
RETINA_JPEG = "skimage_retina.jpg"

EXIF_ORIENTATION = 0x0112
ROTATE_90_CLOCKWISE_TO_DISPLAY = 6
"""EXIF Orientation value 6: the stored pixels must be turned 90 degrees clockwise."""


def realdata_root() -> Path:
    """The real-photograph folder: ``$FGSSL_REALDATA`` or ``../shared/realdata`` beside the
    repository."""
    return Path(os.environ.get(REALDATA_ENV) or DEFAULT_REALDATA).expanduser()


def require_realdata() -> Path:
    """:func:`realdata_root`, or skip the test (with the reason) when it is not there."""
    root = realdata_root()
    if not (root / "fundus").is_dir() or not (root / "dermoscopy").is_dir():
        pytest.skip(
            f"no real photographs at {str(root)!r} (expected fundus/ and dermoscopy/ there; "
            f"they are not part of the package: set ${REALDATA_ENV} to a copy of "
            "shared/realdata to run these tests)"
        )
    return root


def load_image(path: Path) -> Image.Image:
    """``path`` decoded by Pillow, fully loaded (the source file is closed again)."""
    with Image.open(path) as image:
        image.load()
        return image.copy()


def short_side(image: Image.Image) -> int:
    return min(image.size)


# ---- file formats a new user's folder holds ------------------------------------------------


def save_png(image: Image.Image, path: Path) -> None:
    """An ordinary PNG, in the image's own mode (a grey-level image stays grey)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", compress_level=1)  # fast to write; size does not matter here


def save_jpeg(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, format="JPEG", quality=95)


def save_jpeg_named_png(image: Image.Image, path: Path) -> None:
    """A JPEG stream in a file named .png (as some re-uploads and renamed exports are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, format="JPEG", quality=95)


def save_cmyk_jpeg(image: Image.Image, path: Path) -> None:
    """A four-channel CMYK JPEG (print workflows, some scanners)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").convert("CMYK").save(path, format="JPEG", quality=95)


def save_exif_rotated_jpeg(image: Image.Image, path: Path) -> None:
    """A JPEG whose pixels are stored turned a quarter to the left, with the EXIF
    Orientation tag (6) that says how to turn them back: a phone or camera photograph. A
    reader that applies EXIF orientation gets ``image`` back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CLOCKWISE_TO_DISPLAY
    stored = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    stored.save(path, format="JPEG", quality=95, exif=exif.tobytes())


def save_rgba_png(image: Image.Image, path: Path) -> None:
    """An RGBA PNG whose black surround is transparent (an exported, masked photograph)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.asarray(image.convert("RGB"))
    alpha = np.where(rgb.max(axis=2) > 20, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(path, format="PNG")


def save_truncated_jpeg(image: Image.Image, path: Path) -> None:
    """The first half of a JPEG: an interrupted download."""
    save_jpeg(image, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


Writer = Callable[[Image.Image, Path], None]
AWKWARD_FORMATS: dict[str, tuple[str, Writer]] = {
    "jpeg_named_png": (".png", save_jpeg_named_png),
    "cmyk_jpeg": (".jpg", save_cmyk_jpeg),
    "exif_rotated_jpeg": (".jpg", save_exif_rotated_jpeg),
    "rgba_png": (".png", save_rgba_png),
}
"""Format name -> (file ending, writer) of the files that trip readers up; each decodes to
the image it was given (up to JPEG loss)."""


def wide_strip(image: Image.Image) -> Image.Image:
    """A band across the middle of ``image``, 8 times wider than high (a very wide crop)."""
    width, height = image.size
    band = max(1, width // 8)
    top = (height - band) // 2
    return image.crop((0, top, width, top + band))


FLIPS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "original": lambda image: image,
    "mirrored": lambda image: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "upside_down": lambda image: image.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
}
"""Variants of a photograph saved as new images: different pixels, not content duplicates."""


def aptos_id(name: str) -> str:
    """A 12-hex-digit id_code, as APTOS's (e.g. 000c1434d8d7)."""
    return hashlib.sha1(name.encode()).hexdigest()[:12]


# ---- APTOS 2019 -------------------------------------------------------------------------


APTOS_STORAGE = {
    (RETINA_JPEG, "mirrored"): "jpeg_named_png",
    (RETINA_JPEG, "upside_down"): "cmyk_jpeg",
    ("CHASEDB1_12R.png", "upside_down"): "exif_rotated_jpeg",
    ("DRIVE_40.png", "mirrored"): "rgba_png",
}
"""Training images stored in a format that trips readers up (the rest are PNGs)."""


@dataclass
class RealAPTOS:
    root: Path
    labels: dict[str, int] = field(default_factory=dict)
    """train.csv: id_code -> grade (arbitrary)."""
    test_ids: list[str] = field(default_factory=list)
    """test.csv (unlabelled)."""
    short_sides: dict[str, int] = field(default_factory=dict)
    """id_code -> short side in pixels of the image as displayed, every image."""
    formats: dict[str, str] = field(default_factory=dict)
    """id_code -> how its file is stored (png, or a key of AWKWARD_FORMATS)."""


def make_aptos(realdata: Path, root: Path) -> RealAPTOS:
    """The APTOS 2019 Kaggle layout from the fundus photographs.

    train.csv lists 25 images: each of the 8 photographs as it is, mirrored and upside down,
    and a very wide strip of the dark capture; grades cycle 0..4 so that every grade has 5
    images. Most are PNGs (the JPEG photograph converted to PNG, as APTOS ships PNGs; the
    grey-level crop stays grey-level), a few are stored as :data:`APTOS_STORAGE` says.
    test.csv lists the photographs turned a quarter, as PNGs.
    """
    fundus = realdata / "fundus"
    dataset = RealAPTOS(root)
    train: list[tuple[str, Image.Image, str]] = []
    for photo in FUNDUS_PHOTOS:
        image = load_image(fundus / photo)
        for variant, flip in FLIPS.items():
            train.append(
                (f"{photo}/{variant}", flip(image), APTOS_STORAGE.get((photo, variant), "png"))
            )
    train.append(("strip", wide_strip(load_image(fundus / DARK_CAPTURE)), "png"))
    for index, (name, image, storage) in enumerate(train):
        code = aptos_id(name)
        _write(image, root / "train_images" / code, storage)
        dataset.labels[code] = index % 5
        dataset.short_sides[code] = short_side(image)
        dataset.formats[code] = storage
    for photo in ("DRIVE_22.png", "CHASEDB1_08L.png", "cropped.png"):
        image = load_image(fundus / photo).transpose(Image.Transpose.ROTATE_270)
        code = aptos_id(f"{photo}/quarter")
        _write(image, root / "test_images" / code, "png")
        dataset.test_ids.append(code)
        dataset.short_sides[code] = short_side(image)
        dataset.formats[code] = "png"
    pd.DataFrame(
        {"id_code": list(dataset.labels), "diagnosis": list(dataset.labels.values())}
    ).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"id_code": dataset.test_ids}).to_csv(root / "test.csv", index=False)
    return dataset


def _write(image: Image.Image, stem: Path, storage: str) -> None:
    if storage == "png":
        save_png(image, stem.with_suffix(".png"))
        return
    suffix, writer = AWKWARD_FORMATS[storage]
    writer(image, stem.with_suffix(suffix))


# ---- ISIC 2018 Task 3 -------------------------------------------------------------------


@dataclass
class RealISIC2018:
    root: Path
    labels: dict[str, int] = field(default_factory=dict)
    """image id -> class index (arbitrary), every split."""
    splits: dict[str, list[str]] = field(default_factory=dict)
    """Training / Validation / Test -> image ids."""


ISIC2018_SPLIT_SIZES = {"Training": 10, "Validation": 7, "Test": 7}


def make_isic2018(realdata: Path, root: Path) -> RealISIC2018:
    """The official ISIC 2018 Task 3 layout from the 24 dermoscopy patches (32x32 BMPs),
    converted to JPEG as ISIC ships them: 10 training images (every class, then 3 more), 7
    validation and 7 test images (one of each class), one-hot ground-truth CSVs, the
    ATTRIBUTION/LICENSE files and the lesion groupings (one lesion per image)."""
    patches = sorted((realdata / "dermoscopy").glob("*.bmp"))
    if len(patches) < sum(ISIC2018_SPLIT_SIZES.values()):
        raise FileNotFoundError(f"expected 24 BMP patches in {realdata / 'dermoscopy'}")
    dataset = RealISIC2018(root)
    number = 24306
    sources = iter(patches)
    for split, count in ISIC2018_SPLIT_SIZES.items():
        images = root / f"ISIC2018_Task3_{split}_Input"
        truth = root / f"ISIC2018_Task3_{split}_GroundTruth"
        write_extras(images)
        write_extras(truth)
        ids = [f"ISIC_{number + i:07d}" for i in range(count)]
        number += 1000
        labels = [i % len(ISIC2018_CLASSES) for i in range(count)]
        for image_id in ids:
            save_jpeg(load_image(next(sources)), images / f"{image_id}.jpg")
        one_hot_rows(ids, labels, ISIC2018_CLASSES).to_csv(
            truth / f"ISIC2018_Task3_{split}_GroundTruth.csv", index=False
        )
        dataset.labels.update(zip(ids, labels, strict=True))
        dataset.splits[split] = ids
    training = dataset.splits["Training"]
    pd.DataFrame(
        {
            "image": training,
            "lesion_id": [f"HAM_{i:07d}" for i in range(len(training))],
            "diagnosis_confirm_type": "histopathology",
        }
    ).to_csv(root / "ISIC2018_Task3_Training_LesionGroupings.csv", index=False)
    return dataset


# ---- a folder of new photographs to predict ---------------------------------------------


def make_predict_folder(realdata: Path, folder: Path, *, patches: int = 4) -> dict[str, str]:
    """A folder as a user hands to fgssl-predict: the PNG and JPEG photographs as they are
    (the grey-level crop, the dark capture), a few dermoscopy BMPs, and one file of each
    awkward format (JPEG named .png, CMYK JPEG, EXIF-rotated JPEG, RGBA PNG) and a very
    wide crop. Returns file name -> what it is."""
    folder.mkdir(parents=True, exist_ok=True)
    fundus = realdata / "fundus"
    kinds: dict[str, str] = {}
    for photo in FUNDUS_PHOTOS:
        (folder / photo).write_bytes((fundus / photo).read_bytes())
        kinds[photo] = "as shipped"
    for patch in sorted((realdata / "dermoscopy").glob("*.bmp"))[:patches]:
        (folder / patch.name).write_bytes(patch.read_bytes())
        kinds[patch.name] = "dermoscopy BMP"
    base = load_image(fundus / "DRIVE_22.png")
    for storage, (suffix, writer) in AWKWARD_FORMATS.items():
        name = f"DRIVE_22_{storage}{suffix}"
        writer(base, folder / name)
        kinds[name] = storage
    save_png(wide_strip(load_image(fundus / DARK_CAPTURE)), folder / "sample_dark_strip.png")
    kinds["sample_dark_strip.png"] = "very wide crop"
    return kinds
