"""scripts/benchmark.py runs and reports every section (tiny sizes; the figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


@pytest.mark.slow
def test_benchmark_quick_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [row["grid"] for row in results["jigsaw"]] == [2, 4, 8]
    steps = results["steps"]["steps"]
    assert set(steps) >= {"full_pass", "progressive_finetune", "fused_pretrain"}
    assert all(step["seconds"] > 0 for step in steps.values())
    assert "## training steps" in result.stdout
    assert {"data", "ddp", "options"} <= set(results)
    assert len(results["ddp"]["rows"]) == 3
    assert {row["option"] for row in results["options"]["options"]} >= {"plain", "channels_last"}
