"""The stage plan and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest

from fgssl import plan_stages
from fgssl.errors import ConfigError
from fgssl.optim import warmup_cosine as _warmup_cosine


def test_plan_for_three_granularities() -> None:
    stages = plan_stages(["stage1", "stage2", "stage3", "concat"], [8, 4, 2])
    assert [(s.index, s.grid, s.weight) for s in stages] == [
        (0, 8, 1.0),
        (1, 4, 1.0),
        (2, 2, 1.0),
        (3, None, 2.0),
    ]


def test_plan_for_the_baseline_ignores_the_schedule() -> None:
    (stage,) = plan_stages(["whole"], [8, 4, 2])
    assert stage.grid is None and stage.weight == 1.0


def test_schedule_length_must_match() -> None:
    with pytest.raises(ConfigError, match="3 grids but the network has 2 granularities"):
        plan_stages(["stage1", "stage2", "concat"], [8, 4, 2])


def test_warmup_then_cosine() -> None:
    total, warmup, floor = 100, 10, 0.1
    values = [
        _warmup_cosine(step, total=total, warmup=warmup, floor=floor) for step in range(total)
    ]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    for step in (10, 35, 60, 99):
        progress = (step - warmup) / (total - warmup)
        expected = floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2
        assert values[step] == pytest.approx(expected)
    assert _warmup_cosine(500, total=total, warmup=warmup, floor=floor) == pytest.approx(floor)
