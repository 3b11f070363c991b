"""Checks of the training aids' settings (``optim.accumulate_grad_batches``, ``mixup``,
``ema``, ``callbacks``, ``init_from``), run with the other config checks before any data is
read (:func:`fgssl.run.config_checks.check_config`)."""

from __future__ import annotations

from omegaconf import DictConfig

from fgssl.errors import ConfigError
from fgssl.ops.mixup import build_mixup
from fgssl.run.ema import ema_callback
from fgssl.run.factory import mixup_options
from fgssl.run.init_from import check_init_from_source
from fgssl.run.user_callbacks import user_callbacks

__all__ = ["check_training_aids"]


def check_training_aids(cfg: DictConfig) -> None:
    """Refuse, in one line naming the key, a bad accumulation count, mixup option or EMA
    setting, a callback that cannot be built, and an ``init_from`` that cannot start this
    run (the checks that need the data or the run directory come later)."""
    every = cfg.optim.get("accumulate_grad_batches", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(
            f"optim.accumulate_grad_batches={every!r}: expected a whole number >= 1 "
            "(1: no accumulation)"
        )
    options = mixup_options(cfg)
    if options is not None:
        build_mixup(options, num_classes=2)  # ConfigError for a bad option
        batch_size = cfg.data.get("batch_size")
        if isinstance(batch_size, int) and batch_size % 2:
            raise ConfigError(
                f"mixup.enabled=true with data.batch_size={batch_size}: timm's Mixup mixes "
                "image i with image B-1-i, so it needs an even batch (per process)"
            )
    for phase in ("pretrain", "finetune"):
        ema_callback(cfg, phase)  # ConfigError for a bad decay or phase
    user_callbacks(cfg, validate=True)  # ConfigError for one that cannot be built
    if not cfg.get("resume"):  # a resumed run started long ago: its source may have moved
        check_init_from_source(cfg)
