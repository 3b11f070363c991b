"""Run as a script by tests/test_accumulation.py: a finetune module with gradient accumulation
trained by Lightning's DDP on two CPU processes (gloo), each with 2 batches of 4 of the 16
images (a group of 2 per process); rank 0 saves the network's weights to ``argv[2]``."""

from __future__ import annotations

import sys
from pathlib import Path

import fgssl  # noqa: F401  (before torch: its OpenMP settings)

sys.path.insert(0, str(Path(__file__).parent))

import torch
from torch.utils.data import DataLoader

from fgssl import FGSSLModule
from helpers import RandomImages, tiny_net, tiny_trainer, without_batch_norm


def bn_free_module(step_mode: str, accumulate: int) -> FGSSLModule:
    """A finetune module on a batch-norm-free network with whole-image stages (grid 1)."""
    return FGSSLModule(
        without_batch_norm(tiny_net()),
        phase="finetune",
        step_mode=step_mode,  # type: ignore[arg-type]
        schedule=[1, 1, 1],
        permutation="uniform",
        lr=0.05,
        accumulate_grad_batches=accumulate,
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    step_mode, out = sys.argv[1], sys.argv[2]
    module = bn_free_module(step_mode, accumulate=2)
    trainer = tiny_trainer(
        devices=2, strategy="ddp_find_unused_parameters_true", limit_train_batches=2
    )
    loader = DataLoader(RandomImages(16), batch_size=4, shuffle=False)
    trainer.fit(module, loader)
    if trainer.is_global_zero:
        torch.save(module.net.state_dict(), out)
