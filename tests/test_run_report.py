"""fgssl-report: tables of a multirun (mean ± std over seeds), and the +method sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY_TRAINING
from fgssl.cli import report as report_cli
from fgssl.errors import DataLayoutError, DataNotFoundError
from fgssl.run.report import collect_runs, default_metrics, summarize, write_report

KAPPAS = {"baseline": [0.50, 0.60, 0.70], "pmg": [0.80, 0.90, 0.85], "fgssl": [0.90, 0.92, 0.88]}


def fake_multirun(root: Path, *, unfinished: bool = False) -> Path:
    """A Hydra multirun folder: jobs 0..8 over +method x seed, with results.json files."""
    job = 0
    for seed in range(3):
        for method, kappas in KAPPAS.items():
            folder = root / str(job)
            (folder / ".hydra").mkdir(parents=True)
            overrides = ["+experiment=demo", f"+method={method}", f"seed={seed}"]
            (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            results = {
                "test": {
                    "combined": {"kappa": kappas[seed], "acc": 0.5 + seed / 10},
                    "concat": {"kappa": kappas[seed] - 0.1, "acc": 0.4},
                },
                "monitor": "val/combined/kappa",
                "timings": {"total_seconds": 100.0 * (job + 1)},
            }
            if method == "fgssl":
                results["ssl_eval"] = {"knn": {"kappa": 0.3 + seed / 10}}
            (folder / "results.json").write_text(json.dumps(results))
            job += 1
    if unfinished:
        (root / "9" / ".hydra").mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_table_has_mean_and_std_over_seeds(tmp_path: Path) -> None:
    runs = collect_runs(fake_multirun(tmp_path, unfinished=True))
    assert len(runs) == 9 and runs.attrs["unfinished"] == ["9"]
    assert runs.attrs["common_overrides"] == ["+experiment=demo"]
    metrics = default_metrics(runs)
    assert metrics[:2] == ["test/combined/kappa", "test/concat/kappa"]
    assert "ssl_eval/knn/kappa" in metrics and metrics[-1] == "timings/total_seconds"
    summary = summarize(runs, metrics)
    assert summary["configuration"].tolist() == ["+method=baseline", "+method=pmg", "+method=fgssl"]
    assert summary["seeds"].tolist() == [3, 3, 3]
    for row, kappas in zip(summary.itertuples(), KAPPAS.values(), strict=True):
        assert row._3 == pytest.approx(np.mean(kappas))  # test/combined/kappa mean
        assert row._4 == pytest.approx(np.std(kappas, ddof=1))
    knn = summary.set_index("configuration")["ssl_eval/knn/kappa mean"]
    assert np.isnan(knn["+method=baseline"]) and knn["+method=fgssl"] == pytest.approx(0.4)


def test_report_files_and_markdown(tmp_path: Path, capsys) -> None:
    multirun = fake_multirun(tmp_path / "sweep")
    assert report_cli.main([str(multirun), "--output-dir", str(tmp_path / "out")]) == 0
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| `+method=baseline` | 3 | 0.600 ± 0.100 |" in markdown
    assert "| `+method=fgssl` | 3 | 0.900 ± 0.020 |" in markdown
    assert "Common overrides: `+experiment=demo`" in markdown
    assert "–" in markdown  # no k-NN result for the baseline
    assert markdown in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "report.csv")
    assert table.loc[1, "test/combined/kappa mean"] == pytest.approx(0.85)
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 9 and set(runs["seed"]) == {0, 1, 2}


def test_report_chosen_metrics_and_errors(tmp_path: Path, capsys) -> None:
    multirun = fake_multirun(tmp_path / "sweep")
    paths = write_report(multirun, metrics=["combined/acc", "ssl_eval/knn/kappa"])
    header = paths["markdown"].read_text().splitlines()[3]
    assert header == "| configuration | seeds | combined/acc | ssl_eval/knn/kappa |"
    with pytest.raises(DataLayoutError, match="no metric 'combined/f2'"):
        write_report(multirun, metrics=["combined/f2"])
    with pytest.raises(DataLayoutError, match="holds no Hydra job folders"):
        collect_runs(tmp_path)
    assert report_cli.main([str(tmp_path / "nowhere")]) == 2
    assert "fgssl-report: error: multirun directory" in capsys.readouterr().err
    (tmp_path / "empty" / "0" / ".hydra").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="no job"):
        collect_runs(tmp_path / "empty")


@pytest.mark.slow
def test_method_sweep_and_its_report(aptos_root: Path, tmp_path: Path) -> None:
    """The comparison sweep at toy size, then its table: one row per method, two seeds."""
    sweep_dir = tmp_path / "multirun"
    command = [
        str(Path(sys.executable).parent / "fgssl-train"),
        "-m",
        "+experiment=demo",
        "+method=baseline,pmg,fgssl",
        "seed=0,1",
        # BaselineNet has no feat_dim/hidden_dim: the FG-SSL nets keep fgssl_small's.
        *(o for o in TINY_TRAINING if not o.startswith(("model.net.feat", "model.net.hidden"))),
        f"data.root={aptos_root}",
        "data._target_=fgssl.data.APTOS2019DataModule",
        "~data.num_train",
        "~data.num_test",
        "~data.generated_size",
        "finetune_epochs=1",  # FG-SSL keeps the demo's pretrain epochs (of 2 batches)
        "trainer.limit_train_batches=2",
        "figures.enabled=false",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    # One thread: on a CPU shared with other processes, two OpenMP threads can be many times
    # slower than one.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = collect_runs(sweep_dir)
    assert len(runs) == 6
    demo = files("fgssl.conf") / "experiment" / "demo.yaml"
    demo_pretrain_epochs = yaml.safe_load(demo.read_text())["pretrain_epochs"]
    assert demo_pretrain_epochs > 0
    methods = {
        job: yaml.safe_load((sweep_dir / job / "config.yaml").read_text()) for job in runs["job"]
    }
    for job, config in methods.items():
        expected = {"baseline": 0, "pmg": 0, "fgssl": demo_pretrain_epochs}[config["method"]]
        assert config["pretrain_epochs"] == expected, job
    paths = write_report(sweep_dir)
    summary = pd.read_csv(paths["csv"])
    assert summary["configuration"].tolist() == [  # as fgssl-train gives Hydra them
        "method=baseline",
        "method=pmg",
        "method=fgssl",
    ]
    assert summary["seeds"].tolist() == [2, 2, 2]
    assert summary["test/combined/kappa mean"].between(-1, 1).all()
    assert summary["ssl_eval/knn/kappa mean"].isna().tolist() == [True, True, False]


def test_an_undefined_metric_is_missing_not_zero(tmp_path: Path) -> None:
    """A run whose kappa is null (undefined) is left out of the kappa statistics."""
    multirun = fake_multirun(tmp_path / "sweep")
    path = multirun / "2" / "results.json"  # +method=fgssl, seed 0
    results = json.loads(path.read_text())
    results["test"]["combined"]["kappa"] = None
    results["ssl_eval"]["knn"]["kappa"] = None
    path.write_text(json.dumps(results))
    runs = collect_runs(multirun)
    assert np.isnan(runs.loc[runs["job"] == "2", "test/combined/kappa"]).all()
    summary = summarize(runs, ["test/combined/kappa", "ssl_eval/knn/kappa"])
    fgssl = summary.set_index("configuration").loc["+method=fgssl"]
    assert fgssl["test/combined/kappa mean"] == pytest.approx(np.mean([0.92, 0.88]))
    assert fgssl["test/combined/kappa std"] == pytest.approx(np.std([0.92, 0.88], ddof=1))
    assert fgssl["test/combined/kappa n"] == 2 and fgssl["seeds"] == 3
    assert fgssl["ssl_eval/knn/kappa mean"] == pytest.approx(np.mean([0.4, 0.5]))
    baseline = summary.set_index("configuration").loc["+method=baseline"]
    assert baseline["ssl_eval/knn/kappa n"] == 0  # never measured
    markdown = write_report(multirun)["markdown"].read_text()
    assert "| `+method=fgssl` | 3 | 0.900 ± 0.028 (2 of 3) |" in markdown
    assert "| `+method=pmg` | 3 | 0.850 ± 0.050 |" in markdown
    assert "(k of n): only k of the n runs have one" in markdown
