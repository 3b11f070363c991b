"""Batch-norm running statistics that describe whole images, not jigsaw puzzles.

PMG and FG-SSL train every granularity stage on jigsaw puzzles of the images and evaluate on
whole images. In training mode a batch-norm layer normalises with the batch's own statistics
and also folds them into the running statistics that evaluation mode uses. When the puzzle
passes fold in as well, the running statistics mix puzzle and whole-image statistics. A puzzle
has the same pixels but different edges, so its deeper features are distributed differently,
and the evaluated network normalises whole images wrongly. Measured on the demo (ResNet-18,
96 px): the last finetune checkpoint scored a validation QWK of 0.569 with the running
statistics of every pass, and 0.858 once they were recomputed on whole training images.

:func:`frozen_running_stats` leaves the running statistics as they are during the puzzle
passes. Training itself is unchanged, because every pass still normalises with its batch's
statistics. The reference code lets every pass update the running statistics
(``bn_running_stats=every_pass``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["BN_RUNNING_STATS", "frozen_running_stats"]

BN_RUNNING_STATS = ("whole_images", "every_pass")
"""``whole_images``: only passes of whole images update the running statistics (fgssl's
default); ``every_pass``: puzzle passes do too (the reference PMG and FG-SSL code)."""


@contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Inside the block, the batch-norm layers of ``module`` that are in training mode still
    normalise with the batch's statistics but leave their running mean, running variance
    and batch counter unchanged (momentum 0). Layers in eval mode, layers without running
    statistics and other norms (LayerNorm, GroupNorm) are not affected.

    Backpropagation that recomputes the forward pass (activation checkpointing) does so
    after the block, so the recomputation updates the running statistics; run the backward
    pass inside the block as well (as :mod:`fgssl.steps` does) to cover it.
    """
    layers = [
        m
        for m in module.modules()
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
    ]
    saved = [(m.momentum, _counter(m)) for m in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, (momentum, count) in zip(layers, saved, strict=True):
            layer.momentum = momentum
            if count is not None and layer.num_batches_tracked is not None:
                layer.num_batches_tracked.copy_(count)


def _counter(layer: _BatchNorm) -> torch.Tensor | None:
    tracked = layer.num_batches_tracked
    return tracked.detach().clone() if tracked is not None else None
