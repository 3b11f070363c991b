"""Mixed precision on the CPU (bf16) and gradient clipping in both step modes."""

from __future__ import annotations

import copy

import pytest
import torch

from fgssl import FGSSLModule
from helpers import RandomDataModule, tiny_net, tiny_trainer


@pytest.mark.parametrize("step_mode", ["progressive", "fused"])
@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_bf16_mixed_trains_both_phases(phase: str, step_mode: str) -> None:
    module = FGSSLModule(tiny_net(), phase=phase, step_mode=step_mode, schedule=[8, 4, 2], lr=0.01)
    before = copy.deepcopy(module.net.state_dict())
    trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=1, precision="bf16-mixed")
    trainer.fit(module, datamodule=RandomDataModule(views=phase == "pretrain"))
    loss = trainer.callback_metrics[f"{phase}/loss_epoch"]
    assert torch.isfinite(loss)
    changed = [k for k, v in module.net.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in changed)
    assert all(p.dtype == torch.float32 for p in module.net.parameters())


class NormRecordingModule(FGSSLModule):
    """Records the gradient norm that each optimizer step sees after clipping."""

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        self.norms = [*getattr(self, "norms", []), float(norm)]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("step_mode", ["progressive", "fused"])
def test_gradient_clipping_bounds_every_step(step_mode: str, precision: str) -> None:
    norms = {}
    for clip in (None, 0.05):
        module = NormRecordingModule(
            tiny_net(), step_mode=step_mode, schedule=[8, 4, 2], lr=0.01, grad_clip=clip
        )
        trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=0, precision=precision)
        trainer.fit(module, datamodule=RandomDataModule())
        norms[clip] = module.norms
    steps = 2 * (4 if step_mode == "progressive" else 1)
    assert len(norms[None]) == len(norms[0.05]) == steps
    assert max(norms[None]) > 0.05  # clipping had something to do
    assert max(norms[0.05]) <= 0.05 * 1.001
