"""scripts/gpu_benchmark.py (issue 15's GPU measurements): the smoke run on the CPU writes
every section, the throughput arithmetic by hand, and the refusals of what cannot run.
The figures of a smoke run are not checked (timing is the benchmark's business)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from gpu_benchmark import SECTIONS, main  # noqa: E402
from gpu_benchmarks.pipeline import rates  # noqa: E402


def strict_json(text: str) -> Any:
    """JSON without NaN or infinity (Python's json would accept them)."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} in the JSON")

    return json.loads(text, parse_constant=refuse)


def test_rates_are_images_over_seconds_after_the_first_epoch() -> None:
    first = [(10.0, 4), (20.0, 4)]  # worker start: left out
    # batches of 4 ending at 1, 2, 3, 5 s, and of 2 ending at 1, 3 s
    epochs = [first, [(1.0, 4), (2.0, 4), (3.0, 4), (5.0, 4)], [(1.0, 2), (3.0, 2)]]
    result = rates(epochs)
    assert result["epoch"] == pytest.approx((16 + 4) / (5.0 + 3.0))
    # second halves: from the end of batch 2 (2 s) to 5 s: 8 images; from 1 s to 3 s: 2
    assert result["steady"] == pytest.approx((8 + 2) / (3.0 + 2.0))


def test_the_full_run_needs_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--device", "cpu"])
    assert "on the CPU use --smoke" in capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        with pytest.raises(SystemExit):
            main(["--device", "cuda", "--smoke"])
        assert "no CUDA device here" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    command = [sys.executable, str(SCRIPTS / "gpu_benchmark.py"), "--smoke", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    results = strict_json(out.read_text())
    assert results["smoke"] is True
    assert set(SECTIONS) == {"step_costs", "precision_table", "syncs", "pipeline", "compile"}
    for name in SECTIONS:
        assert "error" not in results[name], results[name]
        assert results["seconds"][name] > 0
    assert results["environment"]["torch"]

    steps = results["step_costs"]
    assert steps["batch_search"]["largest_batch"] == 8  # a CPU never runs out of memory
    assert set(steps["batches"]) == {"4", "8"}
    for batch in steps["batches"].values():
        assert set(batch["implementations"]) == {"for_loop", "foreach", "fused"}
        for row in batch["implementations"].values():
            assert row["progressive_finetune"]["optimizer_steps_per_batch"] == 4
            assert row["finetune / (K+1) full passes"] > 0
            assert row["pretrain / 2(K+1) full passes"] > 0
    assert len(steps["table"]) == 6

    table = results["precision_table"]["rows"]
    assert {(r["phase"], r["step_mode"]) for r in table} == {
        (phase, mode) for phase in ("finetune", "pretrain") for mode in ("progressive", "fused")
    }
    assert {r["variant"] for r in table} == {"fp32", "bf16-mixed", "bf16-mixed + channels_last"}
    assert all(r["speed_vs_fp32"] == 1.0 for r in table if r["variant"] == "fp32")

    syncs = results["syncs"]
    assert syncs["counted"] is False  # CUDA's sync debug mode: nothing to count on a CPU
    assert len(syncs["rows"]) == 4 and all(
        r["syncs_per_batch_1_to_3"] is None for r in syncs["rows"]
    )

    pipeline = results["pipeline"]
    assert set(pipeline["phases"]) == {"finetune", "pretrain"}
    for phase in pipeline["phases"].values():
        for span in ("epoch", "steady"):
            assert phase[span]["pipeline_images_per_s"] > 0
            assert phase[span]["loader_images_per_s"] > 0

    compiled = results["compile"]
    assert set(compiled["first_pretrain_batch"]) == {"eager", "compiled (aot_eager)"}
    for run in compiled["first_pretrain_batch"].values():
        assert len(run["stage_losses"]) == 4 and all(run["finite"])
    assert [row["stage"] for row in compiled["forward_compiled_vs_eager"]] == [0, 1, 2, 3]
    assert set(compiled["speedup_bf16"]) == {"pretrain", "finetune"}
    assert compiled["versions"]["torch"]
