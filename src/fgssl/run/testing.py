"""The run's test of its finetuned checkpoint: with the run's test-time augmentation
(``tta``, :mod:`fgssl.ops.tta`), after fitting its ordinal thresholds on the validation
split where the run wants them (:mod:`fgssl.run.thresholds`), so that the test scores both."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytorch_lightning as pl
from omegaconf import DictConfig

from fgssl.data.base import ImageClassificationDataModule
from fgssl.module import FGSSLModule
from fgssl.ops.tta import describe_views, tta_views
from fgssl.run.factory import is_rank_zero
from fgssl.run.thresholds import fit_run_thresholds, wants_thresholds
from fgssl.thresholds import FittedThresholds

__all__ = ["run_test", "tta_of_test"]

log = logging.getLogger(__name__)


def tta_of_test(cfg: DictConfig) -> tuple[str, ...]:
    """The test-time augmentation of the run's test (``tta``), logged."""
    views = tta_views(cfg.get("tta"))
    if views and is_rank_zero():
        log.info("test-time augmentation of the test: %s", describe_views(views))
    return views


def run_test(
    cfg: DictConfig,
    trainer: pl.Trainer,
    module: FGSSLModule,
    datamodule: ImageClassificationDataModule,
    tested: str,
) -> tuple[Mapping[str, float], FittedThresholds | None]:
    """Test the checkpoint ``tested``: its logged test metrics, after fitting its ordinal
    thresholds on the validation split where the run wants them (:mod:`fgssl.run.thresholds`;
    the test then scores them), and those thresholds (None: not fitted)."""
    fitted = None
    if wants_thresholds(cfg, datamodule):
        fitted = fit_run_thresholds(trainer, module, datamodule, tested)
    (metrics,) = trainer.test(module, datamodule=datamodule, ckpt_path=tested, weights_only=True)
    return metrics, fitted
