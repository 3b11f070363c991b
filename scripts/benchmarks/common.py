"""Helpers shared by the benchmark sections: timing, peak memory, tables."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def time_call(
    fn: Callable[[], Any], *, repeats: int, warmup: int = 1, device: str = "cpu"
) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sync(device: str | torch.device) -> None:
    """Wait for queued CUDA work, so that wall-clock times are complete."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device, baseline_rss: float) -> float:
    """Peak allocated CUDA memory, or on the CPU the peak RSS above ``baseline_rss``."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib() - baseline_rss


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None (undefined, printed as "n/a") when the
    denominator is 0: e.g. the peak memory of a measurement that allocated nothing beyond
    an earlier one's peak in the same process (a smoke run measures in one process)."""
    return numerator / denominator if denominator else None


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
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
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
