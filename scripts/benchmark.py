"""Benchmarks of fgssl, side by side in one run; prints tables and writes JSON.

    python scripts/benchmark.py                 # the full set (CPU: a few minutes)
    python scripts/benchmark.py --quick         # tiny sizes, to check that it runs
    python scripts/benchmark.py --only jigsaw   # one section: jigsaw, steps

Sections:
- jigsaw: time per batch of fgssl's vectorised jigsaw against the reference implementation's
  approach (a per-tile swap loop applied to each image) and against a plain copy of the batch
  (the memory-bound limit).
- steps: one training step of FGSSLModule (progressive / fused, finetune / pretrain) against
  (K+1) or 2(K+1) full forward+backward+SGD passes of FGSSLNet on the same batch, a full
  FGSSLNet pass against a bare timm backbone pass, and the peak memory of each. Every
  measurement runs in a fresh process, so peak RSS (CPU) or peak allocated memory (CUDA)
  belongs to that measurement alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fgssl import jigsaw

RESULTS = Path(__file__).resolve().parents[1] / "benchmark-results"


# ----------------------------------------------------------------------------- timing
def time_call(
    fn: Callable[[], Any], *, repeats: int, warmup: int = 1, device: str = "cpu"
) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- jigsaw
def reference_jigsaw(images: torch.Tensor, grid: int) -> torch.Tensor:
    """The reference implementations' approach: swap tiles one by one, image by image."""
    tile_h, tile_w = images.shape[2] // grid, images.shape[3] // grid
    output = images.clone()
    for image in output:
        cells = [(r, c) for r in range(grid) for c in range(grid)]
        random.shuffle(cells)
        for r, c in cells:
            first = image[:, :tile_h, :tile_w].clone()
            tile = image[:, r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w]
            image[:, :tile_h, :tile_w] = tile.clone()
            tile.copy_(first)
    return output


def bench_jigsaw(args: argparse.Namespace) -> list[dict[str, Any]]:
    size, batch = (64, 4) if args.quick else (224, 32)
    grids = [2, 4, 8] if args.quick else [2, 4, 8, 16, 32]
    images = torch.randn(batch, 3, size, size, device=args.device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for grid in grids:
        ours = time_call(
            lambda g=grid: jigsaw(images, g, generator=generator),
            repeats=args.repeats,
            device=args.device,
        )
        reference = time_call(
            lambda g=grid: reference_jigsaw(images, g),
            repeats=max(1, args.repeats // 3),
            device=args.device,
        )
        copy = time_call(images.clone, repeats=args.repeats, device=args.device)
        rows.append(
            {
                "grid": grid,
                "fgssl_ms": ours * 1e3,
                "reference_ms": reference * 1e3,
                "copy_ms": copy * 1e3,
                "speedup_vs_reference": reference / ours,
                "fgssl_over_copy": ours / copy,
            }
        )
    _print_table(f"jigsaw, batch {batch}x3x{size}x{size} on {args.device}", rows)
    return rows


# ------------------------------------------------------------------------------ steps
STEP_KINDS = (
    "backbone_pass",
    "full_pass",
    "progressive_finetune",
    "progressive_pretrain",
    "fused_finetune",
    "fused_pretrain",
)


def bench_steps(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for kind in STEP_KINDS:
        command = [
            sys.executable,
            __file__,
            "--measure-step",
            kind,
            "--device",
            args.device,
            "--repeats",
            str(args.repeats),
        ] + (["--quick"] if args.quick else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[kind] = json.loads(output.strip().splitlines()[-1])
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
        "fused_pretrain / progressive_pretrain (peak memory)": results["fused_pretrain"]["peak_mib"]
        / results["progressive_pretrain"]["peak_mib"],
        "fused_finetune / progressive_finetune (peak memory)": results["fused_finetune"]["peak_mib"]
        / results["progressive_finetune"]["peak_mib"],
    }
    config = results["full_pass"]["config"]
    _print_table(
        f"training steps ({config}) on {args.device}",
        [
            {"step": kind, "ms": r["seconds"] * 1e3, "peak_mib": r["peak_mib"]}
            for kind, r in results.items()
        ],
    )
    _print_table("ratios", [{"ratio": name, "value": value} for name, value in ratios.items()])
    return {"steps": results, "ratios": ratios}


def measure_step(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run in a fresh process: time one kind of step and report its peak memory."""
    import pytorch_lightning as pl
    import timm
    import torch.nn.functional as F

    from fgssl import FGSSLModule, FGSSLNet

    torch.manual_seed(0)
    backbone, batch, size = ("resnet18", 4, 64) if args.quick else ("resnet18", 16, 224)
    device = torch.device(args.device)
    x = torch.randn(batch, 3, size, size, device=device)
    view = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 5, (batch,), device=device)
    config = f"{backbone}, batch {batch}, {size}px, K=3"
    baseline_rss = _peak_rss_mib()
    _reset_peak(device)

    if kind in ("backbone_pass", "full_pass"):
        if kind == "backbone_pass":
            model = timm.create_model(backbone, num_classes=5).to(device)

            def loss_of() -> torch.Tensor:
                return F.cross_entropy(model(x), labels)
        else:
            model = FGSSLNet(backbone, num_classes=5).to(device)

            def loss_of() -> torch.Tensor:
                return torch.stack([F.cross_entropy(lg, labels) for lg in model(x).logits]).sum()

        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

        def step() -> None:
            optimizer.zero_grad(set_to_none=False)
            loss_of().backward()
            optimizer.step()

        seconds = time_call(step, repeats=args.repeats, warmup=2, device=args.device)
        return {
            "seconds": seconds,
            "peak_mib": _peak(device, baseline_rss),
            "stages": 4,
            "config": config,
        }

    step_mode, phase = kind.split("_")
    module = FGSSLModule(
        FGSSLNet(backbone, num_classes=5),
        phase=phase,
        step_mode=step_mode,
        schedule=[8, 4, 2],
        lr=1e-3,
    )
    fixed = {"image": x.cpu(), "label": labels.cpu(), "view": view.cpu()}
    loader = torch.utils.data.DataLoader([fixed], batch_size=None)
    durations: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_start(self, *_: Any) -> None:
            _sync(args.device)
            self.start = time.perf_counter()

        def on_train_batch_end(self, *_: Any) -> None:
            _sync(args.device)
            durations.append(time.perf_counter() - self.start)

    warmup = 2
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
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
        "peak_mib": _peak(device, baseline_rss),
        "stages": len(module.stages),
        "config": config,
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device, baseline_rss: float) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _peak_rss_mib() - baseline_rss


# ---------------------------------------------------------------------------- output
def _print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n## {title}")
    if not rows:
        return
    columns = list(rows[0])
    cells = [[_format(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def _format(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument("--only", choices=["jigsaw", "steps"], action="append")
    parser.add_argument("--out", type=Path, default=RESULTS / "benchmark.json")
    parser.add_argument("--measure-step", choices=STEP_KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_step:
        print(json.dumps(measure_step(args.measure_step, args)))
        return
    sections = args.only or ["jigsaw", "steps"]
    results: dict[str, Any] = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
    }
    if "jigsaw" in sections:
        results["jigsaw"] = bench_jigsaw(args)
    if "steps" in sections:
        results["training_steps"] = bench_steps(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
