"""scripts/runs_table.py: each finished run's test metrics with its bootstrap interval, and
mean ± sample sd per group of seeds (checked against numpy's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "runs_table.py"


def _run(folder: Path, acc: float, seed: int | None = None) -> Path:
    folder.mkdir(parents=True)
    results = {
        "test": {"combined": {"acc": acc}},
        "intervals": {"test": {"combined": {"acc": {"low": acc - 0.1, "high": acc + 0.1}}}},
    }
    (folder / "results.json").write_text(json.dumps(results))
    if seed is not None:
        (folder / "config.yaml").write_text(f"seed: {seed}\n")
    return folder


def test_runs_their_intervals_and_the_mean_and_sd_of_each_group(tmp_path: Path) -> None:
    values = [0.5, 0.7, 0.75]
    runs = [_run(tmp_path / f"base_s{seed}", acc) for seed, acc in enumerate(values)]
    runs.append(_run(tmp_path / "pilot", 0.4, seed=7))
    (tmp_path / "unfinished_s3").mkdir()  # no results.json: left out
    runs.append(tmp_path / "unfinished_s3")
    command = [sys.executable, str(SCRIPT), *map(str, runs), "--metrics", "combined/acc"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "| base | 1 | 0.700 [0.600, 0.800] |" in out
    assert "| pilot | 7 | 0.400 [0.300, 0.500] |" in out  # the seed from config.yaml
    mean, sd = np.mean(values), np.std(values, ddof=1)
    assert f"| base | 3 | {mean:.3f} ± {sd:.3f} |" in out
    assert "| pilot | 1 | 0.400 |" in out
    assert "unfinished" not in out
