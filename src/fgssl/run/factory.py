"""The one place that reads a run's Hydra config to build its objects: the data module, the
LightningModule of a phase and the trainer of a phase (with its callbacks and loggers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor
from pytorch_lightning.utilities import rank_zero_only

from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.transforms import check_pipelines_config
from fgssl.errors import ConfigError
from fgssl.evaluation.bootstrap import BootstrapSettings
from fgssl.evaluation.monitor import SSLMonitor
from fgssl.metrics import ISIC2017_AUROC_CLASSES as ISIC2017
from fgssl.module import FGSSLModule
from fgssl.module_eval import eval_metric_keys
from fgssl.run.checkpointing import AtomicCheckpointIO, BestCheckpoint, every_epoch_checkpoint
from fgssl.run.instantiation import instantiate_unwrapped, plain
from fgssl.run.metrics_log import trim_metrics_log
from fgssl.run.precise_bn import PreciseBatchNorm
from fgssl.run.progress import PhaseProgress
from fgssl.rundir import LAST_CHECKPOINT, METRICS, Phase

__all__ = [
    "bootstrap_settings",
    "build_datamodule",
    "build_module",
    "build_trainer",
    "configured_datamodule",
    "instantiate_datamodule",
    "is_rank_zero",
    "mixup_options",
    "monitor_callbacks",
    "monitor_key",
    "plain_dict",
    "precise_bn_callback",
    "ssl_monitor_callback",
    "validation_keys",
]


def configured_datamodule(cfg: DictConfig) -> ImageClassificationDataModule:
    """Check ``cfg.data.transforms`` and instantiate ``cfg.data``; no data is read or
    generated yet."""
    check_pipelines_config(cfg.data.get("transforms"), "data.transforms")
    datamodule = instantiate_unwrapped(cfg.data)
    if not isinstance(datamodule, ImageClassificationDataModule):
        raise ConfigError(
            f"data._target_ built a {type(datamodule).__name__}: expected a subclass of "
            "fgssl.data.ImageClassificationDataModule"
        )
    return datamodule


def instantiate_datamodule(cfg: DictConfig) -> ImageClassificationDataModule:
    """:func:`configured_datamodule`, with any generated data created (``prepare_data``)."""
    datamodule = configured_datamodule(cfg)
    datamodule.prepare_data()
    return datamodule


def build_datamodule(cfg: DictConfig) -> ImageClassificationDataModule:
    """Instantiate ``cfg.data``, create any generated data, and read and check the splits."""
    datamodule = instantiate_datamodule(cfg)
    datamodule.setup()
    return datamodule


def build_module(
    cfg: DictConfig, datamodule: ImageClassificationDataModule, *, phase: Phase
) -> FGSSLModule:
    """The LightningModule of ``phase`` for the dataset of ``datamodule``."""
    net_cfg = plain_dict(cfg.model.net)
    net_cfg["num_classes"] = datamodule.num_classes
    return FGSSLModule(
        net=net_cfg,
        phase=phase,
        step_mode=cfg.step_mode,
        schedule=list(cfg.schedule.grids),
        permutation=cfg.schedule.get("permutation", "derangement"),
        whole_image_weight=cfg.loss.whole_image_weight,
        optimizer=instantiate(cfg.optim.optimizer),
        # runs saved before optim.implementation resume with PyTorch's default, as they trained
        optimizer_implementation=cfg.optim.get("implementation", "auto"),
        lr=cfg.optim.pretrain_lr if phase == "pretrain" and cfg.optim.pretrain_lr else cfg.optim.lr,
        backbone_lr_scale=cfg.optim.backbone_lr_scale,
        warmup_epochs=cfg.optim.warmup_epochs,
        min_lr_scale=cfg.optim.min_lr_scale,
        # runs saved before optim.lr_schedule resume with the cosine schedule they trained with
        lr_schedule=cfg.optim.get("lr_schedule", "cosine"),
        lr_milestones=list(cfg.optim.get("lr_milestones", (0.5, 0.75))),
        lr_gamma=cfg.optim.get("lr_gamma", 0.1),
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
        compile=plain_dict(cfg.perf.compile)
        if OmegaConf.is_dict(cfg.perf.compile)
        else cfg.perf.compile,
        # runs saved before bn_running_stats resume as they trained: every pass updated them
        bn_running_stats=cfg.get("bn_running_stats", "every_pass"),
        # runs saved before the objective group resume with Barlow Twins, as they trained
        objective=plain_dict(cfg.objective) if cfg.get("objective") is not None else None,
        # runs saved before these options resume without them, as they trained
        accumulate_grad_batches=cfg.optim.get("accumulate_grad_batches", 1),
        mixup=mixup_options(cfg) if phase == "finetune" else None,
    )


def mixup_options(cfg: DictConfig) -> dict[str, Any] | None:
    """The options of ``mixup.*`` for :func:`fgssl.ops.mixup.build_mixup`, or None when off."""
    node = cfg.get("mixup")
    if node is None or not node.get("enabled", False):
        return None
    return {str(k): v for k, v in plain_dict(node).items() if k != "enabled"}


def build_trainer(
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
    if is_rank_zero():
        trim_metrics_log(phase_dir / METRICS, resumed_epoch)
    kwargs = plain_dict(cfg.trainer)
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


def monitor_key(cfg: DictConfig, datamodule: ImageClassificationDataModule) -> str:
    """The validation metric that picks the best finetune epoch (``monitor``; ``auto``: the
    combined prediction's official metric of the dataset).

    Raises :class:`ConfigError` listing the keys the finetune validation logs when it is
    none of them. Needs no data read where the class names are known without it
    (:meth:`~fgssl.data.ImageClassificationDataModule.known_class_names`); otherwise the
    keys that the classes may add pass, and the check is to be repeated after setup().
    """
    monitor = str(cfg.monitor)
    key = f"val/combined/{datamodule.official_metric}" if monitor == "auto" else monitor
    keys = validation_keys(datamodule)
    if key not in keys:
        class_names = datamodule.known_class_names()
        raise ConfigError(
            f"monitor={monitor}: the finetune validation of {type(datamodule).__name__} "
            f"(classes {list(class_names or ['read from the data'])}) logs no {key!r}; "
            f"choose one of {', '.join(keys)} (monitor=auto: the dataset's official metric)"
        )
    return key


def validation_keys(datamodule: ImageClassificationDataModule) -> list[str]:
    """The keys the finetune validation logs on ``datamodule`` (with the keys ISIC 2017's
    classes add while the class names are still to be read from the data)."""
    class_names = datamodule.known_class_names()
    keys = eval_metric_keys("val", ordinal=datamodule.ordinal, class_names=class_names or ())
    if class_names is None:  # read from the data later: ISIC 2017's classes add AUROCs
        possible = eval_metric_keys("val", ordinal=datamodule.ordinal, class_names=ISIC2017)
        keys += [k for k in possible if k not in keys]
    return keys


def is_rank_zero() -> bool:
    """True in the process that writes files (rank 0 of a distributed run)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def plain_dict(node: DictConfig) -> dict[str, Any]:
    """A resolved, plain-Python copy of a config node."""
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(key): value for key, value in container.items()}


def precise_bn_callback(cfg: DictConfig, *, validate: bool) -> PreciseBatchNorm | None:
    """Precise batch-norm statistics (``precise_bn.*``): before each validation, or at the end
    of each epoch of a phase without validation (:class:`~fgssl.run.precise_bn.PreciseBatchNorm`).
    None when off (runs saved before the option resume without it, as they trained)."""
    options = cfg.get("precise_bn")
    if options is None or not options.enabled:
        return None
    return PreciseBatchNorm(options.num_images, seed=cfg.seed, every_epoch_end=not validate)


def ssl_monitor_callback(cfg: DictConfig) -> SSLMonitor | None:
    """The pretrain monitor of ``ssl_monitor.*`` (:class:`~fgssl.evaluation.monitor.SSLMonitor`),
    or None when ``ssl_monitor.every_n_epochs`` is 0 (a run of an older fgssl has no
    ``ssl_monitor``: the defaults). Raises ConfigError naming a bad value."""
    node: Any = cfg.get("ssl_monitor") or {}
    every = node.get("every_n_epochs", 1)
    if every == 0:
        return None
    return SSLMonitor(
        every,
        knn_k=node.get("knn_k", 20),
        knn_temperature=node.get("knn_temperature", 0.07),
    )


def bootstrap_settings(cfg: DictConfig) -> BootstrapSettings:
    """The test metrics' bootstrap settings (``intervals.*``; a run of an older fgssl has
    none: the defaults, seeded with the run's seed). Raises ConfigError naming the key."""
    node: Any = cfg.get("intervals") or {}
    try:
        return BootstrapSettings(
            resamples=node.get("resamples", 1000),
            confidence=node.get("confidence", 0.95),
            seed=node.get("seed", cfg.get("seed", 0)),
        )
    except ConfigError as error:
        raise ConfigError(f"intervals.{error}") from None
