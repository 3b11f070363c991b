"""SIGTERM to the main process alone and to its whole process group (GNU timeout, SLURM)
end a run the same way: the interruption message, status 143, a valid checkpoint."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, Dataset

from conftest import TINY_TRAINING
from fgssl.data.worker_signals import SignalSafeDataLoader, WorkerInit
from fgssl.evaluation.checkpoints import read_checkpoint
from fgssl.run.signals import is_worker_failure, recording_sigterm

FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"
needs_sigwaitinfo = pytest.mark.skipif(
    not hasattr(signal, "sigwaitinfo"), reason="workers keep PyTorch's handler here"
)


class SelfTerminating(Dataset[int]):
    """Item 0 sends SIGTERM to the worker process that loads it (a sender other than the
    worker's parent, as with ``kill -TERM -<pgid>``); every item is the worker's pid."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        if index == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # the signal is delivered meanwhile
        return os.getpid()


@needs_sigwaitinfo
@pytest.mark.parametrize("parent_threads", [1, 2])
def test_a_worker_leaves_a_foreign_sigterm_to_the_main_process(parent_threads: int) -> None:
    # With the parent's intra-op thread count set (as the test session and runs do), a
    # worker starts a pool thread before its worker_init_fn: that thread must block SIGTERM too
    threads = torch.get_num_threads()
    torch.set_num_threads(parent_threads)
    try:
        loader = SignalSafeDataLoader(SelfTerminating(), num_workers=1, worker_init_fn=WorkerInit())
        pids = [int(batch) for batch in loader]
    finally:
        torch.set_num_threads(threads)
    assert len(pids) == 4 and len(set(pids)) == 1 and pids[0] != os.getpid()
    # PyTorch's own worker handler dies of it, and the main process reports the death
    died = r"DataLoader worker \(pid.*\) (is killed by signal: Terminated|exited unexpectedly)"
    with pytest.raises(RuntimeError, match=died):
        list(DataLoader(SelfTerminating(), num_workers=1))


class WorkerPid(Dataset[int]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        return os.getpid()


@needs_sigwaitinfo
def test_a_worker_still_ends_quietly_on_its_parents_sigterm() -> None:
    """What the loader's shutdown and multiprocessing's exit handler send (terminate())."""
    loader = DataLoader(
        WorkerPid(), num_workers=1, worker_init_fn=WorkerInit(), persistent_workers=True
    )
    worker_pid = int(next(iter(loader)))
    (worker,) = [p for p in multiprocessing.active_children() if p.pid == worker_pid]
    worker.terminate()  # SIGTERM from this process, the worker's parent
    worker.join()  # pytest-timeout guards hangs
    assert worker.exitcode == 0  # exited by itself, not killed by the signal (-15)


class RandomNumbers(Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(1)


def test_workers_are_seeded_as_lightning_seeds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_SEED_WORKERS", "1")  # as pl.seed_everything(workers=True) sets it

    def draws(init: object) -> list[float]:
        torch.manual_seed(0)  # the loader's base seed
        loader = DataLoader(RandomNumbers(), num_workers=2, worker_init_fn=init)  # type: ignore[arg-type]
        return [float(x) for x in loader]

    ours = draws(WorkerInit(rank=1))
    assert ours == draws(partial(pl_worker_init_function, rank=1))
    assert ours != draws(partial(pl_worker_init_function, rank=0))


def test_sigterm_outside_a_lightning_run_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with recording_sigterm() as received, pytest.raises(SIGTERMException):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs before this ends
    assert received()
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_inside_a_lightning_run_is_only_recorded() -> None:
    """Lightning chains the handler it finds after its own, and stops at the next batch."""
    with recording_sigterm() as received:
        ours = signal.getsignal(signal.SIGTERM)
        assert callable(ours)
        signal.signal(signal.SIGTERM, lambda signum, frame: ours(signum, frame))
        assert not received()
        os.kill(os.getpid(), signal.SIGTERM)
        while not received():  # pytest-timeout guards hangs
            time.sleep(0.01)
        assert received()


def test_worker_failures_are_recognised_through_wrapping_errors() -> None:
    died = RuntimeError("DataLoader worker (pid 123) is killed by signal: Terminated. ")
    try:
        raise ValueError("while collating") from died
    except ValueError as wrapped:
        assert is_worker_failure(wrapped)
    assert is_worker_failure(RuntimeError("DataLoader worker (pid(s) 7) exited unexpectedly"))
    assert not is_worker_failure(RuntimeError("CUDA out of memory"))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["main process", "process group"])
def test_sigterm_ends_a_run_with_workers_cleanly(tmp_path: Path, target: str) -> None:
    """``kill -TERM <pid>`` and ``kill -TERM -<pgid>`` (what ``timeout`` and SLURM send),
    with two DataLoader workers: same message, status and checkpoint."""
    run_dir = tmp_path / "run"
    args = [
        str(FGSSL_TRAIN),
        "+experiment=demo",
        *(o for o in TINY_TRAINING if not o.startswith("data.num_workers")),
        "data.num_workers=2",
        "pretrain_epochs=50",
        "step_mode=progressive",  # K+1 optimizer steps per batch, counted below
        "finetune_epochs=1",
        "data.num_train=40",
        "data.num_test=2",
        "data.generated_size=48",
        "trainer.limit_train_batches=2",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "FGSSL_DEMO_ROOT": str(tmp_path / "demo"), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        args,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as under timeout or SLURM
    )
    last = run_dir / "pretrain" / "checkpoints" / "last.ckpt"
    while not last.is_file() and process.poll() is None:  # pytest-timeout guards hangs
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be interrupted"
    if target == "process group":
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    output, _ = process.communicate()
    assert process.returncode == 143, output[-3000:]
    assert "fgssl-train: interrupted; the checkpoint of the last finished epoch is kept" in output
    assert f"fgssl-train resume={run_dir}" in output
    assert "Traceback" not in output and "killed by signal" not in output, output[-3000:]
    assert not list(run_dir.rglob("*.tmp*"))
    interrupted = read_checkpoint(last)
    steps_per_epoch = 2 * 4  # batches x (K + 1)
    assert steps_per_epoch <= interrupted["global_step"] < 50 * steps_per_epoch
    assert not (run_dir / "results.json").exists()
