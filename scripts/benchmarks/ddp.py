"""Data-parallel scaling: a training step on 2 CPU processes (DDP, gloo) against 1 process
on the same global batch."""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.common import print_table
from benchmarks.steps import run_measurement

NAME = "ddp"


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.device != "cpu":
        print("\n## ddp: measured on CPU processes only; skipped on", args.device)
        return {}
    rows = []
    kinds = ("progressive_finetune", "progressive_pretrain", "fused_pretrain")
    # smoke: one kind is enough to check that 2 processes start, train and report
    for kind in kinds[:1] if args.smoke else kinds:
        single = run_measurement(kind, args, devices=1)
        double = run_measurement(kind, args, devices=2)
        speedup = single["seconds"] / double["seconds"]
        rows.append(
            {
                "step": kind,
                "1_process_ms": single["seconds"] * 1e3,
                "2_processes_ms": double["seconds"] * 1e3,
                "speedup": speedup,
                "efficiency": speedup / 2,
            }
        )
    print_table(f"DDP on CPU processes ({single['config']}, global batch)", rows)
    return {"rows": rows}
