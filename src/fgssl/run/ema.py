"""An exponential moving average (EMA) of the network's weights during a phase (``ema.*``),
kept by timm's :class:`timm.utils.ModelEmaV3`.

After every training batch that stepped (every group of ``optim.accumulate_grad_batches``),
each weight and floating-point buffer of the average moves towards the network's:
``ema = decay * ema + (1 - decay) * weight`` (the first update copies the network; with
``warmup``, update t uses ``min(decay, 1 - (1 + t - 1) ** (-2/3))``, timm's warm-up).

The average is what the phase hands on: validation (hence the best checkpoint and early
stopping) scores it, every checkpoint's ``state_dict`` holds it (so the test, fgssl-eval,
fgssl-predict, fgssl-export and a finetune phase that starts from a pretrain phase use it),
and the network holds it when the fit ends. The training weights, from which training
continues on resume, are saved beside it under :data:`EMA_CHECKPOINT_KEY`.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from timm.utils import ModelEmaV3
from torch import nn

from fgssl.errors import ConfigError

__all__ = ["EMA_CHECKPOINT_KEY", "WeightEMA"]

log = logging.getLogger(__name__)

EMA_CHECKPOINT_KEY = "fgssl_ema"
"""The checkpoint entry of an EMA run: ``training_state`` (the network's own weights, which
``state_dict`` does not hold) and ``updates``."""

_NET = "net."  # FGSSLModule keeps its network as ``self.net``


def _net(pl_module: pl.LightningModule) -> nn.Module:
    net = getattr(pl_module, "net", None)
    if not isinstance(net, nn.Module):
        raise TypeError("WeightEMA averages the network of an FGSSLModule (its 'net')")
    return net


class WeightEMA(pl.Callback):
    """The EMA of ``pl_module.net`` during a fit (see the module's docstring).

    Args:
        decay: in (0, 1); the average's time constant is about ``1 / (1 - decay)`` updates.
        warmup: timm's decay warm-up (a smaller decay for the first updates).

    Raises:
        ConfigError: a decay outside (0, 1).
    """

    def __init__(self, decay: float = 0.999, *, warmup: bool = False) -> None:
        if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 < decay < 1:
            raise ConfigError(f"ema.decay={decay!r}: expected a number in (0, 1), e.g. 0.999")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.ema: ModelEmaV3 | None = None
        self.updates = 0
        """Updates so far (what timm's warm-up counts)."""
        self._last_step = 0
        self._swapped = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # before a checkpoint is restored into it (on_load_checkpoint)
        if stage == "fit" and self.ema is None:
            self.ema = ModelEmaV3(_net(pl_module), decay=self.decay, use_warmup=self.warmup)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self.ema is not None
        self.ema.module.to(pl_module.device)  # the network is on its device by now

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_step = trainer.global_step  # restored by now, on resume

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self.ema is None or trainer.global_step <= self._last_step:
            return  # no step in this batch (an accumulation group is still open)
        self.updates += 1
        self.ema.update(_net(pl_module), step=self.updates)
        self._last_step = trainer.global_step

    # ------------------------------------------------------------ validation scores the EMA
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before precise batch-norm statistics, which are then the average's own
        if self.ema is not None and not self._swapped:
            self._swap(pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._swapped:
            self._swap(pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The phase hands on the average (also when a resumed fit had nothing left to do);
        the average is then the network, and a checkpoint saved later holds it alone."""
        if self.ema is not None:
            if self._swapped:
                self._swap(pl_module)
            _net(pl_module).load_state_dict(self.ema.module.state_dict())
            self.ema = None

    def _swap(self, pl_module: pl.LightningModule) -> None:
        assert self.ema is not None
        live = _net(pl_module).state_dict().values()
        with torch.no_grad():
            for average, current in zip(self.ema.module.state_dict().values(), live, strict=True):
                kept = current.clone()
                current.copy_(average)
                average.copy_(kept)
        self._swapped = not self._swapped

    # --------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "decay": self.decay, "warmup": self.warmup}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.updates = int(state_dict.get("updates", 0))

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.ema is None:
            return
        average, training = self.ema.module.state_dict(), _net(pl_module).state_dict()
        if self._swapped:
            average, training = training, average
        state = checkpoint["state_dict"]
        state.update({_NET + name: value.detach() for name, value in average.items()})
        checkpoint[EMA_CHECKPOINT_KEY] = {
            "training_state": {name: value.detach().clone() for name, value in training.items()},
            "updates": self.updates,
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """The module has loaded ``state_dict`` (the average): the average takes it, and
        the network its training weights back."""
        if self.ema is None:
            return
        state = checkpoint["state_dict"]
        average = {k[len(_NET) :]: v for k, v in state.items() if k.startswith(_NET)}
        self.ema.module.load_state_dict(average)
        saved = checkpoint.get(EMA_CHECKPOINT_KEY)
        if not isinstance(saved, dict) or "training_state" not in saved:
            log.warning(
                "the checkpoint holds no EMA (it was saved with ema.enabled=false): the "
                "average starts from its weights"
            )
            return
        _net(pl_module).load_state_dict(saved["training_state"])
        self.updates = int(saved.get("updates", self.updates))


def ema_callback(cfg: Any, phase: str) -> WeightEMA | None:
    """The EMA of ``cfg.ema`` for ``phase``, or None when off or not one of ``ema.phases``
    (a run of an older fgssl has no ``ema``: off). Raises ConfigError naming a bad value."""
    node = cfg.get("ema")
    if node is None or not node.get("enabled", False):
        return None
    phases = list(node.get("phases", ["finetune"]))
    unknown = [p for p in phases if p not in ("pretrain", "finetune")]
    if unknown or not phases:
        raise ConfigError(
            f"ema.phases={phases}: expected a non-empty list of pretrain and/or finetune"
        )
    if phase not in phases:
        return None
    return WeightEMA(node.get("decay", 0.999), warmup=bool(node.get("warmup", False)))
