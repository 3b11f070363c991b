"""Parameter groups and the learning-rate schedule of FGSSLModule."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, get_args

import torch
from torch import nn

from fgssl.errors import ConfigError
from fgssl.models.base import StagedNet

__all__ = [
    "LR_SCHEDULES",
    "OPTIMIZER_IMPLEMENTATIONS",
    "OptimizerImplementation",
    "build_optimizer",
    "check_fused_support",
    "implementation_options",
    "lr_multiplier",
    "multistep",
    "parameter_groups",
    "start_fused_momentum",
    "warmup_cosine",
]

OptimizerImplementation = Literal["auto", "foreach", "fused", "for_loop"]
"""How a torch.optim optimizer runs its update (the same arithmetic, up to rounding): one
kernel per parameter (``for_loop``), one per operation over all parameters (``foreach``),
one for the whole update (``fused``), or PyTorch's default (``auto``: foreach on CUDA, the
for-loop on the CPU)."""
OPTIMIZER_IMPLEMENTATIONS: tuple[str, ...] = get_args(OptimizerImplementation)

_OPTIONS: dict[str, dict[str, bool | None]] = {
    "auto": {"foreach": None, "fused": None},  # torch.optim's own defaults
    "foreach": {"foreach": True, "fused": False},
    "fused": {"foreach": False, "fused": True},
    "for_loop": {"foreach": False, "fused": False},
}


def implementation_options(implementation: str) -> dict[str, bool | None]:
    """The ``foreach`` and ``fused`` arguments of a torch.optim optimizer (SGD, Adam, AdamW,
    ...) for ``implementation``. Raises ConfigError naming ``optim.implementation`` for an
    unknown name."""
    if implementation not in _OPTIONS:
        raise ConfigError(
            f"optim.implementation={implementation!r}: expected one of "
            f"{list(OPTIMIZER_IMPLEMENTATIONS)}"
        )
    return dict(_OPTIONS[implementation])


def build_optimizer(
    factory: Callable[..., torch.optim.Optimizer],
    groups: Iterable[dict[str, Any]],
    implementation: str,
) -> torch.optim.Optimizer:
    """``factory(groups, foreach=..., fused=...)`` (``auto``: ``factory(groups)``, whatever
    the factory's defaults are). Raises ConfigError when ``implementation`` is unknown or
    the factory takes no ``foreach``/``fused`` arguments."""
    options = implementation_options(implementation)
    if implementation == "auto":
        return factory(groups)
    parameters = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not takes_any and not set(options) <= set(parameters):
        name = getattr(getattr(factory, "func", factory), "__name__", repr(factory))
        raise ConfigError(
            f"optim.implementation={implementation}: the optimizer ({name}) takes no "
            "foreach/fused arguments; use optim.implementation=auto"
        )
    return factory(groups, **options)


def check_fused_support(parameters: Iterable[torch.Tensor]) -> None:
    """Raise ConfigError when PyTorch has no fused optimizer kernel for a parameter's device
    or dtype (it would only fail at the first step: torch.optim checks lazily)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # a PyTorch without the list: it checks at the first step
        return
    supported = _get_fused_kernels_supported_devices()
    for p in parameters:
        if p.device.type not in supported or not torch.is_floating_point(p):
            raise ConfigError(
                f"optim.implementation=fused: PyTorch {torch.__version__} has no fused "
                f"optimizer for {p.dtype} parameters on {p.device.type} (only floating-point "
                f"ones on {', '.join(supported)}); use optim.implementation=foreach or auto"
            )


def parameter_groups(net: StagedNet, lr: float, backbone_lr_scale: float) -> list[dict[str, Any]]:
    """Two SGD groups: the new layers at ``lr``, the (pretrained) backbone at
    ``lr * backbone_lr_scale``. Empty groups are left out."""
    backbone_ids = {id(p) for p in net.backbone_parameters()}
    params: list[nn.Parameter] = list(net.parameters())
    groups = [
        {
            "params": [p for p in params if id(p) not in backbone_ids],
            "lr": lr,
            "name": "new_layers",
        },
        {
            "params": [p for p in params if id(p) in backbone_ids],
            "lr": lr * backbone_lr_scale,
            "name": "backbone",
        },
    ]
    return [group for group in groups if group["params"]]


LR_SCHEDULES = ("cosine", "multistep")
"""``cosine``: :func:`warmup_cosine`; ``multistep``: :func:`multistep`."""


def warmup_cosine(step: int, *, total: int, warmup: int, floor: float) -> float:
    """LR multiplier of optimizer step ``step`` (from 0): linear warm-up ``(step + 1) /
    warmup`` over ``warmup`` steps, then ``floor + (1 - floor) * (1 + cos(pi * t / (total -
    warmup))) / 2`` at ``t`` steps after the warm-up, reaching ``floor`` at ``total``.

    fgssl's own, because neither library computes this rule as a multiplier for the
    ``LambdaLR`` whose state a checkpoint saves (exact resume): lightly's
    ``cosine_warmup_schedule`` has the same warm-up but reaches the floor one step earlier
    (``cos(pi * t / (T - 1))``); timm's ``CosineLRScheduler`` (``warmup_prefix=True``) has
    the same cosine (the reference code's ``cosine_anneal_schedule``, per step here) but a
    scheduler object of its own, and a warm-up from ``warmup_lr_init`` that makes the first
    step's rate 0 (tests/test_lr_schedules.py compares with both).
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def multistep(
    step: int, *, total: int, warmup: int, milestones: Sequence[float], gamma: float
) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then ``gamma ** m`` where ``m``
    is the number of ``milestones`` (fractions of ``total`` steps) reached, as
    ``torch.optim.lr_scheduler.MultiStepLR`` stepped per epoch with milestones at those
    epochs (e.g. (0.5, 0.75) of 100 epochs: x0.1 from epoch 50, x0.01 from 75, the MedMNIST
    v2 protocol). A multiplier for the same per-step ``LambdaLR`` as :func:`warmup_cosine`
    (with its warm-up), not torch's ``MultiStepLR``, a scheduler of its own stepped per epoch
    that tests/test_lr_schedules.py compares with."""
    if step < warmup:
        return (step + 1) / warmup
    return float(gamma ** sum(step >= round(m * total) for m in milestones))


def lr_multiplier(
    schedule: str,
    *,
    total: int,
    warmup: int,
    floor: float,
    milestones: Sequence[float],
    gamma: float,
) -> Callable[[int], float]:
    """The multiplier of ``schedule`` (:data:`LR_SCHEDULES`) as a function of the step.

    Raises:
        ConfigError: an unknown schedule, or milestones outside (0, 1].
    """
    if schedule == "cosine":
        return functools.partial(warmup_cosine, total=total, warmup=warmup, floor=floor)
    if schedule == "multistep":
        if not all(0 < m <= 1 for m in milestones):
            raise ConfigError(
                f"optim.lr_milestones={list(milestones)}: expected fractions of the phase's "
                "steps in (0, 1], e.g. [0.5, 0.75]"
            )
        return functools.partial(
            multistep, total=total, warmup=warmup, milestones=tuple(milestones), gamma=gamma
        )
    raise ConfigError(f"optim.lr_schedule={schedule!r}: expected one of {list(LR_SCHEDULES)}")


def start_fused_momentum(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter of a fused SGD group with momentum a zero momentum buffer.

    PyTorch's fused SGD (torch 2.14) can only start the buffers of a group all at one step
    (a TypeError otherwise); the progressive step's later stages bring parameters that
    start later. A zero buffer gives the same first update (``buf = momentum * 0 + grad``
    equals torch.optim.SGD's first ``buf = grad`` when ``dampening`` is 0). Raises
    ConfigError for a fused group with momentum and dampening."""
    if not isinstance(optimizer, torch.optim.SGD):
        return
    for group in optimizer.param_groups:
        if not group.get("fused") or not group["momentum"]:
            continue
        if group["dampening"]:
            raise ConfigError(
                "optim.implementation=fused with SGD momentum and dampening="
                f"{group['dampening']}: PyTorch's fused SGD cannot start the momentum of "
                "parameters a later stage brings in; use optim.implementation=foreach"
            )
        for p in group["params"]:
            optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
