"""The learning-rate schedules: the step-decay multiplier against torch's own MultiStepLR."""

from __future__ import annotations

import pytest
import torch

from fgssl.errors import ConfigError
from fgssl.optim import lr_multiplier, multistep


@pytest.mark.parametrize(("epochs", "batches"), [(100, 3), (8, 5), (4, 1)])
def test_multistep_matches_torch_multisteplr_stepped_per_epoch(epochs: int, batches: int) -> None:
    """MedMNIST's schedule: MultiStepLR(milestones=[0.5 * E, 0.75 * E], gamma=0.1), stepped
    once per epoch; fgssl steps per batch with milestones as fractions of all steps."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    milestones = [0.5 * epochs, 0.75 * epochs]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    total = epochs * batches
    for epoch in range(epochs):
        expected = optimizer.param_groups[0]["lr"]
        for batch in range(batches):
            step = epoch * batches + batch
            got = multistep(step, total=total, warmup=0, milestones=(0.5, 0.75), gamma=0.1)
            assert got == pytest.approx(expected), (epoch, batch)
        optimizer.step()
        scheduler.step()


def test_multistep_warms_up_then_decays() -> None:
    values = [multistep(s, total=20, warmup=4, milestones=(0.5,), gamma=0.5) for s in range(20)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4:10] == [1.0] * 6 and values[10:] == [0.5] * 10


def test_unknown_schedule_and_bad_milestones_are_refused() -> None:
    common = dict(total=10, warmup=0, floor=0.0, gamma=0.1)
    with pytest.raises(ConfigError, match=r"optim.lr_schedule='step'"):
        lr_multiplier("step", milestones=(0.5,), **common)
    with pytest.raises(ConfigError, match=r"optim.lr_milestones=\[50, 75\]"):
        lr_multiplier("multistep", milestones=(50, 75), **common)
    cosine = lr_multiplier("cosine", milestones=(), **common)
    assert cosine(0) == 1.0 and cosine(10) == pytest.approx(0.0)


def test_adam_config_builds_the_protocols_optimizer(compose_config) -> None:  # type: ignore[no-untyped-def]
    from hydra.utils import instantiate

    cfg = compose_config("+experiment=medmnist", "data.root=/nowhere")
    factory = instantiate(cfg.optim.optimizer)
    optimizer = factory([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["weight_decay"] == 0.0
    assert cfg.optim.lr_schedule == "multistep" and list(cfg.optim.lr_milestones) == [0.5, 0.75]


@pytest.mark.parametrize(("total", "warmup", "floor"), [(20, 4, 0.1), (37, 1, 0.0), (9, 0, 0.5)])
def test_cosine_is_timms_cosine_after_lightlys_warmup(
    total: int, warmup: int, floor: float
) -> None:
    """fgssl's warm-up cosine (its docstring says why it is its own): the warm-up of lightly's
    cosine_warmup_schedule, then the cosine of timm's CosineLRScheduler (warm-up as a
    prefix), stepped per optimizer step; and where each library differs."""
    from lightly.utils.scheduler import cosine_warmup_schedule
    from timm.scheduler import CosineLRScheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    timm = CosineLRScheduler(
        optimizer, t_initial=total - warmup, lr_min=floor, warmup_t=warmup,
        warmup_lr_init=0.0, warmup_prefix=True, t_in_epochs=False,
    )  # fmt: skip
    cosine = lr_multiplier(
        "cosine", total=total, warmup=warmup, floor=floor, milestones=(), gamma=1
    )
    for step in range(total + 1):
        timm.step_update(step)
        if step < warmup:
            lightly = cosine_warmup_schedule(step, total, 1.0, floor, warmup, 0.0)
            assert cosine(step) == pytest.approx(lightly), step
            assert optimizer.param_groups[0]["lr"] == pytest.approx(step / warmup)  # timm's
        else:
            assert cosine(step) == pytest.approx(optimizer.param_groups[0]["lr"]), step
    assert cosine(total) == pytest.approx(floor)
    # lightly's cosine reaches the floor on the last step, fgssl's (and timm's) one later
    last = cosine_warmup_schedule(total - 1, total, 1.0, floor, warmup, 0.0)
    assert last == pytest.approx(floor) and cosine(total - 1) > floor + 1e-6
