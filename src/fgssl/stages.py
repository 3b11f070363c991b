"""The stages a training batch walks: which puzzle feeds which head, with what weight."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fgssl.errors import ConfigError

__all__ = ["Stage", "plan_stages"]


@dataclass(frozen=True)
class Stage:
    """One stage of a batch: ``index`` of the network head, jigsaw ``grid`` (None = whole image)."""

    index: int
    name: str
    grid: int | None
    weight: float


def plan_stages(
    stage_names: Sequence[str], schedule: Sequence[int], *, whole_image_weight: float = 2.0
) -> list[Stage]:
    """Stages for a network with ``len(stage_names)`` heads, the last one fed whole images.

    ``schedule`` lists one jigsaw grid per granularity head, finest first (e.g. ``[8, 4, 2]``
    for a network with heads stage1, stage2, stage3, concat). A one-head network (the
    baseline) takes no schedule: its only stage sees whole images with weight 1.
    """
    num_puzzle_stages = len(stage_names) - 1
    if num_puzzle_stages == 0:
        return [Stage(0, stage_names[0], None, 1.0)]
    if len(schedule) != num_puzzle_stages:
        raise ConfigError(
            f"patch schedule {list(schedule)} has {len(schedule)} grids but the network has "
            f"{num_puzzle_stages} granularities: give one grid per granularity, finest first "
            f"(FGSSLNet's num_granularities; fgssl-train derives model.net.num_granularities "
            "from schedule.grids)"
        )
    for grid in schedule:
        if not isinstance(grid, int) or grid < 1:
            raise ConfigError(
                f"patch schedule grids must be positive integers, got {list(schedule)}"
            )
    stages = [
        Stage(k, name, int(grid), 1.0)
        for k, (name, grid) in enumerate(zip(stage_names[:-1], schedule, strict=True))
    ]
    stages.append(Stage(num_puzzle_stages, stage_names[-1], None, float(whole_image_weight)))
    return stages
