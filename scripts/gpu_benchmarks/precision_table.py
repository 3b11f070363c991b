"""(d) Images per second of both phases and both step modes in float32, bf16-mixed and
bf16-mixed with channels-last tensors (and, with --table-compiled, compiled), at one batch
size: the GPU table of docs/speed.md."""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.common import print_table
from gpu_benchmarks.harness import measure_step
from gpu_benchmarks.settings import Settings

NAME = "precision_table"


def variants(settings: Settings) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {
        "fp32": {},
        "bf16-mixed": {"precision": "bf16-mixed"},
        "bf16-mixed + channels_last": {"precision": "bf16-mixed", "channels_last": True},
    }
    if settings.table_compiled:
        found["bf16-mixed + channels_last + compile"] = {
            "precision": "bf16-mixed",
            "channels_last": True,
            "compile": {"backend": settings.compile_backend},
        }
    return found


def run(settings: Settings) -> dict[str, Any]:
    rows = []
    for phase in ("finetune", "pretrain"):
        for step_mode in ("progressive", "fused"):
            for name, options in variants(settings).items():
                config = settings.config(settings.table_batch, **options)
                result = measure_step(
                    config, phase, step_mode, warmup=settings.warmup, repeats=settings.repeats
                )
                rows.append(
                    {
                        "phase": phase,
                        "step_mode": step_mode,
                        "variant": name,
                        "images_per_s": result["images_per_s"],
                        "ms": result["seconds"] * 1e3,
                        "peak_mib": result["peak_mib"],
                    }
                )
                print(f"  {phase} {step_mode} {name}: done", file=sys.stderr, flush=True)
    for row in rows:
        fp32 = next(
            r["images_per_s"]
            for r in rows
            if (r["phase"], r["step_mode"], r["variant"])
            == (row["phase"], row["step_mode"], "fp32")
        )
        row["speed_vs_fp32"] = row["images_per_s"] / fp32
    print_table(
        f"images/s, {settings.backbone} {settings.size} px, batch {settings.table_batch}", rows
    )
    return {
        "config": settings.config(settings.table_batch).describe(),
        "batch": settings.table_batch,
        "rows": rows,
    }
