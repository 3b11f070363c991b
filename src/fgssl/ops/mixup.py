"""Mixup and CutMix of a training batch, with timm's :class:`timm.data.Mixup`, reproducibly.

timm's Mixup mixes the images of a batch with those of the batch reversed (``mode="batch"``:
one draw for the batch; ``"pair"``, ``"elem"``: per image) and returns soft targets
``lam * y + (1 - lam) * y.flip(0)`` of the label-smoothed one-hot labels; CutMix pastes a
box of the reversed batch instead, and ``lam`` is then the share of each image's own pixels.
It draws from NumPy's global generator; :func:`mix_batch` seeds it for the one call (and
restores it), so that a batch's mixing depends only on its seed: a resumed run mixes as the
uninterrupted one did.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from timm.data import Mixup

from fgssl.errors import ConfigError

__all__ = ["MIXUP_OPTIONS", "build_mixup", "mix_batch"]

MIXUP_OPTIONS: tuple[str, ...] = (
    "mixup_alpha",
    "cutmix_alpha",
    "cutmix_minmax",
    "prob",
    "switch_prob",
    "mode",
    "correct_lam",
)
"""The options of :class:`timm.data.Mixup` that a mixup config may set (``label_smoothing``
and ``num_classes`` come from the loss and the data)."""


def build_mixup(
    options: Mapping[str, Any], *, num_classes: int, label_smoothing: float = 0.0
) -> Mixup:
    """timm's Mixup with ``options`` (keys of :data:`MIXUP_OPTIONS`).

    Raises:
        ConfigError: an unknown key, no mixing asked for (both alphas 0 and no
            ``cutmix_minmax``), a negative alpha, a probability outside [0, 1], or a ``mode``
            other than batch, pair, elem.
    """
    unknown = sorted(set(options) - set(MIXUP_OPTIONS))
    if unknown:
        raise ConfigError(f"mixup: unknown option(s) {unknown}; expected {list(MIXUP_OPTIONS)}")
    mixup_alpha = float(options.get("mixup_alpha", 0.8))
    cutmix_alpha = float(options.get("cutmix_alpha", 1.0))
    minmax = options.get("cutmix_minmax")
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ConfigError(
            f"mixup.mixup_alpha={mixup_alpha} and mixup.cutmix_alpha={cutmix_alpha}: "
            "expected >= 0 (0 turns that kind off)"
        )
    if mixup_alpha == 0 and cutmix_alpha == 0 and minmax is None:
        raise ConfigError(
            "mixup.mixup_alpha=0 and mixup.cutmix_alpha=0 mix nothing: set one above 0, or "
            "mixup.enabled=false"
        )
    for key in ("prob", "switch_prob"):
        value = float(options.get(key, 1.0 if key == "prob" else 0.5))
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"mixup.{key}={value}: expected a probability in [0, 1]")
    mode = options.get("mode", "batch")
    if mode not in ("batch", "pair", "elem"):
        raise ConfigError(f"mixup.mode={mode!r}: expected one of batch, pair, elem")
    return Mixup(
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        cutmix_minmax=list(minmax) if minmax is not None else None,
        prob=float(options.get("prob", 1.0)),
        switch_prob=float(options.get("switch_prob", 0.5)),
        mode=mode,
        correct_lam=bool(options.get("correct_lam", True)),
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )


@contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """NumPy's global generator seeded with ``seed`` inside, as it was outside."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def mix_batch(
    mixup: Mixup, images: torch.Tensor, labels: torch.Tensor, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mixed copy of ``images`` (B, C, H, W) and its soft targets (B, num_classes,
    float32), drawn with ``seed`` (< 2**32). ``images`` is left as it is.

    Raises:
        ValueError: an odd batch (timm mixes image i with image B-1-i).
    """
    if len(images) % 2:
        raise ValueError(f"mixup needs an even batch, got {len(images)} images")
    with _numpy_seeded(seed):
        mixed, targets = mixup(images.clone(), labels)  # timm mixes its input in place
    return mixed, targets.float()
