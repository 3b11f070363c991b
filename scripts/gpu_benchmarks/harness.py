"""Timing FGSSLModule's training steps and plain full passes in this process, with every
figure capped by a number of steps (never by a time budget).

Each measurement builds a fresh network (seeded), trains ``warmup + repeats`` batches of one
fixed batch that already lies on the device (so no input transfer is timed) and reports the
median batch time, images per second and the peak allocated device memory (CUDA; on the
CPU, null: the process's peak RSS would mix all measurements of this process).
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from typing import Any, cast

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from benchmarks.common import sync, time_call
from fgssl import FGSSLModule, FGSSLNet
from fgssl.optim import build_optimizer

NUM_CLASSES = 5


@dataclasses.dataclass(frozen=True)
class Config:
    """One measurement's model, input and speed options."""

    backbone: str
    batch: int
    size: int
    device: str
    schedule: tuple[int, ...] = (16, 8, 4)
    feat_dim: int = 512
    hidden_dim: int = 1024
    precision: str = "32-true"  # a Lightning precision string
    channels_last: bool = False
    compile: bool | dict[str, Any] = False
    implementation: str = "auto"  # optim.implementation

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_net(config: Config) -> FGSSLNet:
    torch.manual_seed(0)
    return FGSSLNet(
        config.backbone,
        num_classes=NUM_CLASSES,
        num_granularities=len(config.schedule),
        feat_dim=config.feat_dim,
        hidden_dim=config.hidden_dim,
    )


def fixed_batch(config: Config) -> dict[str, torch.Tensor]:
    """Random images, views and labels on the device (seeded)."""
    generator = torch.Generator().manual_seed(0)
    shape = (config.batch, 3, config.size, config.size)
    batch = {
        "image": torch.randn(shape, generator=generator),
        "view": torch.randn(shape, generator=generator),
        "label": torch.randint(0, NUM_CLASSES, (config.batch,), generator=generator),
    }
    return {key: value.to(config.device) for key, value in batch.items()}


def batch_loader(batch: dict[str, torch.Tensor], times: int = 1) -> DataLoader[Any]:
    """A loader that yields ``batch`` (as it is: on its device) ``times`` times."""
    return DataLoader(cast(Any, [batch] * times), batch_size=None)


def reset_device() -> None:
    """Free what the previous measurement left and restart the peak-memory count."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> float | None:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return None


class BatchClock(pl.Callback):
    """Wall-clock seconds of every training batch, the device's queue drained at both ends."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.durations: list[float] = []

    def on_train_batch_start(self, *_: Any) -> None:
        sync(self.device)
        self.start = time.perf_counter()

    def on_train_batch_end(self, *_: Any) -> None:
        sync(self.device)
        self.durations.append(time.perf_counter() - self.start)


def module_for(config: Config, phase: str, step_mode: str, **options: Any) -> FGSSLModule:
    """An FGSSLModule of ``config`` (``options``: more FGSSLModule arguments, or other
    values of lr, ...)."""
    arguments: dict[str, Any] = dict(
        phase=phase,
        step_mode=step_mode,
        schedule=list(config.schedule),
        lr=1e-3,
        channels_last=config.channels_last,
        compile=config.compile,
        optimizer_implementation=config.implementation,
    )
    return FGSSLModule(make_net(config), **{**arguments, **options})


def trainer_for(
    config: Config, epochs: int, callbacks: list[pl.Callback], **kwargs: Any
) -> pl.Trainer:
    options: dict[str, Any] = dict(
        accelerator="gpu" if config.device.startswith("cuda") else "cpu",
        devices=1,
        precision=config.precision,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=50,
        callbacks=callbacks,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


def measure_step(
    config: Config,
    phase: str,
    step_mode: str,
    *,
    warmup: int,
    repeats: int,
    check_nonfinite: bool = True,
) -> dict[str, Any]:
    """One training step of ``step_mode`` in ``phase`` on a fixed batch, through Lightning
    (its hooks and logging included, as in a run). ``check_nonfinite=False`` times a step
    whose losses may be NaN (the module's check would stop it)."""
    reset_device()
    module = module_for(config, phase, step_mode)
    if not check_nonfinite:
        module._raise_if_nonfinite = lambda: None  # type: ignore[method-assign]
    loader = batch_loader(fixed_batch(config))
    clock = BatchClock(config.device)
    trainer_for(config, warmup + repeats, [clock]).fit(module, train_dataloaders=loader)
    seconds = statistics.median(clock.durations[warmup:])
    result = {
        "seconds": seconds,
        "images_per_s": config.batch / seconds,
        "peak_mib": peak_mib(config.device),
        "stages": len(module.stages),
        "optimizer_steps_per_batch": len(module.stages) if step_mode == "progressive" else 1,
    }
    return result


def measure_full_pass(config: Config, *, warmup: int, repeats: int) -> dict[str, Any]:
    """A plain forward + backward + SGD step of the whole network (every head's
    cross-entropy), without Lightning: the unit the step costs are compared with."""
    reset_device()
    net = make_net(config).to(config.device)
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)
    groups = [{"params": list(net.parameters())}]
    optimizer = build_optimizer(
        lambda params, **kw: torch.optim.SGD(
            params, lr=1e-3, momentum=0.9, weight_decay=5e-4, **kw
        ),
        groups,
        config.implementation,
    )
    batch = fixed_batch(config)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(config.precision)
    device_type = "cuda" if config.device.startswith("cuda") else "cpu"

    def step() -> None:
        optimizer.zero_grad(set_to_none=False)
        with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = net(batch["image"]).logits
            loss = torch.stack([F.cross_entropy(lg.float(), batch["label"]) for lg in logits]).sum()
        loss.backward()
        optimizer.step()

    seconds = time_call(step, device=config.device, warmup=warmup, repeats=repeats)
    return {
        "seconds": seconds,
        "images_per_s": config.batch / seconds,
        "peak_mib": peak_mib(config.device),
    }


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error)
