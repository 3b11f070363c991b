"""Benchmarks of fgssl, side by side in one run; prints tables and writes JSON.

    python scripts/benchmark.py                 # every section (CPU: several minutes)
    python scripts/benchmark.py --smoke         # every section on tiny inputs, once: checks
                                                # that it runs (seconds; numbers meaningless)
    python scripts/benchmark.py --only jigsaw   # some sections only (repeatable)

Each section is a module of scripts/benchmarks/ with ``NAME`` and ``run(args) -> dict``:
{sections}
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmarks

RESULTS = Path(__file__).resolve().parents[1] / "benchmark-results"


def sections() -> dict[str, ModuleType]:
    """The benchmark sections, by name, in alphabetical order of their modules."""
    found = {}
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"benchmarks.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found[module.NAME] = module
    return found


def main() -> None:
    available = sections()
    summary = "\n".join(
        f"- {name}: {(m.__doc__ or '').strip().splitlines()[0]}" for name, m in available.items()
    )
    parser = argparse.ArgumentParser(
        description=__doc__.format(sections=summary),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="each section on the smallest inputs, one timed call, step measurements in this "
        "process: checks that every section runs and writes its results (the figures mean "
        "nothing)",
    )
    parser.add_argument("--only", choices=sorted(available), action="append")
    parser.add_argument("--out", type=Path, default=RESULTS / "benchmark.json")
    args = parser.parse_args()
    if args.smoke:
        args.repeats = 1
    results: dict[str, Any] = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "smoke": args.smoke,
    }
    for name in args.only or list(available):
        results[name] = available[name].run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
