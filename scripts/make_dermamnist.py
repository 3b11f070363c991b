"""Build DermaMNIST-format .npz files from a HAM10000 folder (the download layout:
HAM10000_metadata.csv, HAM10000_images_part_{1,2}/).

MedMNIST v2 (Yang et al., Sci Data 2023) made DermaMNIST from HAM10000's 10,015 images:
each 600x450 image resized to 28x28 (aspect not kept), a random image-level 7:1:2 split
(7007/1003/2005), labels in the alphabetical order of HAM10000's diagnosis codes (akiec,
bcc, bkl, df, mel, nv, vasc). Its own split cannot be rebuilt without its files, so this
draws one with the same sizes from ``--seed``. Resizing is OpenCV's area interpolation
(MedMNIST does not say which it used).

    python scripts/make_dermamnist.py ../shared/realdata/ham10000-200x150 /tmp/derma \
        --sizes 28 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fgssl.data.io import read_rgb
from fgssl.data.medmnist import DATASETS, npz_name, save_npz

CODES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
"""HAM10000's diagnosis codes in DermaMNIST's label order (DATASETS['dermamnist'])."""


def official_split_sizes(total: int) -> tuple[int, int, int]:
    """DermaMNIST's sizes when ``total`` is 10,015, else the same 7:1:2 shares."""
    sizes = DATASETS["dermamnist"].samples
    if total == sum(sizes):
        return sizes
    val, test = round(total * 0.1), round(total * 0.2)
    return total - val - test, val, test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ham10000", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[28])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="use only the first N images (tests)")
    args = parser.parse_args(argv)
    meta = pd.read_csv(args.ham10000 / "HAM10000_metadata.csv", dtype=str)
    if args.limit:
        meta = meta.iloc[: args.limit]
    folders = [args.ham10000 / f"HAM10000_images_part_{i}" for i in (1, 2)]
    files = {p.stem: p for folder in folders for p in folder.glob("*.jpg")}
    labels = meta["dx"].map({code: i for i, code in enumerate(CODES)}).to_numpy()
    order = np.random.default_rng(args.seed).permutation(len(meta))
    n_train, n_val, _ = official_split_sizes(len(meta))
    parts = {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }
    originals = [read_rgb(files[i]) for i in meta["image_id"]]
    args.out.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        resized = np.stack(
            [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in originals]
        )
        path = save_npz(
            args.out / npz_name("dermamnist", size),
            {split: resized[rows] for split, rows in parts.items()},
            {split: labels[rows] for split, rows in parts.items()},
        )
        print(f"{path}: " + ", ".join(f"{s} {len(r)}" for s, r in parts.items()))
    split = pd.DataFrame(
        {
            "image_id": meta["image_id"],
            "lesion_id": meta["lesion_id"],
            "dx": meta["dx"],
            "split": pd.Series(dtype=str),
        }
    )
    for name, rows in parts.items():
        split.loc[rows, "split"] = name
    split.to_csv(args.out / "dermamnist_split.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
