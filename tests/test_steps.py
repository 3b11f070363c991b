"""The step executors (fgssl.steps) without Lightning: a plain SGD optimizer, a toy model
with one head per stage, and ``loss.backward``; each checked against a hand-written loop."""

from __future__ import annotations

import copy

import torch
from torch import nn

from fgssl.losses import BarlowTwinsLoss
from fgssl.stages import plan_stages
from fgssl.steps import fused_step, fused_view_step, progressive_step

STAGES = plan_stages(["stage1", "stage2", "concat"], [4, 2], whole_image_weight=2.0)


class Toy(nn.Module):
    """A shared trunk and one linear head per stage; ``uses`` counts the head calls."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Linear(6, 5)
        self.heads = nn.ModuleList(nn.Linear(5, 4) for _ in STAGES)

    def embed(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return self.heads[k](torch.tanh(self.trunk(x)))


def backward(loss: torch.Tensor) -> None:
    loss.backward()


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_progressive_step_steps_once_per_stage_like_the_hand_loop() -> None:
    x, y = torch.randn(8, 6), torch.randn(8, 4)
    model, reference = Toy(), Toy()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    expected_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    steps = 0

    def counting_step() -> None:
        nonlocal steps
        steps += 1

    optimizer.register_step_post_hook(lambda *_: counting_step())
    losses = progressive_step(
        STAGES, lambda s: ((model.embed(x, s.index) - y) ** 2).mean(), optimizer, backward
    )
    for stage in STAGES:  # the hand loop: zero, weighted backward, step
        expected_optimizer.zero_grad()
        (stage.weight * ((reference.embed(x, stage.index) - y) ** 2).mean()).backward()
        expected_optimizer.step()
    assert steps == len(STAGES)
    assert all(not loss.requires_grad for loss in losses)
    for got, want in zip(params(model), params(reference), strict=True):
        torch.testing.assert_close(got, want)


def test_fused_step_backward_once_equals_backward_per_stage() -> None:
    x, y = torch.randn(8, 6), torch.randn(8, 4)
    results = []
    for once in (False, True):
        model = Toy()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = fused_step(
            STAGES,
            lambda s, m=model: ((m.embed(x, s.index) - y) ** 2).mean(),  # type: ignore[misc]
            optimizer,
            backward,
            backward_once=once,
        )
        results.append((params(model), losses))
    (per_stage, losses_a), (once_, losses_b) = results
    for a, b in zip(per_stage, once_, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(torch.stack(losses_a), torch.stack(losses_b))
    # one step on the weighted sum, by hand
    reference = Toy()
    total = sum(s.weight * ((reference.embed(x, s.index) - y) ** 2).mean() for s in STAGES)
    assert isinstance(total, torch.Tensor)
    total.backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.1 * p.grad  # type: ignore[operator]
    for a, b in zip(per_stage, params(reference), strict=True):
        torch.testing.assert_close(a, b)


def test_fused_view_step_gradients_equal_recomputing_the_view_per_stage() -> None:
    """The leaf trick: the second view run once gives the gradients of running it per stage."""
    puzzles = [torch.randn(8, 6) for _ in STAGES]
    view = torch.randn(8, 6)
    objective = BarlowTwinsLoss(scale=0.25)
    model = Toy()
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = fused_view_step(
        STAGES,
        lambda s: model.embed(puzzles[s.index], s.index),
        [model.embed(view, k) for k in range(len(STAGES))],
        objective,
        optimizer,
        backward,
    )
    expected_optimizer = torch.optim.SGD(reference.parameters(), lr=0.05)
    expected = fused_step(
        STAGES,
        lambda s: objective(
            reference.embed(puzzles[s.index], s.index), reference.embed(view, s.index)
        ),
        expected_optimizer,
        backward,
    )
    torch.testing.assert_close(torch.stack(losses), torch.stack(expected))
    for got, want in zip(params(model), params(reference), strict=True):
        torch.testing.assert_close(got, want)
