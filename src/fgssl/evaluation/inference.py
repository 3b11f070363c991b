"""Running a trained network over a data loader: class probabilities of each head."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from fgssl.errors import ConfigError
from fgssl.models.base import EVAL_HEADS, StagedNet
from fgssl.ops.tta import ALIASES, averaged_probabilities, tta_views

__all__ = [
    "HEADS",
    "PRECISIONS",
    "TTA_FLIPS",
    "default_device",
    "inference_precision",
    "predict_probabilities",
    "run_precision",
]

HEADS = EVAL_HEADS

TTA_FLIPS: tuple[str, ...] = ALIASES["flips"]
"""Flip test-time augmentation (``--tta``): identity, horizontal, vertical, both (the views
of :mod:`fgssl.ops.tta`)."""


PRECISIONS: dict[str, tuple[str, torch.dtype | None]] = {
    "32-true": ("true", None),
    "64-true": ("true", torch.float64),
    "16-true": ("true", torch.float16),
    "bf16-true": ("true", torch.bfloat16),
    "16-mixed": ("mixed", torch.float16),
    "bf16-mixed": ("mixed", torch.bfloat16),
}
"""Lightning's precisions that inference reproduces: ``mixed`` runs the network under
``torch.autocast`` with the dtype (as Lightning's trainer validates and tests), ``true``
casts the network and the images to it (None: float32, nothing to do)."""
_ALIASES = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}


def run_precision(value: Any) -> str:
    """``trainer.precision`` of a run (None: Lightning's default) as a key of
    :data:`PRECISIONS` (Lightning's aliases ``32``, ``16``, ``bf16``, ``64`` spelled out).
    Raises :class:`ConfigError` for a precision inference cannot reproduce."""
    name = "32-true" if value is None else str(value)
    name = _ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ConfigError(f"precision {value!r}: expected one of {list(PRECISIONS)}")
    return name


@contextlib.contextmanager
def inference_precision(
    net: torch.nn.Module, precision: str, device: torch.device | str
) -> Iterator[torch.dtype | None]:
    """Run ``net`` on ``device`` in ``precision`` (a key of :data:`PRECISIONS`) inside the
    block, which receives the dtype to give the images (None: leave them). A ``true``
    precision casts the network and casts it back to float32 afterwards."""
    kind, dtype = PRECISIONS[run_precision(precision)]
    if kind == "mixed":
        with torch.autocast(torch.device(device).type, dtype=dtype):
            yield None
        return
    if dtype is None:
        yield None
        return
    net.to(dtype)
    try:
        yield dtype
    finally:
        net.to(torch.float32)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _heads_of(net: StagedNet) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """``net`` as a function of images to the logits of each evaluated head."""
    return lambda images: net(images).eval_logits()


@torch.no_grad()
def predict_probabilities(
    net: StagedNet | Sequence[StagedNet],
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str = "cpu",
    tta: Any = None,
    precision: str = "32-true",
    columns: Sequence[Sequence[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Softmax probabilities (N, C) of the ``combined`` and ``concat`` predictions.

    ``batches`` yield dicts with ``image``; their other tensor entries (``label``,
    ``index``, ...) are concatenated into the result under the same keys. ``tta``: a view
    spec of :func:`fgssl.ops.tta.tta_views` (``True``: the four flips of
    :data:`TTA_FLIPS`; None: none); the probabilities are averaged over its views.

    ``net`` may be several networks (an ensemble): the probabilities are then averaged over
    the networks too (each network's mean over the views, then their mean), every image
    read once. ``columns[m]`` lists, for each output class, network ``m``'s column of it
    (:attr:`fgssl.evaluation.classes.ClassMatch.order`): the networks' classes are matched
    by name before they are averaged (None: the same order in every network).

    The networks are put in eval mode (their embedding heads use batch normalisation) and
    run in ``precision`` (:func:`inference_precision`; a run's own test ran in its
    ``trainer.precision``, see :func:`run_precision`); the probabilities are float32. No
    batches: an empty dict.
    """
    nets = [net] if isinstance(net, torch.nn.Module) else list(net)
    if columns is not None and len(columns) != len(nets):
        raise ValueError(f"{len(columns)} column orders for {len(nets)} networks")
    views = tta_views(tta)
    orders: list[torch.Tensor | None] = (
        [torch.tensor(list(c)) for c in columns] if columns is not None else [None] * len(nets)
    )
    collected: dict[str, list[torch.Tensor]] = {}
    with contextlib.ExitStack() as stack:
        dtypes = []
        for member in nets:
            member.eval().to(device)
            dtypes.append(stack.enter_context(inference_precision(member, precision, device)))
        for batch in batches:
            images = batch["image"].to(device, dtype=dtypes[0])
            sums: dict[str, torch.Tensor] = {}
            for member, order in zip(nets, orders, strict=True):
                means = averaged_probabilities(_heads_of(member), images, views)
                for head, probabilities in means.items():
                    if order is not None:
                        probabilities = probabilities.index_select(1, order.to(images.device))
                    sums[head] = sums[head] + probabilities if head in sums else probabilities
            for head, total in sums.items():
                collected.setdefault(head, []).append((total / len(nets)).cpu())
            for key, value in batch.items():
                if key != "image" and isinstance(value, torch.Tensor):
                    collected.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in collected.items()}
