"""Distributed training on CPU processes (gloo): the global Barlow Twins loss and DDP runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from conftest import TINY_TRAINING
from fgssl import BarlowTwinsLoss

WORLD = 2
GLOBAL_BATCH, IN_DIM, OUT_DIM = 12, 6, 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(GLOBAL_BATCH, IN_DIM, generator=generator)
    x2 = x1 + 0.5 * torch.randn(GLOBAL_BATCH, IN_DIM, generator=generator)
    return x1, x2


def make_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(IN_DIM, 16), nn.Tanh(), nn.Linear(16, OUT_DIM))


def worker(rank: int, port: int, out_dir: str) -> None:
    """Loss and gradients of this rank's half of the global batch, with and without
    gathering (one process group for both: starting processes is the slow part)."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        for gather in (True, False):
            x1, x2 = global_batch()
            rows = slice(rank * GLOBAL_BATCH // WORLD, (rank + 1) * GLOBAL_BATCH // WORLD)
            model = DistributedDataParallel(make_model())
            z = model(torch.cat([x1[rows], x2[rows]]))
            z1, z2 = z.chunk(2)
            loss = BarlowTwinsLoss(gather_distributed=gather)(z1, z2)
            loss.backward()
            grads = [p.grad for p in model.parameters()]
            torch.save(
                {"loss": loss.detach(), "grads": grads},
                Path(out_dir) / f"rank{rank}-gather{int(gather)}.pt",
            )
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, list[dict]]:
    """{gather: [rank 0's result, rank 1's result]}."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return {
        gather: [
            torch.load(out / f"rank{r}-gather{int(gather)}.pt", weights_only=True)
            for r in range(WORLD)
        ]
        for gather in (True, False)
    }


def single_process_reference() -> tuple[torch.Tensor, list[torch.Tensor]]:
    x1, x2 = global_batch()
    model = make_model()
    z1, z2 = model(x1), model(x2)
    loss = BarlowTwinsLoss()(z1, z2)
    loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()]


@pytest.mark.slow
def test_gathered_loss_and_gradients_equal_one_process_on_the_global_batch(
    ddp_results: dict[bool, list[dict]],
) -> None:
    reference_loss, reference_grads = single_process_reference()
    for result in ddp_results[True]:
        torch.testing.assert_close(result["loss"], reference_loss, rtol=1e-5, atol=1e-5)
        for got, expected in zip(result["grads"], reference_grads, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_without_gathering_each_process_sees_only_its_half(
    ddp_results: dict[bool, list[dict]],
) -> None:
    """The control: per-process statistics give another loss, so the test above can fail."""
    reference_loss, _ = single_process_reference()
    assert not torch.allclose(ddp_results[False][0]["loss"], reference_loss, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("step_mode", ["progressive", "fused"])
def test_two_process_ddp_demo_end_to_end(tmp_path: Path, step_mode: str) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "fgssl-train"),
            "+experiment=demo",
            *TINY_TRAINING,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            f"step_mode={step_mode}",
            "pretrain_epochs=1",
            "finetune_epochs=1",
            "data.num_train=45",
            "data.num_test=2",
            "data.generated_size=48",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env={**os.environ, "FGSSL_DEMO_ROOT": str(tmp_path / "demo"), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert 0.0 <= results["test"]["combined"]["acc"] <= 1.0
    assert (run_dir / "finetune" / "checkpoints" / "best.ckpt").is_file()
    # every test image counted once, though the odd count does not split evenly over 2 ranks
    splits = pd.read_csv(run_dir / "split.csv")
    num_test = int((splits["split"] == "test").sum())
    assert num_test % 2 == 1
    for head in ("combined", "concat"):
        assert sum(map(sum, results["confusion_matrix"][head])) == num_test
        assert "kappa_thresholded" in results["test"][head]
    # the per-image test predictions: gathered from both ranks, each test image once, by id
    tested = pd.read_csv(run_dir / "predictions" / "test.csv", dtype={"id": str})
    test_ids = splits.loc[splits["split"] == "test", "id"].astype(str)
    assert sorted(tested["id"]) == sorted(test_ids)
    rescored = (tested["prediction"] == tested["label"]).mean()
    assert rescored == pytest.approx(results["test"]["combined"]["acc"], abs=1e-6)
    assert (run_dir / "predictions" / "val.csv").is_file()
    # the ordinal thresholds: fitted on every validation image, gathered from both ranks
    thresholds = results["ordinal_thresholds"]
    assert thresholds["images"] == int((splits["split"] == "val").sum())
    stored = torch.load(run_dir / "finetune/checkpoints/best.ckpt", weights_only=True)
    assert stored["fgssl"]["ordinal_thresholds"]["heads"] == thresholds["heads"]
    # one run directory for both processes: no stray timestamped folder from rank 1
    assert not (tmp_path / "outputs").exists()
    # the pretrain monitor ran on rank 0 alone (one row per pass) and rank 1 did not hang
    logged = pd.read_csv(run_dir / "pretrain" / "metrics.csv")["monitor/epochs_trained"]
    assert logged.dropna().tolist() == [0, 1]
