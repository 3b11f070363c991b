"""The GPU measurements of issue 15 in one call, written to one JSON file section by section
(a section that fails records its error and the others still run):

    python3 scripts/gpu_benchmark.py --out docs/benchmarks/gpu-benchmark.json   # on a GPU
    python3 scripts/gpu_benchmark.py --smoke --out /tmp/smoke.json             # CPU check

{sections}

Every figure is capped by a number of steps, never by a time budget; on an H200 the whole
run is meant to take under 8 minutes. ``--smoke`` runs every section on tiny inputs on the
CPU (timm's test_resnet, 32 px, a dozen small PNGs, the aot_eager compile backend): it checks
that each section runs and writes its JSON; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_benchmarks import compile_repro, pipeline, precision_table, step_costs, syncs
from gpu_benchmarks.settings import settings_for

SECTIONS = {
    module.NAME: module for module in (step_costs, precision_table, syncs, pipeline, compile_repro)
}
"""In the order they run: the step costs first (the issue's targets), compiling last (the
slowest to start, and what failed before)."""
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "gpu-benchmark.json"


def environment(device: str) -> dict[str, Any]:
    import pytorch_lightning as pl

    found: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "lightning": pl.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if device.startswith("cuda"):
        properties = torch.cuda.get_device_properties(device)
        found["gpu"] = properties.name
        found["gpu_memory_gib"] = properties.total_memory / 2**30
    return found


def main(argv: list[str] | None = None) -> int:
    summary = "\n".join(
        f"- {name}: {(module.__doc__ or '').strip().splitlines()[0]}"
        for name, module in SECTIONS.items()
    )
    parser = argparse.ArgumentParser(
        description=__doc__.format(sections=summary),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny inputs on the CPU: checks that every section runs",
    )
    parser.add_argument(
        "--only", choices=list(SECTIONS), action="append", help="run these sections only"
    )
    parser.add_argument(
        "--table-compiled",
        action="store_true",
        help="add a compiled column to the precision table (minutes)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device here (use --smoke on the CPU)")
    if not args.smoke and not args.device.startswith("cuda"):
        parser.error(
            "the full benchmark is for a CUDA GPU (ResNet-50 at 224 px); on the CPU use --smoke"
        )
    settings = settings_for(args.device, smoke=args.smoke, table_compiled=args.table_compiled)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # as trainer=gpu (Lightning keeps it)
    results: dict[str, Any] = {
        "environment": environment(args.device),
        "smoke": args.smoke,
        "seconds": {},
    }
    failed = []
    started = time.perf_counter()
    for name in args.only or list(SECTIONS):
        section_start = time.perf_counter()
        print(f"== {name} (at {section_start - started:.0f} s)", file=sys.stderr, flush=True)
        try:
            results[name] = SECTIONS[name].run(settings)
        except Exception as error:  # recorded; the next sections still run
            traceback.print_exc()
            results[name] = {"error": f"{type(error).__name__}: {error}".splitlines()[0]}
            failed.append(name)
        results["seconds"][name] = time.perf_counter() - section_start
        write(results, args.out)
    results["seconds"]["total"] = time.perf_counter() - started
    write(results, args.out)
    print(f"\nwrote {args.out} in {results['seconds']['total']:.0f} s", file=sys.stderr)
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def write(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(results), indent=1, allow_nan=False) + "\n")


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity written as a string ("nan", "inf"): JSON has
    neither, and such a figure must not end the run."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
