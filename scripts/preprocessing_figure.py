"""The before/after figure of ``data.preprocess`` (docs/datasets/images.md,
"Preprocessing"), from real photographs that stay outside the repository, and the time each
preprocessing takes.

    python scripts/preprocessing_figure.py [docs/preprocessing.jpg] [--realdata DIR] [--timing]

Fundus photographs from ``DIR/fundus/`` (CHASE_DB1, CC BY 4.0; Wikimedia Commons via
scikit-image, CC0; an under-exposed capture of retinalysis-fundusprep's tests) as read, with
``fundus_crop`` and with ``ben_graham``; HAM10000 dermoscopy images (CC BY-NC-SA 4.0) from
``DIR/ham10000-200x150/HAM10000_images_part_1/`` as read and with ``shades_of_gray``. ``DIR``
defaults to ``$FGSSL_REALDATA``, else ``../shared/realdata`` beside the repository.

``--timing`` also prints the milliseconds per image of decoding and of each preprocessing
(best of several runs, one thread) at APTOS 2019's image sizes: frames built from a real
photograph, a retina clipped at the top and bottom as fundus cameras take them.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fgssl.data.io import read_rgb
from fgssl.data.preprocess import Preprocessing

FUNDUS = ["CHASEDB1_08L.png", "CHASEDB1_12R.png", "skimage_retina.jpg", "sample_dark.png"]
HAM = ["ISIC_0024306.jpg", "ISIC_0025006.jpg", "ISIC_0025706.jpg", "ISIC_0027106.jpg"]
RADIUS = 224
"""The default radius at data.image_size=224."""
APTOS_SIZES = [(4288, 2848), (3216, 2136), (2416, 1736), (1050, 1050), (640, 480)]
"""Sizes (width, height) among APTOS 2019's training images, from the largest."""


def realdata_root(given: str | None) -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "realdata"
    return Path(given or os.environ.get("FGSSL_REALDATA") or default).expanduser()


def square(image: np.ndarray, side: int = 320) -> np.ndarray:
    """``image`` shrunk to fit a black ``side`` square, centred (for display only)."""
    scale = side / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((side, side, 3), np.uint8)
    y, x = (side - size[1]) // 2, (side - size[0]) // 2
    canvas[y : y + size[1], x : x + size[0]] = small
    return canvas


def draw(root: Path, out: Path) -> None:
    """Five rows of four images: fundus as read, fundus_crop, ben_graham; dermoscopy as
    read, shades_of_gray."""
    fundus = [read_rgb(root / "fundus" / name) for name in FUNDUS]
    ham_dir = root / "ham10000-200x150" / "HAM10000_images_part_1"
    skin = [read_rgb(ham_dir / name) for name in HAM]
    rows = [
        ("fundus, as read", [square(image) for image in fundus]),
        ("fundus_crop", [Preprocessing("fundus_crop", RADIUS)(image) for image in fundus]),
        ("ben_graham", [Preprocessing("ben_graham", RADIUS)(image) for image in fundus]),
        ("dermoscopy, as read", skin),
        ("shades_of_gray", [Preprocessing("shades_of_gray")(image) for image in skin]),
    ]
    figure = Figure(figsize=(8.0, 10.4), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), len(FUNDUS))
    for row, (title, images) in zip(axes, rows, strict=True):
        for column, (ax, image) in enumerate(zip(row, images, strict=True)):
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(title, fontsize=11)
    figure.suptitle(
        f"data.preprocess (fundus: R = {RADIUS} px, the default at image_size 224)", fontsize=12
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 88, "optimize": True} if out.suffix.lower() in (".jpg", ".jpeg") else {}
    figure.savefig(out, pil_kwargs=options)  # photographs: JPEG is a quarter of PNG's size
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


def aptos_frame(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """A black ``width`` x ``height`` frame holding ``photo``'s retina (CHASE_DB1 12R's field
    of view) scaled to 1.15 x the height (at most the width), clipped at the top and bottom."""
    diameter = min(round(1.15 * height), width)
    retina = cv2.resize(photo[19:939, 33:955], (diameter, diameter), interpolation=cv2.INTER_CUBIC)
    frame = np.zeros((height, width, 3), np.uint8)
    top, left = (diameter - height) // 2, (width - diameter) // 2
    frame[:, left : left + diameter] = retina[top : top + height]
    return frame


def best_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


def timing(root: Path, folder: Path) -> None:
    """Milliseconds per image at each of :data:`APTOS_SIZES` (PNG files written to
    ``folder``)."""
    cv2.setNumThreads(1)
    photo = read_rgb(root / "fundus" / "CHASEDB1_12R.png")
    steps = {
        "fundus_crop": Preprocessing("fundus_crop", RADIUS),
        "ben_graham": Preprocessing("ben_graham", RADIUS),
        "shades_of_gray": Preprocessing("shades_of_gray"),
    }
    print("| image | decode (PNG) | " + " | ".join(steps) + " |")
    print("|---" * (len(steps) + 2) + "|")
    for width, height in APTOS_SIZES:
        frame = aptos_frame(photo, width, height)
        path = folder / f"{width}x{height}.png"
        cv2.imwrite(str(path), frame[..., ::-1])
        repeats = 5 if width > 2000 else 20
        cells = [best_ms(functools.partial(read_rgb, path), repeats)]
        cells += [best_ms(functools.partial(step, frame), repeats) for step in steps.values()]
        print(f"| {width}x{height} | " + " | ".join(f"{ms:.0f} ms" for ms in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/preprocessing.jpg")
    parser.add_argument("--realdata", help="the real-photograph folder (see above)")
    parser.add_argument("--timing", action="store_true", help="also time each preprocessing")
    parser.add_argument("--timing-dir", default="/tmp", help="where --timing writes its PNGs")
    args = parser.parse_args()
    root = realdata_root(args.realdata)
    draw(root, Path(args.out))
    if args.timing:
        timing(root, Path(args.timing_dir))


if __name__ == "__main__":
    main()
