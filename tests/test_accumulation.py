"""Gradient accumulation (fgssl.accumulation, optim.accumulate_grad_batches): a group of
micro-batches steps with the gradients of its large batch, in both step modes (per stage in
the progressive mode), checked against the large batch itself with batch-norm-free networks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from fgssl import FGSSLModule
from fgssl.accumulation import (
    accumulated_fused_step,
    accumulated_progressive_step,
    ends_group,
    groups_per_epoch,
    loss_shares,
)
from fgssl.errors import ConfigError
from fgssl.losses import BarlowTwinsLoss
from fgssl.stages import plan_stages
from fgssl.steps import fused_step, fused_view_backward, fused_view_step, progressive_step
from helpers import RandomImages, one_thread, tiny_net, tiny_trainer, without_batch_norm

STAGES = plan_stages(["stage1", "stage2", "concat"], [4, 2], whole_image_weight=2.0)

single_thread = pytest.fixture(autouse=True)(one_thread)


class Toy(nn.Module):
    """A shared trunk and one linear head per stage (no batch statistics)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Linear(6, 5)
        self.heads = nn.ModuleList(nn.Linear(5, 4) for _ in STAGES)

    def logits(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return self.heads[k](torch.tanh(self.trunk(x)))


class RecordingSGD(torch.optim.SGD):
    """SGD (momentum 0.9) that keeps a copy of every gradient it steps with."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model.parameters(), lr=0.1, momentum=0.9)
        self.model, self.seen = model, []  # type: ignore[var-annotated]

    def step(self, closure=None):  # type: ignore[no-untyped-def,override]
        self.seen.append([p.grad.clone() for p in self.model.parameters() if p.grad is not None])
        return super().step(closure)


def backward(loss: torch.Tensor) -> None:
    loss.backward()


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(8, 6, generator=generator), torch.tensor([0, 1, 2, 3, 0, 0, 1, 3])


def ce(model: Toy, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None):  # type: ignore[no-untyped-def]
    return lambda stage: F.cross_entropy(
        model.logits(x, stage.index), y, weight=weight, label_smoothing=0.1
    )


def assert_same_steps(got: RecordingSGD, want: RecordingSGD) -> None:
    assert len(got.seen) == len(want.seen)
    for step_got, step_want in zip(got.seen, want.seen, strict=True):
        for g, w in zip(step_got, step_want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("weighted", [False, True], ids=["mean", "class-weighted"])
def test_progressive_accumulation_steps_each_stage_with_the_large_batch_gradient(
    weighted: bool,
) -> None:
    x, y = data()
    weight = torch.tensor([1.0, 3.0, 0.5, 2.0]) if weighted else None
    large, small = Toy(), Toy()
    want, got = RecordingSGD(large), RecordingSGD(small)
    expected = progressive_step(STAGES, ce(large, x, y, weight), want, backward)
    parts = [slice(0, 3), slice(3, 8)]  # uneven micro-batches
    # the normaliser PyTorch divides a (class-weighted) mean by: images, or label weights
    normalisers = [float(weight[y[p]].sum()) if weighted else float(len(y[p])) for p in parts]
    micro = [
        (s, ce(small, x[p], y[p], weight))
        for s, p in zip(loss_shares(normalisers), parts, strict=True)
    ]
    losses = accumulated_progressive_step(STAGES, micro, got, backward)
    assert len(got.seen) == len(STAGES)  # one step per stage and group
    assert_same_steps(got, want)
    # the reported losses are the large batch's (each before its stage's step)
    for loss, want_loss in zip(losses, expected, strict=True):
        torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=0)
    if weighted:  # the control: equal shares would not give the large batch's gradient
        control = RecordingSGD(Toy())
        equal = [(0.5, ce(control.model, x[p], y[p], weight)) for p in parts]  # type: ignore[arg-type]
        accumulated_progressive_step(STAGES, equal, control, backward)
        with pytest.raises(AssertionError):
            assert_same_steps(control, want)


def test_fused_accumulation_steps_once_with_the_large_batch_gradient() -> None:
    x, y = data()
    large, small = Toy(), Toy()
    want, got = RecordingSGD(large), RecordingSGD(small)
    fused_step(STAGES, ce(large, x, y), want, backward)

    def micro(part: slice):  # type: ignore[no-untyped-def]
        from fgssl.steps import fused_backward

        return lambda b: fused_backward(STAGES, ce(small, x[part], y[part]), b)

    parts = [slice(0, 2), slice(2, 4), slice(4, 8)]
    shares = loss_shares([2, 2, 4])
    accumulated_fused_step(
        [(s, micro(p)) for s, p in zip(shares, parts, strict=True)], got, backward
    )
    assert len(got.seen) == 1
    assert_same_steps(got, want)


def test_one_micro_batch_is_exactly_the_step_without_accumulation() -> None:
    x, y = data()
    a, b = Toy(), Toy()
    want, got = RecordingSGD(a), RecordingSGD(b)
    expected = progressive_step(STAGES, ce(a, x, y), want, backward)
    losses = accumulated_progressive_step(STAGES, [(1.0, ce(b, x, y))], got, backward)
    for g_step, w_step in zip(got.seen, want.seen, strict=True):
        assert all(torch.equal(g, w) for g, w in zip(g_step, w_step, strict=True))
    assert all(torch.equal(g, w) for g, w in zip(losses, expected, strict=True))


def test_accumulated_ssl_gradient_is_the_mean_of_the_micro_batches_gradients() -> None:
    """Barlow Twins normalises over its batch: accumulation gives the mean of the
    micro-batches' gradients (as two separate steps would), not the large batch's."""
    generator = torch.Generator().manual_seed(5)
    x1, x2 = torch.randn(8, 6, generator=generator), torch.randn(8, 6, generator=generator)
    objective = BarlowTwinsLoss(gather_distributed=False)

    def view_backward(model: Toy, rows: slice):  # type: ignore[no-untyped-def]
        def run(b):  # type: ignore[no-untyped-def]
            views = [model.logits(x2[rows], k) for k in range(len(STAGES))]
            return fused_view_backward(
                STAGES, lambda s: model.logits(x1[rows], s.index), views, objective, b
            )

        return run

    parts = [slice(0, 4), slice(4, 8)]
    accumulated = RecordingSGD(Toy())
    accumulated_fused_step(
        [(0.5, view_backward(accumulated.model, p)) for p in parts],  # type: ignore[arg-type]
        accumulated,
        backward,
    )
    separate = []
    for p in parts:
        one = RecordingSGD(Toy())
        fused_view_step(
            STAGES,
            lambda s, m=one.model, r=p: m.logits(x1[r], s.index),  # type: ignore[misc]
            [one.model.logits(x2[p], k) for k in range(len(STAGES))],  # type: ignore[attr-defined]
            objective,
            one,
            backward,
        )
        separate.append(one.seen[0])
    mean = [(a + b) / 2 for a, b in zip(*separate, strict=True)]
    for got, want in zip(accumulated.seen[0], mean, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_groups_end_every_n_batches_and_with_the_epoch() -> None:
    # 7 batches in groups of 3: [0 1 2] [3 4 5] [6]
    assert [b for b in range(7) if ends_group(b, 3, 7)] == [2, 5, 6]
    assert [b for b in range(6) if ends_group(b, 3, 6)] == [2, 5]
    assert [b for b in range(3) if ends_group(b, 1, 3)] == [0, 1, 2]
    assert groups_per_epoch(7, 3) == 3 and groups_per_epoch(6, 3) == 2
    assert groups_per_epoch(2, 4) == 1
    assert loss_shares([1, 3]) == [0.25, 0.75]
    with pytest.raises(ValueError, match="sum to 0"):
        loss_shares([0, 0])


def test_pytorchs_weighted_smoothed_cross_entropy_is_a_mean_over_label_weights() -> None:
    """What the class-weighted shares rest on: PyTorch's class-weighted cross-entropy (with
    label smoothing) divides the weighted sum by the sum of the labels' weights."""
    generator = torch.Generator().manual_seed(0)
    logits, y = torch.randn(8, 4, generator=generator), torch.tensor([0, 1, 2, 3, 0, 0, 1, 3])
    weight = torch.tensor([1.0, 3.0, 0.5, 2.0])
    whole = F.cross_entropy(logits, y, weight=weight, label_smoothing=0.1)
    parts = [slice(0, 3), slice(3, 8)]
    sums = [weight[y[p]].sum() for p in parts]
    pieces = [F.cross_entropy(logits[p], y[p], weight=weight, label_smoothing=0.1) for p in parts]
    torch.testing.assert_close(
        whole, sum(s * v for s, v in zip(sums, pieces, strict=True)) / sum(sums)
    )
    # soft targets (mixup): a plain mean over the images, whatever the weights
    soft = torch.softmax(torch.randn(8, 4, generator=generator), dim=1)
    whole = F.cross_entropy(logits, soft, weight=weight)
    halves = [F.cross_entropy(logits[p], soft[p], weight=weight) for p in parts]
    torch.testing.assert_close(whole, (3 * halves[0] + 5 * halves[1]) / 8)


# ------------------------------------------------------------------ FGSSLModule, end to end


def trained(step_mode: str, batch_size: int, accumulate: int, batches: int) -> FGSSLModule:
    """A finetune module trained on the same 8 images (in order), with whole-image
    "puzzles" (grid 1), in ``batches`` batches of ``batch_size``."""
    module = FGSSLModule(
        without_batch_norm(tiny_net()),
        phase="finetune",
        step_mode=step_mode,  # type: ignore[arg-type]
        schedule=[1, 1, 1],
        permutation="uniform",
        lr=0.05,
        class_weights=[1.0, 2.0, 3.0],
        label_smoothing=0.1,
        accumulate_grad_batches=accumulate,
    )
    loader = DataLoader(RandomImages(8), batch_size=batch_size, shuffle=False)
    tiny_trainer(limit_train_batches=batches, limit_val_batches=0).fit(module, loader)
    return module


@pytest.mark.parametrize("step_mode", ["progressive", "fused"])
def test_a_module_accumulating_two_batches_steps_as_one_twice_as_large(step_mode: str) -> None:
    large = trained(step_mode, batch_size=8, accumulate=1, batches=1)
    small = trained(step_mode, batch_size=4, accumulate=2, batches=2)
    start = without_batch_norm(tiny_net()).state_dict()
    assert large.trainer.global_step == small.trainer.global_step  # K+1 or 1 steps
    changed = 0
    for name, value in large.net.state_dict().items():
        torch.testing.assert_close(small.net.state_dict()[name], value, rtol=1e-4, atol=1e-6)
        changed += not torch.equal(value, start[name])
    assert changed > 0
    # the labels 0 1 2 0 | 1 2 0 1 weigh 7 and 8: unequal shares, which the weights decide
    assert large.trainer.lr_scheduler_configs[0].scheduler.last_epoch == 1
    assert small.trainer.lr_scheduler_configs[0].scheduler.last_epoch == 1


def test_the_lr_schedule_and_the_last_group_follow_the_groups() -> None:
    """5 batches an epoch in groups of 2: groups [0 1] [2 3] [4], so 3 LR steps an epoch and
    the schedule's horizon is 2 epochs x 3 groups."""
    module = FGSSLModule(tiny_net(), schedule=[8, 4, 2], lr=0.01, accumulate_grad_batches=2)
    loader = DataLoader(RandomImages(10), batch_size=2, shuffle=False)
    trainer = tiny_trainer(max_epochs=2, limit_val_batches=0)
    trainer.fit(module, loader)
    assert trainer.global_step == 2 * 3 * 4  # epochs x groups x (K + 1) steps
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.last_epoch == 6
    # the cosine schedule reached its end (min_lr_scale 0) at the 6th step
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    assert module._pending == []


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_a_bad_accumulation_count_is_refused(every: object) -> None:
    with pytest.raises(ConfigError, match="accumulate_grad_batches"):
        FGSSLModule(tiny_net(), schedule=[8, 4, 2], accumulate_grad_batches=every)  # type: ignore[arg-type]


def test_the_kept_batches_are_the_groups() -> None:
    module = FGSSLModule(tiny_net(), schedule=[8, 4, 2], accumulate_grad_batches=3)
    seen: list[list[int]] = []
    original = module._finetune_step
    module._finetune_step = lambda group: seen.append([i for _, i in group]) or original(group)  # type: ignore[method-assign]
    loader = DataLoader(RandomImages(14), batch_size=2, shuffle=False)
    tiny_trainer(limit_val_batches=0).fit(module, loader)
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.slow
def test_two_ddp_processes_accumulating_step_as_one_process_on_the_whole_batch(
    tmp_path: Path,
) -> None:
    """2 processes x 2 micro-batches of 4 = one progressive step per stage on 16 images:
    the weights of one process trained on the 16 at once. Every micro-batch's backward
    all-reduces (DDP's no_sync cannot skip it under manual optimisation, see
    docs/training-aids.md), which stays correct. (The fused mode accumulates alike; measured
    equal too, not run here.)"""
    step_mode = "progressive"
    from ddp_accumulation import bn_free_module

    script = Path(__file__).parent / "ddp_accumulation.py"
    result = subprocess.run(
        [sys.executable, str(script), step_mode, str(tmp_path / "net.pt")],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    distributed = torch.load(tmp_path / "net.pt", weights_only=True)
    reference = bn_free_module(step_mode, accumulate=1)
    loader = DataLoader(RandomImages(16), batch_size=16, shuffle=False)
    tiny_trainer(limit_train_batches=1, limit_val_batches=0).fit(reference, loader)
    start = bn_free_module(step_mode, accumulate=1).net.state_dict()
    for name, value in reference.net.state_dict().items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(v, start[k]) for k, v in distributed.items())
