"""A run directory holds one run: a second run given it is refused before it writes there,
two runs starting at once in one folder leave exactly one of them, resuming is allowed."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

import fgssl.cli.train  # (registers the resolvers of hydra.run.dir)
import fgssl.run.claim
from conftest import TINY_RUN_OVERRIDES
from fgssl.cli.claim import ClaimOutputDirectory
from fgssl.errors import RunDirectoryInUseError
from fgssl.run.claim import claim_run_dir, claim_sweep_dir
from fgssl.run.pipeline import run_training

FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"


@pytest.fixture(autouse=True)
def forget_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a process that has claimed nothing."""
    monkeypatch.setattr(fgssl.run.claim, "_claimed", set())


def as_another_process() -> None:
    fgssl.run.claim._claimed.clear()


def test_a_claimed_folder_is_refused_to_any_other_run(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "a"
    assert claim_run_dir(run) == run.resolve()
    owner = json.loads((run / ".fgssl-run").read_text())
    assert owner["pid"] == os.getpid()
    assert claim_run_dir(run) == run.resolve()  # the same process again: its own folder
    as_another_process()
    with pytest.raises(RunDirectoryInUseError) as refused:
        claim_run_dir(run)
    message = str(refused.value)
    assert f"the run directory '{run.resolve()}' already holds a run (started " in message
    assert f"by process {os.getpid()} on " in message
    assert f"resume={run.resolve()}" in message and "hydra.run.dir" in message
    assert "\n" not in message


@pytest.mark.parametrize("held_by", ["config.yaml", "results.json", "failed.json", "finetune"])
def test_a_run_of_an_fgssl_without_the_marker_is_refused_too(tmp_path: Path, held_by: str) -> None:
    (tmp_path / held_by).mkdir() if held_by == "finetune" else (tmp_path / held_by).touch()
    with pytest.raises(RunDirectoryInUseError, match=f"its {held_by} is there"):
        claim_run_dir(tmp_path)
    assert not (tmp_path / ".fgssl-run").exists()


def test_an_empty_or_unrelated_folder_may_hold_a_new_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    claim_run_dir(tmp_path)
    assert (tmp_path / ".fgssl-run").is_file() and (tmp_path / "notes.txt").read_text() == "mine"


def _claim_at_once(folder: str, start: multiprocessing.synchronize.Barrier) -> None:
    fgssl.run.claim._claimed.clear()
    start.wait()
    try:
        claim_run_dir(folder)
    except RunDirectoryInUseError:
        os._exit(3)
    os._exit(0)


def test_of_runs_starting_at_once_in_one_folder_exactly_one_gets_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for attempt in range(3):  # three races, each between four processes
        folder = tmp_path / f"same-second-{attempt}"
        start = context.Barrier(4)
        racers = [
            context.Process(target=_claim_at_once, args=(str(folder), start)) for _ in range(4)
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=60)
        assert sorted(racer.exitcode for racer in racers) == [0, 3, 3, 3]
        winner = json.loads((folder / ".fgssl-run").read_text())["pid"]
        assert winner in [racer.pid for racer in racers if racer.exitcode == 0]


def test_a_sweep_directory_is_claimed_like_a_run_directory(tmp_path: Path) -> None:
    claim_sweep_dir(tmp_path / "sweep")
    as_another_process()
    with pytest.raises(RunDirectoryInUseError, match=r"already holds a sweep.*hydra\.sweep\.dir"):
        claim_sweep_dir(tmp_path / "sweep")
    (tmp_path / "old-sweep").mkdir()
    (tmp_path / "old-sweep" / "multirun.yaml").touch()  # Hydra's record of an older sweep
    with pytest.raises(RunDirectoryInUseError, match=r"its multirun\.yaml is there"):
        claim_sweep_dir(tmp_path / "old-sweep")


def test_run_training_refuses_a_finished_run(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tiny_run: Path
) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")}
    cfg = compose_config(*TINY_RUN_OVERRIDES, f"data.root={aptos_root}")
    with pytest.raises(RunDirectoryInUseError, match="already holds a run"):
        run_training(cfg, tiny_run)
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")} == before  # untouched


def _hydra_config(compose_config: Callable[..., DictConfig], *overrides: str) -> DictConfig:
    """The config Hydra's callbacks receive (with its hydra node)."""
    from hydra import compose

    from fgssl.cli.common import hydra_arguments

    del compose_config  # initialises Hydra
    return compose("train", overrides=hydra_arguments(overrides), return_hydra_config=True)


def test_the_hydra_callback_claims_before_hydra_writes(
    compose_config: Callable[..., DictConfig],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = tmp_path / "run"
    config = _hydra_config(compose_config, "+experiment=demo", f"hydra.run.dir={run}")
    ClaimOutputDirectory().on_run_start(config)
    assert (run / ".fgssl-run").is_file()
    as_another_process()
    with pytest.raises(SystemExit) as stopped:
        ClaimOutputDirectory().on_run_start(config)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fgssl-train: error: the run directory '{run.resolve()}' already")
    assert err.count("\n") == 1
    # resuming continues in the run's own folder; DDP's other processes start Hydra again
    resumed = _hydra_config(compose_config, "+experiment=demo", f"resume={run}")
    ClaimOutputDirectory().on_run_start(resumed)
    monkeypatch.setattr("fgssl.cli.claim.is_rank_zero", lambda: False)
    ClaimOutputDirectory().on_run_start(config)
    sweep = _hydra_config(compose_config, "+experiment=demo", f"hydra.sweep.dir={tmp_path / 's'}")
    ClaimOutputDirectory().on_multirun_start(sweep)  # not rank zero: claims nothing
    assert not (tmp_path / "s").exists()


def test_the_default_run_directory_is_the_one_claimed(
    compose_config: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${now:...}`` is resolved once per config: the callback claims the folder the job
    then runs in, not the next second's."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    monkeypatch.chdir(tmp_path)
    config = _hydra_config(compose_config, "+experiment=demo")
    ClaimOutputDirectory().on_run_start(config)
    HydraConfig.instance().set_config(config)
    (claimed,) = (tmp_path / "outputs" / "demo").iterdir()
    assert Path(str(OmegaConf.select(config, "hydra.run.dir"))).resolve() == claimed


@pytest.mark.slow
def test_fgssl_train_leaves_a_run_directory_in_use_as_it_was(tmp_path: Path) -> None:
    """Through the command line: refused in one line before Hydra writes its records."""
    run = tmp_path.resolve() / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("the first run's\n")
    (run / ".fgssl-run").write_text('{"started": "2024-05-01 10:00:00", "pid": 1, "host": "h"}')
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = subprocess.run(
        [str(FGSSL_TRAIN), "+experiment=demo", f"hydra.run.dir={run}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("fgssl-train:")]
    assert line == (
        f"fgssl-train: error: the run directory '{run}' already holds a run (started "
        "2024-05-01 10:00:00 by process 1 on h): a run directory is never reused, so that its "
        "files stay one run's; give another hydra.run.dir (or leave it out: a new folder per "
        f"second), or continue that run with resume={run}"
    )
    assert "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
