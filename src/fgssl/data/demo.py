"""Synthetic fundus photographs for the demo, written in the APTOS 2019 layout.

The grade of an image is set by which tiny lesions lie on an otherwise ordinary-looking
retina (vessels, optic disc, macula, uneven illumination), following the ICDR scale:
microaneurysms only (mild), plus hard exudates (moderate), plus blot haemorrhages (severe),
plus tufts of new vessels (proliferative). Lesions are 2-5 px across at 128 px: a
fine-grained task.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from fgssl.data.aptos import APTOS2019DataModule

__all__ = [
    "GRADE_LESIONS",
    "DemoAPTOSDataModule",
    "default_demo_root",
    "make_demo_aptos",
    "render_fundus",
]

GENERATOR_VERSION = 2
GRADE_LESIONS = (
    ((0, 0), (0, 0), (0, 0), (0, 0)),
    ((2, 5), (0, 0), (0, 0), (0, 0)),
    ((4, 8), (2, 5), (0, 1), (0, 0)),
    ((8, 12), (3, 6), (4, 8), (0, 0)),
    ((8, 12), (3, 6), (4, 8), (1, 2)),
)
"""Per grade 0..4, inclusive count ranges of microaneurysms, exudates, haemorrhages and
new-vessel tufts."""
GRADE_SHARES = (0.3, 0.15, 0.25, 0.15, 0.15)


def default_demo_root() -> Path:
    """``$FGSSL_DEMO_ROOT``, else ``~/.cache/fgssl/demo-aptos``."""
    env = os.environ.get("FGSSL_DEMO_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fgssl" / "demo-aptos"


def render_fundus(grade: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic fundus photograph (size x size x 3, uint8 RGB) of DR ``grade`` 0..4."""
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    centre = np.array([s / 2, s / 2]) + rng.normal(0, s * 0.01, 2)
    radius = s * rng.uniform(0.44, 0.48)
    dist = np.hypot(xx - centre[0], yy - centre[1]) / radius

    # Background: an orange-red disc, darker towards the rim, with smooth blotchy texture.
    base = np.array([rng.uniform(170, 215), rng.uniform(70, 105), rng.uniform(25, 50)], np.float32)
    shade = 1.0 - 0.45 * dist**2
    noise: np.ndarray = cv2.GaussianBlur(
        rng.normal(0, 1, (s, s)).astype(np.float32), (0, 0), s / 20
    )
    noise = noise / (noise.std() + 1e-6)
    image = base[None, None, :] * (shade + 0.06 * noise)[..., None]

    side = rng.choice([-1.0, 1.0])
    disc = centre + np.array([side * radius * 0.45, rng.normal(0, s * 0.03)])
    macula = centre - np.array([side * radius * 0.15, 0.0])
    macula_dist = np.hypot(xx - macula[0], yy - macula[1])
    image *= (1.0 - 0.25 * np.exp(-((macula_dist / (s * 0.07)) ** 2)))[..., None]

    vessels: np.ndarray = np.zeros((s, s), np.float32)
    for _ in range(rng.integers(6, 10)):
        angle = rng.uniform(0, 2 * np.pi)
        point = disc.copy()
        width = max(1, round(s / 70 * rng.uniform(0.8, 1.6)))
        for _ in range(14):
            angle += rng.normal(0, 0.25)
            step = radius * 0.09 * np.array([np.cos(angle), np.sin(angle)])
            nxt = point + step
            cv2.line(vessels, _pt(point), _pt(nxt), 1.0, width, cv2.LINE_AA)
            point = nxt
    vessels = cv2.GaussianBlur(vessels, (0, 0), 0.6)
    image = image * (1 - 0.45 * vessels[..., None]) + vessels[..., None] * np.array([60, 0, 0])

    disc_dist = np.hypot(xx - disc[0], yy - disc[1]) / (s * 0.07)
    glow = np.exp(-(disc_dist**4))[..., None]
    image = image * (1 - glow) + glow * np.array([250, 220, 150], np.float32)

    _draw_lesions(image, grade, centre, radius, disc, s, rng)
    image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255)
    image[dist > 1.0] = 0.0  # black surround, as in real fundus photographs
    return image.astype(np.uint8)


def _draw_lesions(
    image: np.ndarray,
    grade: int,
    centre: np.ndarray,
    radius: float,
    disc: np.ndarray,
    s: int,
    rng: np.random.Generator,
) -> None:
    """Lesions as on the ICDR scale: microaneurysms (mild), plus exudates (moderate),
    plus blot haemorrhages (severe), plus tufts of new vessels (proliferative)."""
    unit = s / 128
    for kind in range(4):
        low, high = GRADE_LESIONS[grade][kind]
        for _ in range(int(rng.integers(low, high + 1))):
            at = _lesion_site(centre, radius, disc, s, rng)
            if kind == 0:  # microaneurysm: tiny dark-red dot
                cv2.circle(
                    image, _pt(at), max(1, round(1.1 * unit)), (120, 15, 20), -1, cv2.LINE_AA
                )
            elif kind == 1:  # hard exudate: small bright yellow fleck
                cv2.circle(
                    image, _pt(at), max(1, round(1.3 * unit)), (245, 220, 90), -1, cv2.LINE_AA
                )
            elif kind == 2:  # blot haemorrhage: larger dark blot
                cv2.circle(image, _pt(at), max(2, round(2.4 * unit)), (85, 5, 5), -1, cv2.LINE_AA)
            else:  # neovascularisation: a tuft of fine tortuous vessels
                for _ in range(5):
                    angle, point = rng.uniform(0, 2 * np.pi), at.copy()
                    for _ in range(4):
                        angle += rng.normal(0, 0.9)
                        nxt = point + 2.5 * unit * np.array([np.cos(angle), np.sin(angle)])
                        cv2.line(image, _pt(point), _pt(nxt), (150, 20, 25), 1, cv2.LINE_AA)
                        point = nxt


def _lesion_site(
    centre: np.ndarray, radius: float, disc: np.ndarray, s: int, rng: np.random.Generator
) -> np.ndarray:
    """A random point on the retina, away from the optic disc."""
    while True:
        r = radius * np.sqrt(rng.uniform(0.02, 0.75))
        theta = rng.uniform(0, 2 * np.pi)
        at = centre + r * np.array([np.cos(theta), np.sin(theta)])
        if np.hypot(*(at - disc)) > s * 0.1:
            return at


def _pt(p: np.ndarray) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def make_demo_aptos(
    root: str | os.PathLike[str],
    *,
    num_train: int = 600,
    num_test: int = 40,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write a synthetic APTOS 2019 tree at ``root`` (train.csv, train_images/, test.csv,
    test_images/, sample_submission.csv) unless one with the same settings is there.

    Deterministic from ``seed``. Written to a temporary folder and renamed into place, so an
    interrupted or concurrent call never leaves a half-written tree.
    """
    root = Path(root).expanduser()
    settings = {
        "version": GENERATOR_VERSION,
        "num_train": num_train,
        "num_test": num_test,
        "size": size,
        "seed": seed,
    }
    marker = root / "fgssl-demo.json"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return root
    if root.exists() and any(root.iterdir()) and not marker.is_file():
        raise FileExistsError(
            f"{str(root)!r} exists and is not an fgssl demo folder: choose another data.root"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        _write_tree(staging, settings)
        (staging / marker.name).write_text(json.dumps(settings))
        if root.exists():
            shutil.rmtree(root)
        try:
            staging.rename(root)
        except OSError:
            if not (marker.is_file() and json.loads(marker.read_text()) == settings):
                raise  # someone else won the race only if they wrote the same tree
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return root


def _write_tree(folder: Path, settings: dict[str, Any]) -> None:
    rng = np.random.default_rng(settings["seed"])
    size = settings["size"]
    for split, count, labelled in (
        ("train", settings["num_train"], True),
        ("test", settings["num_test"], False),
    ):
        (folder / f"{split}_images").mkdir()
        grades = rng.choice(len(GRADE_SHARES), size=count, p=GRADE_SHARES)
        ids = [f"{rng.integers(16**12):012x}" for _ in range(count)]
        for id_code, grade in zip(ids, grades, strict=True):
            image = render_fundus(int(grade), size, rng)
            cv2.imwrite(str(folder / f"{split}_images" / f"{id_code}.png"), image[..., ::-1])
        table = pd.DataFrame({"id_code": ids, "diagnosis": grades})
        table.to_csv(
            folder / f"{split}.csv", index=False, columns=None if labelled else ["id_code"]
        )
        if not labelled:
            table.assign(diagnosis=0).to_csv(folder / "sample_submission.csv", index=False)


class DemoAPTOSDataModule(APTOS2019DataModule):
    """:class:`APTOS2019DataModule` over the synthetic demo data, generated on first use."""

    transforms_preset = "fundus_small"

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        num_train: int = 600,
        num_test: int = 40,
        generated_size: int = 128,
        generator_seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(root if root is not None else default_demo_root(), **kwargs)
        self.generator_settings = dict(
            num_train=num_train, num_test=num_test, size=generated_size, seed=generator_seed
        )

    def prepare_data(self) -> None:
        make_demo_aptos(self.root, **self.generator_settings)
