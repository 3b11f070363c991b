"""The ordinal thresholds of a run (:mod:`fgssl.thresholds`): fitted at the end of finetuning
on the validation split's predictions of the checkpoint that is tested, applied by its test
(``test/<head>/kappa_thresholded``), and written into that checkpoint (``fgssl`` metadata,
``ordinal_thresholds``) and into results.json, so that fgssl-eval and fgssl-predict cut the
grades the same way wherever the checkpoint goes."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from fgssl.atomic import atomic_path
from fgssl.data.base import ImageClassificationDataModule
from fgssl.errors import ConfigError
from fgssl.evaluation.checkpoints import read_checkpoint
from fgssl.models.base import EVAL_HEADS
from fgssl.module import FGSSLModule
from fgssl.thresholds import FittedThresholds, HeadThresholds, fit_thresholds

__all__ = [
    "THRESHOLDS_KEY",
    "fit_run_thresholds",
    "keep_thresholds",
    "log_fitted_thresholds",
    "results_record",
    "store_thresholds",
    "validation_is_test",
    "wants_thresholds",
]

log = logging.getLogger(__name__)

THRESHOLDS_KEY = "ordinal_thresholds"
"""The config key, the key in the checkpoint's ``fgssl`` metadata, and in results.json."""


def wants_thresholds(cfg: DictConfig, datamodule: ImageClassificationDataModule) -> bool:
    """Whether the run fits thresholds: ``ordinal_thresholds`` ``auto`` (a run config
    without the key too): for ordinal data; ``true``: required, refused (ConfigError) for
    data that is not ordinal; ``false``: never."""
    setting = cfg.get(THRESHOLDS_KEY, "auto")
    if setting != "auto" and not isinstance(setting, bool):
        raise ConfigError(f"{THRESHOLDS_KEY}={setting!r}: expected auto, true or false")
    if setting is True and not datamodule.ordinal:
        raise ConfigError(
            f"{THRESHOLDS_KEY}=true, but the classes of {type(datamodule).__name__} are not "
            "grades (data.ordinal is false): thresholds cut an expected grade; use auto or false"
        )
    return bool(datamodule.ordinal) and setting is not False


def fit_run_thresholds(
    trainer: pl.Trainer,
    module: FGSSLModule,
    datamodule: ImageClassificationDataModule,
    checkpoint: str,
) -> FittedThresholds:
    """Validate ``checkpoint`` (on every process: the predictions are gathered, so every
    rank fits the same thresholds), fit each head's thresholds on the validation
    predictions and give them to ``module`` for its test. Nothing is logged to the run's
    loggers (metrics.csv keeps one row per training epoch); the precise batch-norm callback
    does not recompute (it does so during fitting only)."""
    module.val_predictions = {}  # not the last training epoch's: the checkpoint's own
    loggers = trainer.loggers
    trainer.loggers = []
    try:
        trainer.validate(
            module, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True, verbose=False
        )
    finally:
        trainer.loggers = loggers
    heads = module.val_predictions
    none = HeadThresholds(None, "the validation split gave no predictions")
    names = tuple(module.class_names or ())
    fitted = FittedThresholds(
        names,
        {h: fit_thresholds(*heads[h], names) if h in heads else none for h in EVAL_HEADS},
        fitted_on="val",
        images=len(next(iter(heads.values()))[1]) if heads else 0,
    )
    module.ordinal_thresholds = fitted
    if trainer.is_global_zero:
        log_fitted_thresholds(fitted, datamodule)
    return fitted


def log_fitted_thresholds(
    fitted: FittedThresholds, datamodule: ImageClassificationDataModule
) -> None:
    """Log each head's thresholds (a warning for a head without), and warn when the test
    split is the validation split they were fitted on."""
    for head, entry in fitted.heads.items():
        if entry.thresholds is None:
            log.warning(
                "no ordinal thresholds for %s: %s (test/%s/kappa_thresholded is null)",
                head,
                entry.reason,
                head,
            )
            continue
        log.info(
            "ordinal thresholds of %s fitted on %d validation images: %s (validation QWK "
            "%.4f; rounded expected grade %.4f)",
            head,
            fitted.images,
            ", ".join(f"{t:.3f}" for t in entry.thresholds),
            entry.kappa,
            entry.kappa_rounded,
        )
    if validation_is_test(datamodule):
        log.warning(
            "the test split is the validation split (no test labels: data.test_fraction=0), "
            "so kappa_thresholded is scored on the images its thresholds were fitted on and "
            "overstates what they give on new images; hold out a test split "
            "(data.test_fraction=0.2) for a fair figure"
        )


def validation_is_test(datamodule: ImageClassificationDataModule) -> bool:
    """Whether the test split holds the validation split's images (datasets without test
    labels test on the validation split)."""
    splits = getattr(datamodule, "splits", None)  # a plain LightningDataModule has none
    if splits is None or "val" not in splits or "test" not in splits:
        return False
    return set(splits["val"]["id"].astype(str)) == set(splits["test"]["id"].astype(str))


def results_record(
    fitted: FittedThresholds, datamodule: ImageClassificationDataModule, checkpoint: str
) -> dict[str, Any]:
    """What results.json holds under ``ordinal_thresholds``: the record of the checkpoint,
    which checkpoint, and whether the test split is the validation split."""
    return {
        **fitted.to_json(),
        "checkpoint": os.path.basename(checkpoint),
        "test_is_validation": validation_is_test(datamodule),
    }


def keep_thresholds(
    results: dict[str, Any],
    fitted: FittedThresholds | None,
    datamodule: ImageClassificationDataModule,
    checkpoint: str,
    *,
    write: bool,
) -> None:
    """Add ``fitted`` (None: nothing to keep) to ``results`` under ``ordinal_thresholds``
    (:func:`results_record`) and, where ``write`` (the first process), into ``checkpoint``."""
    if fitted is None:
        return
    results[THRESHOLDS_KEY] = results_record(fitted, datamodule, checkpoint)
    if write:
        store_thresholds(checkpoint, fitted)


def store_thresholds(checkpoint: str | os.PathLike[str], fitted: FittedThresholds) -> None:
    """Write ``fitted`` into ``checkpoint``'s ``fgssl`` metadata (the file rewritten
    atomically: an interruption leaves the previous file). A failure is logged: the run's
    results are complete without it."""
    try:
        state = read_checkpoint(checkpoint)
        state.setdefault("fgssl", {})[THRESHOLDS_KEY] = fitted.to_json()
        with atomic_path(checkpoint) as temporary:
            torch.save(state, temporary)
    except Exception:
        log.exception(
            "could not write the ordinal thresholds into %s (they are in results.json; "
            "fgssl-eval and fgssl-predict will not use them)",
            checkpoint,
        )
