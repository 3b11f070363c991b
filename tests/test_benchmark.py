"""scripts/benchmark.py --smoke runs every section and writes its results (the figures of a
smoke run are not checked: timing is the benchmark's own business, not the test suite's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from benchmark import sections  # noqa: E402

STEP_KEYS = {"seconds", "peak_mib", "stages", "config"}


@pytest.mark.slow
def test_benchmark_smoke_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "benchmark.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["smoke"] is True
    assert set(sections()) == {"data", "ddp", "jigsaw", "options", "steps"}
    assert set(sections()) <= set(results)

    assert [row["grid"] for row in results["jigsaw"]] == [2, 4, 8]
    assert set(results["jigsaw"][0]) == {
        "grid",
        "fgssl_ms",
        "reference_ms",
        "copy_ms",
        "speedup_vs_reference",
        "fgssl_over_copy",
    }

    steps = results["steps"]["steps"]
    assert set(steps) == {
        "backbone_pass",
        "full_pass",
        "progressive_finetune",
        "progressive_pretrain",
        "fused_finetune",
        "fused_pretrain",
    }
    assert all(set(step) == STEP_KEYS for step in steps.values())
    assert steps["progressive_finetune"]["stages"] == 4  # K=3 granularities + the concat
    assert "32px" in steps["full_pass"]["config"]  # the smoke run's tiny images
    assert len(results["steps"]["ratios"]) == 9
    assert "## training steps" in result.stdout

    options = results["options"]
    assert {row["option"] for row in options["options"]} == {
        "plain",
        "channels_last",
        "bf16-mixed",
    }
    assert {row["phase"] for row in options["options"]} == {"pretrain", "finetune"}
    assert [row["checkpointing"] for row in options["activation_checkpointing"]] == [
        False,
        True,
        "ratio on/off",
    ]

    assert results["data"]["images"] == 10
    assert {"raw_images_per_s", "cached_images_per_s", "jpg_speedup"} <= set(results["data"])

    # one kind of step on 2 DDP processes (the full run measures three)
    (ddp_row,) = results["ddp"]["rows"]
    assert ddp_row["step"] == "progressive_finetune"
    assert {"1_process_ms", "2_processes_ms", "speedup", "efficiency"} <= set(ddp_row)
