"""A full run from a config: pretrain -> finetune -> test, with everything saved in one
folder (its layout: :mod:`fgssl.rundir`). The two training phases are one
:func:`fit_phase` run twice."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from fgssl.atomic import write_text_atomically
from fgssl.data.base import ImageClassificationDataModule
from fgssl.evaluation.checkpoints import read_checkpoint
from fgssl.module import FGSSLModule
from fgssl.run.checkpointing import (
    BestCheckpoint,
    check_checkpoint_classes,
    check_checkpoint_matches,
    check_output_location,
    every_epoch_checkpoint,
)
from fgssl.run.claim import claim_run_dir
from fgssl.run.config_checks import check_config, check_schedule_fits
from fgssl.run.ema import WeightEMA, ema_callback
from fgssl.run.factory import (
    build_module,
    build_trainer,
    configured_datamodule,
    is_rank_zero,
    monitor_callbacks,
    monitor_key,
    precise_bn_callback,
    ssl_monitor_callback,
    validation_keys,
)
from fgssl.run.init_from import check_init_from, init_from_weights
from fgssl.run.outputs import write_outputs
from fgssl.run.pretrained_run import check_pretrained_run, pretrained_weights
from fgssl.run.resume import ResumePoint, check_resume_split, find_resume_point
from fgssl.run.testing import run_test, tta_of_test
from fgssl.run.thresholds import keep_thresholds, wants_thresholds
from fgssl.run.user_callbacks import check_user_callbacks, user_callbacks
from fgssl.rundir import PHASES, Phase, RunDir
from fgssl.undefined import undefined_to_null

__all__ = ["fit_phase", "run_training"]

log = logging.getLogger(__name__)


def run_training(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run the phases ``cfg`` asks for, writing everything into ``run_dir``.

    With ``cfg.resume`` set (to ``run_dir``), phases whose checkpoints show them finished are
    skipped and an interrupted phase continues from its ``last.ckpt``. Only the first
    process writes files. Returns the content of ``results.json``.
    """
    run = RunDir(run_dir)
    datamodule, resume = _start(cfg, run)
    monitor = _checked_monitor(cfg, run, datamodule)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    pretrained_state = None
    if cfg.pretrain_epochs > 0 and resume.finetune is None:
        module, _, _ = fit_phase(cfg, run, datamodule, "pretrain", resume_from=resume.pretrain)
        pretrained_state = module.net.state_dict()
        timings["pretrain_seconds"] = time.perf_counter() - started

    finetune_started = time.perf_counter()
    module, trainer, checkpoint = fit_phase(
        cfg,
        run,
        datamodule,
        "finetune",
        resume_from=resume.finetune,
        initial_state=pretrained_state,
        monitor=monitor,
    )
    timings["finetune_seconds"] = time.perf_counter() - finetune_started
    assert checkpoint is not None

    best = checkpoint.best_model_path or None
    if best is None and is_rank_zero():
        log.warning(
            "no validation epoch gave a defined %s (see the warnings above): testing the last "
            "checkpoint, and best_val_score is null",
            monitor,
        )
    tested = best or str(run.last_checkpoint("finetune"))
    test_metrics, fitted = run_test(cfg, trainer, module, datamodule, tested)
    timings["total_seconds"] = time.perf_counter() - started
    # undefined metrics (NaN) become None: null in results.json
    results: dict[str, Any] = undefined_to_null(
        {
            "test": nest_metrics(test_metrics, prefix="test/"),
            "precision": str(trainer.precision),  # of the test (fgssl-eval: the same)
            "monitor": monitor,
            "best_val_score": _to_float(checkpoint.best_model_score),
            "best_checkpoint": str(Path(best).relative_to(run.root.resolve())) if best else None,
            "class_names": list(datamodule.class_names),
            "confusion_matrix": module.test_confusion_matrices,
            "timings": timings,
        }
    )
    keep_thresholds(results, fitted, datamodule, tested, write=trainer.is_global_zero)
    if trainer.is_global_zero:
        write_outputs(cfg, run, results, module, datamodule, trainer.strategy.root_device)
    return results


def _start(cfg: DictConfig, run: RunDir) -> tuple[ImageClassificationDataModule, ResumePoint]:
    """Checks, seeding and the data, before any training: the data module with its splits
    read (checked against the run's split.csv when resuming), ``config.yaml`` and
    ``split.csv`` written, and the checkpoints to resume from."""
    check_config(cfg)
    if is_rank_zero():
        if not cfg.get("resume"):  # a resumed run continues in its own folder
            claim_run_dir(run.root)
        check_output_location(run.root)
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.perf.matmul_precision:
        torch.set_float32_matmul_precision(cfg.perf.matmul_precision)
    resume = find_resume_point(run.root) if cfg.get("resume") else ResumePoint()
    datamodule = configured_datamodule(cfg)
    monitor_key(cfg, datamodule)  # a misspelt monitor, before any data is read
    wants_thresholds(cfg, datamodule)  # ordinal_thresholds=true on data without grades
    datamodule.prepare_data()
    datamodule.setup()
    check_schedule_fits(cfg, datamodule)
    if cfg.get("resume"):  # a moved data.root must still give the run's images
        check_resume_split(run.split, datamodule.split_table())
    if resume.finetune is None:
        check_pretrained_run(cfg, datamodule)
    if resume.finetune is None and resume.pretrain is None:  # init_from starts a fresh run
        check_init_from(cfg, datamodule)
    if is_rank_zero():
        write_text_atomically(run.config, OmegaConf.to_yaml(cfg, resolve=True))
        datamodule.write_split(run.split)
    return datamodule, resume


def fit_phase(
    cfg: DictConfig,
    run: RunDir,
    datamodule: ImageClassificationDataModule,
    phase: Phase,
    *,
    resume_from: str | None,
    initial_state: Mapping[str, torch.Tensor] | None = None,
    monitor: str | None = None,
) -> tuple[FGSSLModule, pl.Trainer, BestCheckpoint | None]:
    """Train ``phase`` for its ``<phase>_epochs``, in ``run``'s folder of that phase.

    Args:
        resume_from: the phase's ``last.ckpt`` to continue from (checked to be this fgssl's
            and this network's), or None for a fresh phase.
        initial_state: network weights to start from (the pretrained ones, for finetune);
            a fresh finetune phase without them starts from ``cfg.pretrained_run``'s, if set.
        monitor: the validation metric whose best epoch is checkpointed (``best.ckpt``) and
            that early stopping follows; None: no validation (the pretrain phase).

    Returns the trained module, its trainer and the best-epoch checkpoint callback (None
    without ``monitor``).
    """
    datamodule.enter_phase(phase)
    module = build_module(cfg, datamodule, phase=phase)
    if phase == "finetune":  # the phase that is tested
        module.test_views = tta_of_test(cfg)
    _check_room_for_checkpoints(run.root, module, ema=ema_callback(cfg, phase) is not None)
    resumed_epoch = _resumed_epoch(resume_from, module)
    datamodule.first_epoch = 0 if resumed_epoch is None else resumed_epoch + 1
    _load_initial_state(cfg, module, phase, initial_state, fresh=resume_from is None)
    checkpoint, callbacks = None, None
    if monitor is not None:
        checkpoint, callbacks = monitor_callbacks(
            monitor,
            run.best_checkpoint,
            patience=cfg.early_stopping.patience,
            min_delta=cfg.early_stopping.min_delta,
        )
    if phase == "pretrain" and (ssl_monitor := ssl_monitor_callback(cfg)) is not None:
        callbacks = [*(callbacks or []), ssl_monitor]
    if (precise_bn := precise_bn_callback(cfg, validate=monitor is not None)) is not None:
        callbacks = [precise_bn, *(callbacks or [])]  # before the monitor and the checkpoints
    if (ema := ema_callback(cfg, phase)) is not None:
        callbacks = [ema, *(callbacks or [])]  # validation (and precise BN) see the average
    callbacks = [*(callbacks or []), *user_callbacks(cfg, validate=monitor is not None)]
    epochs = cfg.pretrain_epochs if phase == "pretrain" else cfg.finetune_epochs
    trainer = build_trainer(
        cfg,
        run.phase(phase),
        epochs,
        resumed_epoch,
        validate=monitor is not None,
        callbacks=callbacks,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    return module, trainer, checkpoint


def _load_initial_state(
    cfg: DictConfig,
    module: FGSSLModule,
    phase: Phase,
    state: Mapping[str, torch.Tensor] | None,
    *,
    fresh: bool,
) -> None:
    """Load ``state`` into the network; a fresh finetune phase without it starts from
    ``cfg.pretrained_run``'s pretrained weights, if set, and the run's first phase from
    ``cfg.init_from``'s network, if set."""
    if state is None and fresh and phase == "finetune" and cfg.get("pretrained_run"):
        state = pretrained_weights(cfg.pretrained_run, dict(module.hparams["net"]))
    first = phase == "pretrain" or cfg.pretrain_epochs == 0
    if state is None and fresh and first and cfg.get("init_from"):
        state = init_from_weights(cfg, module.net, list(module.class_names or []))
    if state is not None:
        module.net.load_state_dict(state)


def _check_room_for_checkpoints(run_dir: Path, module: FGSSLModule, *, ema: bool) -> None:
    """Room for best, last and a temporary copy: weights plus SGD momentum each (and the
    training weights beside the average's, with an EMA)."""
    if is_rank_zero():
        parameter_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
        check_output_location(run_dir, bytes_needed=3 * (3 if ema else 2) * parameter_bytes)


def _checked_monitor(
    cfg: DictConfig, run: RunDir, datamodule: ImageClassificationDataModule
) -> str:
    """The validation metric of :func:`monitor_key` (again: the data may have told the class
    names), after checking the ``callbacks`` group against fgssl's own callbacks of both
    phases (their saved states) and the finetune validation's keys, before any training."""
    monitor = monitor_key(cfg, datamodule)
    own: list[pl.Callback] = [every_epoch_checkpoint(run.last_checkpoint(p)) for p in PHASES]
    own += monitor_callbacks(monitor, run.best_checkpoint, patience=1)[1]
    own.append(WeightEMA())
    check_user_callbacks(cfg, run, own, validation_keys(datamodule))
    return monitor


def _resumed_epoch(checkpoint_path: str | None, module: FGSSLModule) -> int | None:
    """The last finished epoch of the checkpoint to continue from (None: a fresh phase),
    after checking that it is this fgssl's and this network's, and (finetune) that the data
    has the classes it was trained on, in its order."""
    if checkpoint_path is None:
        return None
    checkpoint = read_checkpoint(checkpoint_path)
    check_checkpoint_matches(checkpoint, checkpoint_path, dict(module.hparams["net"]))
    if module.phase == "finetune" and module.class_names:
        check_checkpoint_classes(checkpoint, checkpoint_path, module.class_names)
    return int(checkpoint["epoch"])


def nest_metrics(metrics: Mapping[str, float], prefix: str) -> dict[str, Any]:
    """{"test/combined/acc": x} -> {"combined": {"acc": x}}."""
    nested: dict[str, Any] = {}
    for key, value in sorted(metrics.items()):
        parts = key.removeprefix(prefix).split("/")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = float(value)
    return nested


def _to_float(value: torch.Tensor | float | None) -> float | None:
    return None if value is None else float(value)
