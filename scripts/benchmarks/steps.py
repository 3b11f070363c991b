"""The cost of FGSSLModule's training steps against full network passes.

Every measurement runs in a fresh process (``python -m benchmarks.steps KIND``), so that its
peak memory (RSS on the CPU, allocated memory on CUDA) belongs to it alone; a ``--smoke``
run measures in its own process, except on several DDP processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (
    peak_mib,
    peak_rss_mib,
    print_table,
    ratio,
    reset_peak,
    sync,
    time_call,
)

NAME = "steps"
SCRIPTS = Path(__file__).resolve().parents[1]

STEP_KINDS = (
    "backbone_pass",
    "full_pass",
    "progressive_finetune",
    "progressive_pretrain",
    "fused_finetune",
    "fused_pretrain",
)


def run_measurement(kind: str, args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    """Measure one kind of step in a fresh process (in this one for a smoke run on one
    device). ``options``: repeats, batch, size, precision (Lightning precision string),
    channels_last, compile, checkpointing, devices."""
    flags = [kind, "--device", args.device, "--repeats", str(options.pop("repeats", args.repeats))]
    if args.smoke:
        flags.append("--smoke")
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags += [flag] if value else []
        elif value is not None:
            flags += [flag, str(value)]
    if args.smoke and options.get("devices", 1) == 1:
        # A fresh process only keeps each peak memory apart; a smoke run's numbers mean
        # nothing, and starting Python, torch and Lightning costs seconds per measurement.
        return measure_step(kind, _parser().parse_args(flags))
    command = [sys.executable, "-m", "benchmarks.steps", *flags]
    path = os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    results = {kind: run_measurement(kind, args) for kind in STEP_KINDS}
    k_plus_1 = results["progressive_finetune"]["stages"]
    full = results["full_pass"]["seconds"]
    ratios = {
        "progressive_finetune / (K+1) full passes": results["progressive_finetune"]["seconds"]
        / (k_plus_1 * full),
        "progressive_pretrain / 2(K+1) full passes": results["progressive_pretrain"]["seconds"]
        / (2 * k_plus_1 * full),
        "fused_finetune / (K+1) full passes": results["fused_finetune"]["seconds"]
        / (k_plus_1 * full),
        "fused_pretrain / 2(K+1) full passes": results["fused_pretrain"]["seconds"]
        / (2 * k_plus_1 * full),
        "progressive_pretrain / fused_pretrain (speed-up)": results["progressive_pretrain"][
            "seconds"
        ]
        / results["fused_pretrain"]["seconds"],
        "fused_finetune / progressive_finetune (time)": results["fused_finetune"]["seconds"]
        / results["progressive_finetune"]["seconds"],
        "full FGSSLNet pass / bare backbone pass": full / results["backbone_pass"]["seconds"],
        "fused_pretrain / progressive_pretrain (peak memory)": ratio(
            results["fused_pretrain"]["peak_mib"], results["progressive_pretrain"]["peak_mib"]
        ),
        "fused_finetune / progressive_finetune (peak memory)": ratio(
            results["fused_finetune"]["peak_mib"], results["progressive_finetune"]["peak_mib"]
        ),
    }
    config = results["full_pass"]["config"]
    print_table(
        f"training steps ({config}) on {args.device}",
        [
            {"step": kind, "ms": r["seconds"] * 1e3, "peak_mib": r["peak_mib"]}
            for kind, r in results.items()
        ],
    )
    print_table("ratios", [{"ratio": name, "value": value} for name, value in ratios.items()])
    return {"steps": results, "ratios": ratios}


def measure_step(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run in a fresh process: time one kind of step and report its peak memory."""
    import pytorch_lightning as pl
    import timm
    import torch.nn.functional as F

    from fgssl import FGSSLModule, FGSSLNet

    torch.manual_seed(0)
    # smoke: the smallest batch that splits into 2 DDP processes of 2 (batch norm needs 2)
    backbone, batch, size = ("resnet18", 4, 32) if args.smoke else ("resnet18", 16, 224)
    batch, size = args.batch or batch, args.size or size
    device = torch.device(args.device)
    x = torch.randn(batch, 3, size, size, device=device)
    view = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 5, (batch,), device=device)
    config = f"{backbone}, batch {batch}, {size}px, K=3, precision {args.precision}"
    baseline_rss = peak_rss_mib()
    reset_peak(device)

    if kind in ("backbone_pass", "full_pass"):
        if kind == "backbone_pass":
            model = timm.create_model(backbone, num_classes=5).to(device)

            def loss_of() -> torch.Tensor:
                return F.cross_entropy(model(x), labels)
        else:
            model = FGSSLNet(
                backbone, num_classes=5, activation_checkpointing=args.checkpointing
            ).to(device)

            def loss_of() -> torch.Tensor:
                return torch.stack([F.cross_entropy(lg, labels) for lg in model(x).logits]).sum()

        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

        def step() -> None:
            optimizer.zero_grad(set_to_none=False)
            loss_of().backward()
            optimizer.step()

        warmup = 1 if args.smoke else 2
        seconds = time_call(step, repeats=args.repeats, warmup=warmup, device=args.device)
        return {
            "seconds": seconds,
            "peak_mib": peak_mib(device, baseline_rss),
            "stages": 4,
            "config": config,
        }

    step_mode, phase = kind.split("_")
    if args.devices > 1:  # the same global batch, split over the processes
        x, view, labels = (t[: batch // args.devices] for t in (x, view, labels))
    module = FGSSLModule(
        FGSSLNet(backbone, num_classes=5, activation_checkpointing=args.checkpointing),
        phase=phase,  # type: ignore[arg-type]
        step_mode=step_mode,  # type: ignore[arg-type]
        schedule=[8, 4, 2],
        lr=1e-3,
        channels_last=args.channels_last,
        compile=args.compile,
    )
    fixed = {"image": x.cpu(), "label": labels.cpu(), "view": view.cpu()}
    loader = torch.utils.data.DataLoader([fixed], batch_size=None)
    durations: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_start(self, *_: Any) -> None:
            sync(args.device)
            self.start = time.perf_counter()

        def on_train_batch_end(self, *_: Any) -> None:
            sync(args.device)
            durations.append(time.perf_counter() - self.start)

    warmup = 1 if args.smoke else 2
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=args.devices,
        strategy="ddp_find_unused_parameters_true" if args.devices > 1 else "auto",
        precision=args.precision,
        max_epochs=warmup + args.repeats,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    trainer.fit(module, train_dataloaders=loader)
    return {
        "seconds": statistics.median(durations[warmup:]),
        "peak_mib": peak_mib(device, baseline_rss),
        "stages": len(module.stages),
        "config": config,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=STEP_KINDS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--devices", type=int, default=1)
    return parser


def _main() -> None:
    args = _parser().parse_args()
    result = measure_step(args.kind, args)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        print(json.dumps(result))


if __name__ == "__main__":
    _main()
