"""The network passes of a staged network in a LightningModule, with the speed options
(channels-last memory format, ``torch.compile``). :class:`fgssl.module.FGSSLModule` inherits
them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from fgssl.models.base import NetOutput, StagedNet, StageOutput
from fgssl.module_eval import EvaluatedModule

__all__ = ["PassesModule"]


class PassesModule(EvaluatedModule):
    """Runs ``self.net`` (set by the subclass, which calls :meth:`_init_passes` in its
    ``__init__``) on channels-last tensors and through ``torch.compile`` when asked."""

    net: StagedNet

    def _init_passes(self, *, channels_last: bool, compile: bool | Mapping[str, Any]) -> None:
        self.channels_last = channels_last
        self.compile_options: dict[str, Any] | None = (
            dict(compile) if isinstance(compile, Mapping) else {} if compile else None
        )
        self._passes: dict[str, Callable[..., Any]] = {}

    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_options is not None and not self._passes:
            self._passes = {
                "stage": torch.compile(self.net.forward_stage, **self.compile_options),
                "full": torch.compile(self.net.forward, **self.compile_options),
            }

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _stage_pass(self, x: torch.Tensor, stage: int) -> StageOutput:
        """Head ``stage`` on ``x``, computing only what it needs (see StagedNet)."""
        forward = self._passes.get("stage", self.net.forward_stage)
        output: StageOutput = forward(self._prepare(x), stage)
        return output

    def _full_pass(self, x: torch.Tensor) -> NetOutput:
        """Every head on ``x``."""
        forward = self._passes.get("full", self.net.forward)
        output: NetOutput = forward(self._prepare(x))
        return output
