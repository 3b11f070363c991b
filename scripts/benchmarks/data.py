"""Images per second through the training dataloader: full-size PNGs raw vs the image cache.

Generates APTOS-sized fundus PNGs (about 2000x1500, a few MB each, as the Kaggle download)
in the APTOS layout, then iterates the finetune training dataloader (224 px, 2 workers)
reading the PNGs themselves, and again reading the image cache (built beforehand, as a
second run finds it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from benchmarks.common import print_table
from fgssl.data import APTOS2019DataModule
from fgssl.data.cache import CACHE_FORMATS, CacheFormat
from fgssl.data.demo import render_fundus
from fgssl.data.prepare import fill_cache

NAME = "data"


def write_aptos_pngs(
    root: Path, count: int, size: tuple[int, int], seed: int = 0, render_size: int = 512
) -> Path:
    """``count`` synthetic fundus PNGs of ``size`` (width, height) with sensor-like noise,
    rendered at ``render_size`` px and resized, in the APTOS 2019 layout (train.csv +
    train_images/)."""
    rng = np.random.default_rng(seed)
    width, height = size
    noise = rng.normal(0, 1.0, (height + 64, width + 64, 3)).astype(np.float32)
    (root / "train_images").mkdir(parents=True)
    ids, grades = [], []
    for index in range(count):
        grade = index % 5
        small = render_fundus(grade, render_size, rng)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        dy, dx = rng.integers(0, 64, 2)
        noisy = image + noise[dy : dy + height, dx : dx + width]
        image_id = f"{index:012x}"
        cv2.imwrite(
            str(root / "train_images" / f"{image_id}.png"),
            np.clip(noisy, 0, 255).astype(np.uint8)[..., ::-1],
        )
        ids.append(image_id)
        grades.append(grade)
    pd.DataFrame({"id_code": ids, "diagnosis": grades}).to_csv(root / "train.csv", index=False)
    return root


def images_per_second(datamodule: APTOS2019DataModule, epochs: int) -> float:
    """Steady-state throughput of the training dataloader, timed from its first batch on."""
    loader = datamodule.train_dataloader()
    images, started = 0, None
    for _ in range(epochs):
        for batch in loader:
            if started is None:
                started = time.perf_counter()  # workers started and warmed up
                continue
            images += len(batch["label"])
    assert started is not None
    seconds = time.perf_counter() - started
    del loader  # stop the persistent workers
    return images / seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.smoke:
        count, size, image_size, batch, render_size = 10, (64, 48), 32, 2, 64
    else:
        count, size, image_size, batch, render_size = 96, (2000, 1500), 224, 16, 512
    workers = 2
    with tempfile.TemporaryDirectory(prefix="fgssl-bench-data-") as scratch:
        started = time.perf_counter()
        root = write_aptos_pngs(Path(scratch) / "aptos", count, size, render_size=render_size)
        generate_seconds = time.perf_counter() - started
        megabytes = sum(p.stat().st_size for p in (root / "train_images").iterdir()) / 2**20

        def datamodule(cache_dir: Path | None, fmt: CacheFormat = "npy") -> APTOS2019DataModule:
            return APTOS2019DataModule(
                root,
                image_size=image_size,
                resize_size=round(image_size * 8 / 7),
                batch_size=batch,
                num_workers=workers,
                val_fraction=0.1,
                cache_dir=cache_dir,
                cache_format=fmt,
                pin_memory=False,
            )

        raw = images_per_second(datamodule(None), epochs=1)
        rows = [{"reader": "raw PNG", "images_per_s": raw, "ms_per_image": 1e3 / raw}]
        reports, speeds = {}, {}
        for fmt in CACHE_FORMATS:
            cached_module = datamodule(Path(scratch) / f"cache-{fmt}", fmt)
            reports[fmt] = fill_cache(cached_module, workers=workers)
            speeds[fmt] = images_per_second(cached_module, epochs=3)
            rows.append(
                {
                    "reader": f"image cache ({fmt})",
                    "images_per_s": speeds[fmt],
                    "ms_per_image": 1e3 / speeds[fmt],
                }
            )
    cached, report = speeds["npy"], reports["npy"]
    title = (
        f"training dataloader, {count} PNGs of {size[0]}x{size[1]} "
        f"({megabytes / count:.1f} MB each), {image_size} px, batch {batch}, {workers} workers"
    )
    print_table(title, rows)
    print(
        f"cached (npy) / raw: {cached / raw:.1f}x, cached (jpg) / raw: {speeds['jpg'] / raw:.1f}x; "
        f"cache built in {report.seconds:.1f} s ({report.megabytes:.0f} MiB npy, "
        f"{reports['jpg'].megabytes:.0f} MiB jpg); PNGs generated in {generate_seconds:.1f} s"
    )
    return {
        "images": count,
        "source_size": list(size),
        "image_size": image_size,
        "batch_size": batch,
        "workers": workers,
        "raw_images_per_s": raw,
        "cached_images_per_s": cached,
        "speedup": cached / raw,
        "cache_build_seconds": report.seconds,
        "cache_megabytes": report.megabytes,
        "cached_jpg_images_per_s": speeds["jpg"],
        "jpg_speedup": speeds["jpg"] / raw,
        "cache_jpg_megabytes": reports["jpg"].megabytes,
    }
