"""Running a trained network over a data loader: class probabilities of each head."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from fgssl.errors import ConfigError
from fgssl.models.base import EVAL_HEADS, StagedNet

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

TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))
"""Flip test-time augmentation: identity, horizontal, vertical, both."""


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


@torch.no_grad()
def predict_probabilities(
    net: StagedNet,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str = "cpu",
    tta: bool = False,
    precision: str = "32-true",
) -> dict[str, torch.Tensor]:
    """Softmax probabilities (N, C) of the ``combined`` and ``concat`` predictions.

    ``batches`` yield dicts with ``image``; their other tensor entries (``label``,
    ``index``, ...) are concatenated into the result under the same keys. With ``tta`` the
    probabilities are averaged over the four flips of :data:`TTA_FLIPS`. The network is put
    in eval mode (its embedding heads use batch normalisation) and runs in ``precision``
    (:func:`inference_precision`; a run's own test ran in its ``trainer.precision``, see
    :func:`run_precision`); the probabilities are float32. No batches: an empty dict.
    """
    net.eval().to(device)
    collected: dict[str, list[torch.Tensor]] = {}
    flips = TTA_FLIPS if tta else ((),)
    with inference_precision(net, precision, device) as image_dtype:
        for batch in batches:
            images = batch["image"].to(device, dtype=image_dtype)
            sums: dict[str, torch.Tensor] = {}
            for dims in flips:
                output = net(images.flip(dims) if dims else images)
                for head, logits in output.eval_logits().items():
                    probabilities = logits.float().softmax(dim=1)
                    sums[head] = sums[head] + probabilities if head in sums else probabilities
            for head, total in sums.items():
                collected.setdefault(head, []).append((total / len(flips)).cpu())
            for key, value in batch.items():
                if key != "image" and isinstance(value, torch.Tensor):
                    collected.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in collected.items()}
