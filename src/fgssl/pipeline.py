"""A full run from a config: pretrain -> finetune -> test, with everything saved in one folder.

Run directory layout::

    config.yaml                      the resolved config of the run
    split.csv                        id, label, split of every image
    pretrain/metrics.csv             per-step and per-epoch losses of the pretrain phase
    pretrain/checkpoints/last.ckpt
    finetune/metrics.csv             losses and validation metrics per epoch
    finetune/checkpoints/best.ckpt   best validation score (``monitor``)
    finetune/checkpoints/last.ckpt
    results.json                     test metrics of the best checkpoint, and run facts
    training_curves.png, jigsaw_schedule.png, gradcam.png, confusion_matrix.png
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor
from pytorch_lightning.utilities import rank_zero_only

from fgssl.atomic import write_text_atomically
from fgssl.checkpointing import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    AtomicCheckpointIO,
    BestCheckpoint,
    check_checkpoint_matches,
    check_output_location,
    every_epoch_checkpoint,
    read_checkpoint,
)
from fgssl.config_checks import check_config, check_schedule_fits
from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.transforms import check_pipelines_config
from fgssl.errors import ConfigError
from fgssl.evaluation.checkpoints import load_checkpoint
from fgssl.evaluation.ssl import evaluate_frozen
from fgssl.instantiation import instantiate_unwrapped, plain
from fgssl.metrics import undefined_to_null
from fgssl.metrics_log import trim_metrics_log
from fgssl.module import FGSSLModule
from fgssl.progress import PhaseProgress
from fgssl.resume import ResumePoint, check_resume_split, find_resume_point

__all__ = [
    "build_datamodule",
    "build_module",
    "instantiate_datamodule",
    "monitor_callbacks",
    "run_training",
]

log = logging.getLogger(__name__)


def run_training(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run the phases ``cfg`` asks for, writing everything into ``run_dir``.

    With ``cfg.resume`` set (to ``run_dir``), phases whose checkpoints show them finished are
    skipped and an interrupted phase continues from its ``last.ckpt``. Only the first
    process writes files. Returns the content of ``results.json``.
    """
    run_dir = Path(run_dir)
    check_config(cfg)
    if _is_rank_zero():
        check_output_location(run_dir)
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.perf.matmul_precision:
        torch.set_float32_matmul_precision(cfg.perf.matmul_precision)
    resume = find_resume_point(run_dir) if cfg.get("resume") else ResumePoint()
    datamodule = build_datamodule(cfg)
    check_schedule_fits(cfg, datamodule)
    if cfg.get("resume"):  # a moved data.root must still give the run's images
        check_resume_split(run_dir / "split.csv", datamodule.split_table())
    if _is_rank_zero():
        write_text_atomically(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        datamodule.write_split(run_dir / "split.csv")
    monitor = _monitor_key(cfg, datamodule)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    pretrained_state = None
    if cfg.pretrain_epochs > 0 and resume.finetune is None:
        datamodule.phase = "pretrain"
        module = build_module(cfg, datamodule, phase="pretrain")
        _check_room_for_checkpoints(run_dir, module)
        resumed_epoch = _resumed_epoch(resume.pretrain, module)
        trainer = _build_trainer(
            cfg, run_dir / "pretrain", cfg.pretrain_epochs, resumed_epoch, validate=False
        )
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume.pretrain, weights_only=True)
        pretrained_state = module.net.state_dict()
        timings["pretrain_seconds"] = time.perf_counter() - started

    datamodule.phase = "finetune"
    module = build_module(cfg, datamodule, phase="finetune")
    _check_room_for_checkpoints(run_dir, module)
    resumed_epoch = _resumed_epoch(resume.finetune, module)
    if pretrained_state is not None:
        module.net.load_state_dict(pretrained_state)
    checkpoint, callbacks = monitor_callbacks(
        monitor,
        run_dir / "finetune" / BEST_CHECKPOINT,
        patience=cfg.early_stopping.patience,
        min_delta=cfg.early_stopping.min_delta,
    )
    finetune_started = time.perf_counter()
    trainer = _build_trainer(
        cfg, run_dir / "finetune", cfg.finetune_epochs, resumed_epoch, callbacks=callbacks
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume.finetune, weights_only=True)
    timings["finetune_seconds"] = time.perf_counter() - finetune_started

    best = checkpoint.best_model_path or None
    last = run_dir / "finetune" / LAST_CHECKPOINT
    if best is None and _is_rank_zero():
        log.warning(
            "no validation epoch gave a defined %s (see the warnings above): testing the last "
            "checkpoint, and best_val_score is null",
            monitor,
        )
    (test_metrics,) = trainer.test(
        module, datamodule=datamodule, ckpt_path=best or str(last), weights_only=True
    )
    timings["total_seconds"] = time.perf_counter() - started
    # undefined metrics (NaN) become None: null in results.json
    results: dict[str, Any] = undefined_to_null(
        {
            "test": _nest(test_metrics, prefix="test/"),
            "monitor": monitor,
            "best_val_score": _to_float(checkpoint.best_model_score),
            "best_checkpoint": str(Path(best).relative_to(run_dir.resolve())) if best else None,
            "class_names": list(datamodule.class_names),
            "confusion_matrix": module.test_confusion_matrices,
            "timings": timings,
        }
    )
    if trainer.is_global_zero:
        device = trainer.strategy.root_device
        _write_outputs(cfg, run_dir, results, module, datamodule, device)
    return results


def _write_outputs(
    cfg: DictConfig,
    run_dir: Path,
    results: dict[str, Any],
    module: FGSSLModule,
    datamodule: ImageClassificationDataModule,
    device: torch.device,
) -> None:
    """On the first process, after training and testing: ``results.json``, the figures,
    and the SSL evaluation of the pretrained weights (added to ``results``). No collectives;
    once results.json is written, a failure in what follows is logged, not raised."""
    results_json = run_dir / "results.json"
    write_text_atomically(results_json, json.dumps(results, indent=2, allow_nan=False) + "\n")
    if cfg.figures.enabled:
        _write_figures(cfg, run_dir, module, datamodule, results["monitor"], device)
    if not (cfg.ssl_eval.enabled and cfg.pretrain_epochs > 0):
        return
    # The pretrain phase's last checkpoint holds its final weights, in a resumed run too.
    checkpoint = run_dir / "pretrain" / LAST_CHECKPOINT
    ssl_results = _evaluate_pretrained(cfg, checkpoint, datamodule, device)
    if ssl_results is not None:
        results["ssl_eval"] = undefined_to_null(ssl_results)
        write_text_atomically(results_json, json.dumps(results, indent=2, allow_nan=False) + "\n")


def _evaluate_pretrained(
    cfg: DictConfig,
    checkpoint: Path,
    datamodule: ImageClassificationDataModule,
    device: torch.device,
) -> dict[str, Any] | None:
    """Linear probe and k-NN on the frozen features of the network pretrained in
    ``checkpoint``, fitted on the finetune phase's (labelled) training images; None if it
    fails."""
    datamodule.phase = "finetune"
    try:
        results = evaluate_frozen(
            load_checkpoint(checkpoint).net,
            datamodule,
            split=cfg.ssl_eval.split,
            device=device,
            knn_k=cfg.ssl_eval.knn_k,
            knn_temperature=cfg.ssl_eval.knn_temperature,
            probe_c=cfg.ssl_eval.probe_c,
            features=cfg.ssl_eval.features,
        )
    except Exception:
        log.exception("the SSL evaluation of the pretrained network failed (results are saved)")
        return None
    metric = datamodule.official_metric
    log.info(
        "frozen pretrained features on the %s split: linear probe %s %.4f, k-NN %s %.4f",
        results["split"],
        metric,
        results["linear_probe"].get(metric, float("nan")),
        metric,
        results["knn"].get(metric, float("nan")),
    )
    return results


def _write_figures(
    cfg: DictConfig,
    run_dir: Path,
    module: FGSSLModule,
    datamodule: ImageClassificationDataModule,
    monitor: str,
    device: torch.device,
) -> None:
    """The run's PNGs. Training is finished and results.json written, so a failure here is
    logged rather than raised."""
    from fgssl.plots.run import write_run_figures

    try:
        written = write_run_figures(
            run_dir,
            net=module.net.to(device),
            datamodule=datamodule,
            schedule=list(cfg.schedule.grids),
            monitor=monitor,
            confusion=module.test_confusion_matrices,
            num_images=cfg.figures.num_images,
            permutation=cfg.schedule.get("permutation", "derangement"),
        )
    except Exception:
        log.exception("could not write the figures of %s (the results are saved)", run_dir)
        return
    log.info("figures: %s", ", ".join(path.name for path in written))


def monitor_callbacks(
    monitor: str, best_path: Path, *, patience: int | None = None, min_delta: float = 0.0
) -> tuple[BestCheckpoint, list[pl.Callback]]:
    """The callbacks that follow the validation metric ``monitor`` (maximised, or minimised
    when it ends in ``loss``): the checkpoint of its best epoch at ``best_path``, and with a
    ``patience``, early stopping. Returns the checkpoint callback and all of them.

    An epoch where ``monitor`` is undefined (NaN) is never the best, and counts as an epoch
    without improvement (Lightning's EarlyStopping would stop at once).
    """
    checkpoint = BestCheckpoint(
        dirpath=best_path.parent,
        filename=best_path.stem,
        monitor=monitor,
        mode="min" if monitor.endswith("loss") else "max",
        auto_insert_metric_name=False,
    )
    callbacks: list[pl.Callback] = [checkpoint]
    if patience is not None:
        callbacks.append(
            EarlyStopping(
                monitor=monitor,
                mode=checkpoint.mode,
                patience=patience,
                min_delta=min_delta,
                check_finite=False,
            )
        )
    return checkpoint, callbacks


def instantiate_datamodule(cfg: DictConfig) -> ImageClassificationDataModule:
    """Check ``cfg.data.transforms``, instantiate ``cfg.data`` and create any generated
    data (``prepare_data``)."""
    check_pipelines_config(cfg.data.get("transforms"), "data.transforms")
    datamodule = instantiate_unwrapped(cfg.data)
    if not isinstance(datamodule, ImageClassificationDataModule):
        raise ConfigError(
            f"data._target_ built a {type(datamodule).__name__}: expected a subclass of "
            "fgssl.data.ImageClassificationDataModule"
        )
    datamodule.prepare_data()
    return datamodule


def build_datamodule(cfg: DictConfig) -> ImageClassificationDataModule:
    """Instantiate ``cfg.data``, create any generated data, and read and check the splits."""
    datamodule = instantiate_datamodule(cfg)
    datamodule.setup()
    return datamodule


def build_module(
    cfg: DictConfig, datamodule: ImageClassificationDataModule, *, phase: str
) -> FGSSLModule:
    """The LightningModule of ``phase`` for the dataset of ``datamodule``."""
    net_cfg = _plain_dict(cfg.model.net)
    net_cfg["num_classes"] = datamodule.num_classes
    return FGSSLModule(
        net=net_cfg,
        phase=phase,  # type: ignore[arg-type]
        step_mode=cfg.step_mode,
        schedule=list(cfg.schedule.grids),
        permutation=cfg.schedule.get("permutation", "derangement"),
        whole_image_weight=cfg.loss.whole_image_weight,
        optimizer=instantiate(cfg.optim.optimizer),
        lr=cfg.optim.pretrain_lr if phase == "pretrain" and cfg.optim.pretrain_lr else cfg.optim.lr,
        backbone_lr_scale=cfg.optim.backbone_lr_scale,
        warmup_epochs=cfg.optim.warmup_epochs,
        min_lr_scale=cfg.optim.min_lr_scale,
        zero_grad_to_none=cfg.optim.zero_grad_to_none,
        grad_clip=cfg.optim.grad_clip,
        barlow_lambda=cfg.loss.barlow_lambda,
        barlow_scale=cfg.loss.barlow_scale,
        label_smoothing=cfg.loss.label_smoothing,
        class_weights=(
            datamodule.class_weights(plain(cfg.loss.get("class_weights")))
            if phase == "finetune"
            else None
        ),
        ordinal=datamodule.ordinal,
        class_names=list(datamodule.class_names),
        seed=cfg.seed,
        channels_last=cfg.perf.channels_last,
        compile=_plain_dict(cfg.perf.compile)
        if OmegaConf.is_dict(cfg.perf.compile)
        else cfg.perf.compile,
    )


def _build_trainer(
    cfg: DictConfig,
    phase_dir: Path,
    epochs: int,
    resumed_epoch: int | None,
    *,
    validate: bool = True,
    callbacks: list[pl.Callback] | None = None,
) -> pl.Trainer:
    """A trainer for one phase; a resumed phase continues its metrics.csv after
    ``resumed_epoch``, a fresh one starts it anew."""
    if _is_rank_zero():
        trim_metrics_log(phase_dir / "metrics.csv", resumed_epoch)
    kwargs = _plain_dict(cfg.trainer)
    if not validate:
        kwargs["limit_val_batches"] = 0
    every_callback = [
        *(callbacks or []),
        # after the caller's checkpoints, so that last.ckpt holds their updated state
        every_epoch_checkpoint(phase_dir / LAST_CHECKPOINT),
        LearningRateMonitor(logging_interval="epoch"),
        PhaseProgress(phase_dir.name),  # "finetune epoch 3/30 · ... left in this phase"
    ]
    loggers = [
        instantiate(logger_cfg, save_dir=str(phase_dir.parent), name=phase_dir.name, version="")
        for logger_cfg in cfg.logger.values()
    ]
    return pl.Trainer(
        **kwargs,
        max_epochs=epochs,
        logger=loggers,
        callbacks=every_callback,
        default_root_dir=str(phase_dir),
        sync_batchnorm=bool(cfg.model.get("sync_batchnorm", False)),
        plugins=[AtomicCheckpointIO()],
    )


def _is_rank_zero() -> bool:
    """True in the process that writes files (rank 0 of a distributed run)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def _check_room_for_checkpoints(run_dir: Path, module: FGSSLModule) -> None:
    """Room for best, last and a temporary copy: weights plus SGD momentum each."""
    if _is_rank_zero():
        parameter_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
        check_output_location(run_dir, bytes_needed=3 * 2 * parameter_bytes)


def _resumed_epoch(checkpoint_path: str | None, module: FGSSLModule) -> int | None:
    """The last finished epoch of the checkpoint to continue from (None: a fresh phase),
    after checking that it is this fgssl's and this network's."""
    if checkpoint_path is None:
        return None
    checkpoint = read_checkpoint(checkpoint_path)
    check_checkpoint_matches(checkpoint, checkpoint_path, dict(module.hparams["net"]))
    return int(checkpoint["epoch"])


def _plain_dict(node: DictConfig) -> dict[str, Any]:
    """A resolved, plain-Python copy of a config node."""
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(key): value for key, value in container.items()}


def _monitor_key(cfg: DictConfig, datamodule: ImageClassificationDataModule) -> str:
    if cfg.monitor != "auto":
        return str(cfg.monitor)
    return f"val/combined/{datamodule.official_metric}"


def _nest(metrics: Mapping[str, float], prefix: str) -> dict[str, Any]:
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
