"""(a) The progressive steps against full passes, per optimizer implementation, at a small
batch and at the largest batch that fits: progressive finetune step / (K+1) full passes and
progressive pretrain step / 2(K+1) full passes (issue 15's targets: <= 0.8 and <= 0.6)."""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.common import print_table
from gpu_benchmarks.harness import is_out_of_memory, measure_full_pass, measure_step, reset_device
from gpu_benchmarks.settings import Settings

NAME = "step_costs"


def largest_batch(settings: Settings) -> dict[str, Any]:
    """The largest of ``settings.batch_candidates`` whose progressive pretrain step fits
    (one step each, in order, until the first that runs out of memory)."""
    fits, failed = None, None
    for batch in settings.batch_candidates:
        try:
            measure_step(settings.config(batch), "pretrain", "progressive", warmup=0, repeats=1)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            failed = batch
            break
        fits = batch
    reset_device()
    return {
        "largest_batch": fits,
        "first_that_did_not_fit": failed,
        "tried": list(settings.batch_candidates),
    }


def costs_at(settings: Settings, batch: int, *, warmup: int, repeats: int) -> dict[str, Any]:
    """Full passes and progressive steps of every implementation at ``batch``."""
    rows: dict[str, Any] = {}
    default_pass = measure_full_pass(settings.config(batch), warmup=warmup, repeats=repeats)
    for implementation in settings.implementations:
        config = settings.config(batch, implementation=implementation)
        full = measure_full_pass(config, warmup=warmup, repeats=repeats)
        finetune = measure_step(config, "finetune", "progressive", warmup=warmup, repeats=repeats)
        pretrain = measure_step(config, "pretrain", "progressive", warmup=warmup, repeats=repeats)
        stages = finetune["stages"]
        rows[implementation] = {
            "full_pass": full,
            "progressive_finetune": finetune,
            "progressive_pretrain": pretrain,
            "finetune / (K+1) full passes": finetune["seconds"]
            / (stages * default_pass["seconds"]),
            "pretrain / 2(K+1) full passes": pretrain["seconds"]
            / (2 * stages * default_pass["seconds"]),
            "finetune / (K+1) full passes, same implementation": finetune["seconds"]
            / (stages * full["seconds"]),
            "pretrain / 2(K+1) full passes, same implementation": pretrain["seconds"]
            / (2 * stages * full["seconds"]),
        }
        print(f"  batch {batch}, {implementation}: done", file=sys.stderr, flush=True)
    return {"full_pass_pytorch_default": default_pass, "implementations": rows}


def run(settings: Settings) -> dict[str, Any]:
    search = largest_batch(settings)
    batches = {settings.small_batch: (settings.warmup, settings.repeats)}
    if search["largest_batch"] is not None:
        batches[search["largest_batch"]] = (settings.large_warmup, settings.large_repeats)
    results = {
        str(batch): costs_at(settings, batch, warmup=warmup, repeats=repeats)
        for batch, (warmup, repeats) in batches.items()
    }
    table = [
        {
            "batch": batch,
            "implementation": implementation,
            "finetune_ratio": row["finetune / (K+1) full passes"],
            "pretrain_ratio": row["pretrain / 2(K+1) full passes"],
            "finetune_ms": row["progressive_finetune"]["seconds"] * 1e3,
            "pretrain_ms": row["progressive_pretrain"]["seconds"] * 1e3,
            "full_pass_ms": row["full_pass"]["seconds"] * 1e3,
        }
        for batch, result in results.items()
        for implementation, row in result["implementations"].items()
    ]
    print_table(
        f"progressive steps / full passes ({settings.backbone}, {settings.size} px, "
        f"K={len(settings.schedule)}, float32; full pass: PyTorch's default SGD)",
        table,
    )
    return {
        "config": settings.config(settings.small_batch).describe(),
        "batch_search": search,
        "batches": results,
        "table": table,
    }
