"""(b) Images per second of the whole pipeline against its parts, both phases: APTOS-size
PNGs (generated) through the image cache, the fundus augmentations and ``pipeline_workers``
DataLoader workers into the progressive step, against the step alone (a batch already on
the device) and the loader alone (no model). Each figure is over whole epochs after a first
one (worker start, cuDNN autotuning), from the epoch's start to its end (the workers start
each epoch with an empty queue), and over the second half of those epochs' batches only (the
steady state, once the queue of prefetched batches has filled or drained)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytorch_lightning as pl

from benchmarks.common import print_table, sync
from fgssl.data import APTOS2019DataModule
from fgssl.data.demo import render_fundus
from fgssl.data.prepare import fill_cache
from gpu_benchmarks.harness import (
    batch_loader,
    fixed_batch,
    module_for,
    reset_device,
    trainer_for,
)
from gpu_benchmarks.settings import Settings

NAME = "pipeline"


def _write_pngs(job: tuple[Path, list[int], tuple[int, int]]) -> None:
    """Synthetic fundus PNGs (rendered at 512 px, resized, sensor-like noise), fast zlib
    level: decoding costs the same whatever the level, and the cache decodes them once."""
    folder, indices, (width, height) = job
    cv2.setNumThreads(1)
    rng = np.random.default_rng(indices[0])
    noise = rng.normal(0, 1.0, (height + 64, width + 64, 3)).astype(np.float32)
    for index in indices:
        small = render_fundus(index % 5, min(512, width), rng)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        dy, dx = rng.integers(0, 64, 2)
        noisy = np.clip(image + noise[dy : dy + height, dx : dx + width], 0, 255).astype(np.uint8)
        cv2.imwrite(
            str(folder / f"{index:012x}.png"), noisy[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )


def write_aptos(root: Path, count: int, size: tuple[int, int], workers: int) -> Path:
    """``count`` PNGs of ``size`` (width, height) in the APTOS 2019 layout, in parallel."""
    folder = root / "train_images"
    folder.mkdir(parents=True)
    chunks = [list(range(count))[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_pngs, [(folder, chunk, size) for chunk in chunks if chunk]))
    ids = [f"{index:012x}" for index in range(count)]
    pd.DataFrame({"id_code": ids, "diagnosis": [i % 5 for i in range(count)]}).to_csv(
        root / "train.csv", index=False
    )
    return root


Epoch = list[tuple[float, int]]
"""(seconds since the epoch's start, images) at the end of each batch of one epoch."""


class EpochClock(pl.Callback):
    """When each training batch ended, epoch by epoch: on the host (no sync, which would
    stall the pipeline), and at the epoch's end once the device's queue is drained."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.epochs: list[Epoch] = []

    def on_train_epoch_start(self, *_: Any) -> None:
        sync(self.device)
        self.start = time.perf_counter()
        self.epochs.append([])

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, *_: Any
    ) -> None:
        self.epochs[-1].append((time.perf_counter() - self.start, len(batch["label"])))

    def on_train_epoch_end(self, *_: Any) -> None:
        sync(self.device)
        self.epochs[-1][-1] = (time.perf_counter() - self.start, self.epochs[-1][-1][1])


def rates(epochs: list[Epoch]) -> dict[str, float]:
    """Images per second over every epoch but the first: whole epochs, and the second half
    of each epoch's batches."""
    measured = epochs[1:]
    whole = sum(n for e in measured for _, n in e) / sum(e[-1][0] for e in measured)
    halves = [e[len(e) // 2 - 1 :] for e in measured]  # from the end of the batch before
    images = sum(n for h in halves for _, n in h[1:])
    return {"epoch": whole, "steady": images / sum(h[-1][0] - h[0][0] for h in halves)}


def loader_rates(datamodule: APTOS2019DataModule, epochs: int) -> dict[str, float]:
    loader = datamodule.train_dataloader()
    timings: list[Epoch] = []
    for _ in range(epochs):
        start, ends = time.perf_counter(), []
        for batch in loader:
            ends.append((time.perf_counter() - start, len(batch["label"])))
        timings.append(ends)
    del loader  # stops the persistent workers
    return rates(timings)


def phase_rates(settings: Settings, datamodule: APTOS2019DataModule, phase: str) -> dict[str, Any]:
    datamodule.enter_phase(phase)
    batches = len(datamodule.table("train")) // settings.pipeline_batch
    config = settings.config(settings.pipeline_batch, precision=settings.pipeline_precision)
    loader = loader_rates(datamodule, settings.pipeline_epochs)

    reset_device()
    clock = EpochClock(settings.device)
    trainer = trainer_for(config, settings.pipeline_epochs, [clock])
    trainer.fit(module_for(config, phase, "progressive"), datamodule=datamodule)
    pipeline = rates(clock.epochs)

    reset_device()
    alone = EpochClock(settings.device)
    on_device = batch_loader(fixed_batch(config), batches)
    trainer = trainer_for(config, settings.pipeline_epochs, [alone])
    trainer.fit(module_for(config, phase, "progressive"), train_dataloaders=on_device)
    model = rates(alone.epochs)
    result: dict[str, Any] = {"batches_per_epoch": batches}
    for span in ("epoch", "steady"):
        result[span] = {
            "loader_images_per_s": loader[span],
            "model_images_per_s": model[span],
            "pipeline_images_per_s": pipeline[span],
            "pipeline / model": pipeline[span] / model[span],
            "loader / model": loader[span] / model[span],
        }
    result["epoch_seconds"] = {
        "pipeline": [e[-1][0] for e in clock.epochs],
        "model": [e[-1][0] for e in alone.epochs],
    }
    print(f"  {phase}: {result['epoch']} {result['steady']}", file=sys.stderr, flush=True)
    return result


def run(settings: Settings) -> dict[str, Any]:
    workers = settings.pipeline_workers
    with tempfile.TemporaryDirectory(prefix="fgssl-gpu-pipeline-") as scratch:
        started = time.perf_counter()
        root = write_aptos(
            Path(scratch) / "aptos",
            settings.pipeline_images,
            settings.pipeline_source_size,
            workers,
        )
        generated = time.perf_counter() - started
        megabytes = sum(p.stat().st_size for p in (root / "train_images").iterdir()) / 2**20
        datamodule = APTOS2019DataModule(
            root,
            image_size=settings.size,
            resize_size=round(settings.size * 8 / 7),
            batch_size=settings.pipeline_batch,
            num_workers=workers,
            val_fraction=0.1,
            cache_dir=Path(scratch) / "cache",
            pin_memory=settings.device.startswith("cuda"),
            persistent_workers=True,
            duplicates="ignore",
        )
        report = fill_cache(datamodule, workers=workers)
        print(
            f"  {settings.pipeline_images} PNGs in {generated:.0f} s, "
            f"cache in {report.seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        phases = {
            phase: phase_rates(settings, datamodule, phase) for phase in ("finetune", "pretrain")
        }
    rows = [
        {"phase": phase, "span": span, **r[span]}
        for phase, r in phases.items()
        for span in ("epoch", "steady")
    ]
    print_table(
        f"whole pipeline vs its parts, images/s ({settings.pipeline_images} PNGs of "
        f"{settings.pipeline_source_size[0]}x{settings.pipeline_source_size[1]}, npy cache, "
        f"fundus augmentations, {workers} workers, batch {settings.pipeline_batch}, "
        f"{settings.pipeline_precision}, progressive step)",
        rows,
    )
    return {
        "config": settings.config(
            settings.pipeline_batch, precision=settings.pipeline_precision
        ).describe(),
        "images": settings.pipeline_images,
        "source_size": list(settings.pipeline_source_size),
        "png_megabytes_each": megabytes / settings.pipeline_images,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "generate_seconds": generated,
        "cache_fill_seconds": report.seconds,
        "phases": phases,
        "table": rows,
    }
