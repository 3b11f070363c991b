"""Checks of a composed fgssl-train config, run before any data is read or trained on."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig

from fgssl.data.base import REQUIRED_SPLITS, ImageClassificationDataModule
from fgssl.errors import ConfigError
from fgssl.evaluation.features import FEATURES
from fgssl.ops.jigsaw import PERMUTATIONS
from fgssl.ops.tta import tta_views
from fgssl.optim import implementation_options
from fgssl.run.aids_checks import check_training_aids
from fgssl.run.factory import bootstrap_settings, is_rank_zero
from fgssl.run.tracking import check_trackers

__all__ = ["check_config", "check_schedule_fits", "unshuffled_border"]

log = logging.getLogger(__name__)

# Trainer arguments the pipeline sets itself (passing them too would end in a TypeError
# deep inside Lightning), with the fgssl setting to use instead.
_TRAINER_KEYS_SET_BY_FGSSL = {
    "max_epochs": "pretrain_epochs and finetune_epochs",
    "logger": "the logger group (logger=csv, tensorboard, mlflow or wandb)",
    "callbacks": "the callbacks group (+callbacks.<name>._target_=<class>)",
    "default_root_dir": "hydra.run.dir",
    "sync_batchnorm": "model.sync_batchnorm",
    "plugins": "nothing: fgssl writes its checkpoints through its own plugin",
}


def check_config(cfg: DictConfig) -> None:
    """Refuse top-level settings that cannot train, naming the key and the value."""
    if cfg.get("resume") and not Path(cfg.resume).is_dir():
        raise ConfigError(f"resume={cfg.resume!r} is not a run directory")
    if cfg.pretrain_epochs < 0:
        raise ConfigError(f"pretrain_epochs must be >= 0, got {cfg.pretrain_epochs}")
    if cfg.finetune_epochs < 1:
        raise ConfigError(f"finetune_epochs must be >= 1, got {cfg.finetune_epochs}")
    if cfg.step_mode not in ("progressive", "fused"):
        raise ConfigError(f"step_mode must be 'progressive' or 'fused', got {cfg.step_mode!r}")
    _check_method(cfg)
    _check_objective(cfg)
    _check_ssl_eval(cfg)
    _warn_unused_pools(cfg)
    bootstrap_settings(cfg)
    tta_views(cfg.get("tta"))
    check_trackers(cfg.get("logger") or {})
    _check_batch_size(cfg)
    _check_trainer(cfg)
    check_training_aids(cfg)
    _check_optimizer_implementation(cfg)
    permutation = cfg.schedule.get("permutation", "derangement")
    if permutation not in PERMUTATIONS:
        raise ConfigError(
            f"schedule.permutation={permutation!r}: expected one of {list(PERMUTATIONS)}"
        )
    image_size = cfg.data.get("image_size")
    if image_size is not None:
        _check_schedule(cfg, int(image_size))


def _check_batch_size(cfg: DictConfig) -> None:
    """Batch normalisation and the Barlow Twins loss normalise over the batch, so one image
    per batch cannot train (BatchNorm raises at the first step). The training loader drops
    an incomplete last batch, so no smaller batch than ``data.batch_size`` is trained on."""
    batch_size = cfg.data.get("batch_size")
    if batch_size is not None and batch_size < 2:
        raise ConfigError(
            f"data.batch_size={batch_size}: training needs at least 2 images per batch "
            "and process (batch normalisation and the Barlow Twins loss normalise over the "
            "batch); under DDP data.batch_size is per process"
        )


def _check_trainer(cfg: DictConfig) -> None:
    """Trainer arguments that cannot work with fgssl's manual optimisation or that the
    pipeline sets itself: one line naming the fgssl setting to use instead."""
    trainer = cfg.get("trainer") or {}
    clip = trainer.get("gradient_clip_val")
    if clip:
        raise ConfigError(
            f"trainer.gradient_clip_val={clip}: fgssl takes its optimizer steps itself (one "
            f"per stage), where Lightning cannot clip; set optim.grad_clip={clip} instead (it "
            "clips the unscaled gradient norm before every step)"
        )
    algorithm = trainer.get("gradient_clip_algorithm")
    if algorithm is not None:
        raise ConfigError(
            f"trainer.gradient_clip_algorithm={algorithm}: fgssl clips "
            "the gradient norm itself; set optim.grad_clip instead"
        )
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if accumulate != 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate}: fgssl takes its optimizer steps "
            "itself (one per stage), where Lightning cannot accumulate; set "
            f"optim.accumulate_grad_batches={accumulate} instead"
        )
    if trainer.get("enable_checkpointing") is False:
        raise ConfigError(
            "trainer.enable_checkpointing=false: fgssl needs its checkpoints (the best one "
            "is tested, last.ckpt resumes a run)"
        )
    for key, instead in _TRAINER_KEYS_SET_BY_FGSSL.items():
        if key in trainer:
            raise ConfigError(f"trainer.{key} is set by fgssl itself: use {instead}")


def _check_optimizer_implementation(cfg: DictConfig) -> None:
    """An unknown ``optim.implementation``, and a fused optimizer that would have to clip
    gradients it only unscales inside its step (16-mixed's gradient scaler). The device and
    dtype are checked when the optimizer is built (FGSSLModule.configure_optimizers)."""
    implementation = cfg.optim.get("implementation", "auto")
    implementation_options(implementation)
    precision = str((cfg.get("trainer") or {}).get("precision", "32-true"))
    if implementation == "fused" and cfg.optim.grad_clip and precision in ("16-mixed", "16"):
        raise ConfigError(
            f"optim.implementation=fused with optim.grad_clip={cfg.optim.grad_clip} and "
            f"trainer.precision={precision}: a fused optimizer unscales the gradients inside "
            "its step, so they cannot be clipped before it; use optim.implementation=foreach, "
            "or trainer.precision=bf16-mixed"
        )


def _check_objective(cfg: DictConfig) -> None:
    """The SSL objective's ``_target_`` must name a class (checked before any data is read;
    its arguments are checked when the pretrain phase builds it)."""
    objective = cfg.get("objective")
    if objective is None or cfg.pretrain_epochs == 0:
        return
    target = objective.get("_target_")
    try:
        get_class(str(target))
    except Exception as error:
        raise ConfigError(
            f"objective._target_={target!r} is not a class that can be imported "
            "(e.g. fgssl.losses.BarlowTwinsLoss, fgssl.losses.VICRegLoss)"
        ) from error


def _check_ssl_eval(cfg: DictConfig) -> None:
    """``ssl_eval.*`` is used only after the whole run (the SSL evaluation of the pretrained
    network): a bad value is refused now, not found when the run is over."""
    node = cfg.get("ssl_eval")
    pretrained = cfg.pretrain_epochs > 0 or bool(cfg.get("pretrained_run"))
    if node is None or not node.get("enabled", False) or not pretrained:
        return
    splits = [s for s in REQUIRED_SPLITS if s != "train"]  # scored, not fitted on
    if node.get("split", "test") not in splits:
        raise ConfigError(f"ssl_eval.split={node.get('split')!r}: expected one of {splits}")
    if node.get("features", "backbone") not in FEATURES:
        raise ConfigError(
            f"ssl_eval.features={node.get('features')!r}: expected one of {list(FEATURES)}"
        )
    knn_k = node.get("knn_k", 20)
    if not isinstance(knn_k, int) or isinstance(knn_k, bool) or knn_k < 1:
        raise ConfigError(f"ssl_eval.knn_k={knn_k!r}: expected a whole number >= 1")
    for key in ("knn_temperature", "probe_c"):
        value = node.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"ssl_eval.{key}={value!r}: expected a number > 0")


def _warn_unused_pools(cfg: DictConfig) -> None:
    """Unlabelled images are for the pretrain phase only: without one, say they go unused
    (a warning, so that a sweep over methods may keep them for its FG-SSL runs)."""
    data = cfg.get("data") or {}
    pools = [k for k in ("unlabelled", "unlabelled_own") if data.get(k)]
    if pools and cfg.pretrain_epochs == 0 and is_rank_zero():
        log.warning(
            "%s set, but pretrain_epochs=0: this run has no pretrain phase, and only the "
            "pretrain phase reads unlabelled images; they are not used",
            " and ".join(f"data.{k}" for k in pools),
        )


def _check_method(cfg: DictConfig) -> None:
    """A ``method=`` config must still hold in the composed config: the method applies on
    top of the experiment (train.yaml's defaults list), but a command-line override of what
    it sets (``model=``, ``pretrain_epochs=``, ``pretrained_run=``), or an experiment whose
    network the method keeps (the baseline net of ``experiment=medmnist`` under
    ``method=fgssl``), would train another method than the one the run records."""
    method = cfg.get("method")
    if method is None:
        return
    target = str(cfg.model.net.get("_target_", ""))
    if target.endswith("BaselineNet"):
        trains = "baseline"
    else:
        pretrained = cfg.pretrain_epochs > 0 or bool(cfg.get("pretrained_run"))
        trains = "fgssl" if pretrained else "pmg"
    if trains != method:
        raise ConfigError(
            f"method={method} but the composed config trains {trains} (model.net._target_="
            f"{target}, pretrain_epochs={cfg.pretrain_epochs}, pretrained_run="
            f"{cfg.get('pretrained_run')}): an override or the experiment contradicts the "
            f"method; make these settings what {method} trains, or choose method={trains}"
        )


def check_schedule_fits(cfg: DictConfig, datamodule: ImageClassificationDataModule) -> None:
    """:func:`check_config`'s schedule checks for a data module whose image size is not
    the config's ``data.image_size`` (which check_config has already checked)."""
    if datamodule.image_size != cfg.data.get("image_size"):
        _check_schedule(cfg, datamodule.image_size)


def unshuffled_border(image_size: int, grid: int) -> tuple[int, float]:
    """The border a ``grid x grid`` jigsaw leaves in place on ``image_size`` px images.

    Tiles are ``image_size // grid`` px (:func:`fgssl.ops.jigsaw.jigsaw`), so the last
    ``image_size % grid`` rows and columns stay where they are. Returns that width in
    pixels and the share of the image's pixels it holds, ``1 - (covered / size)**2``.
    """
    border = image_size % grid
    return border, 1.0 - ((image_size - border) / image_size) ** 2


def _check_schedule(cfg: DictConfig, image_size: int) -> None:
    """Every jigsaw grid must fit the image (a tile is at least one pixel); a grid that does
    not divide the image leaves a border unshuffled, which is worth a warning."""
    if str(cfg.model.net.get("_target_", "")).endswith("BaselineNet"):
        return  # the baseline sees whole images only
    grids: Sequence[int] = list(cfg.schedule.grids)
    too_fine = [g for g in grids if g > image_size]
    if too_fine:
        raise ConfigError(
            f"patch schedule {list(grids)} has grids {too_fine} larger than the "
            f"{image_size}px images (data.image_size): choose a coarser schedule"
        )
    if not is_rank_zero():
        return
    for grid in grids:
        border, share = unshuffled_border(image_size, grid)
        if border:
            step = math.lcm(*grids)
            lower = image_size - image_size % step
            sizes = " or ".join(str(s) for s in (lower, lower + step) if s >= max(grids))
            log.warning(
                "grid %d of the patch schedule %s does not divide data.image_size=%d: its "
                "puzzles leave the last %d rows and columns unshuffled (%.1f %% of the "
                "pixels); an image size divisible by every grid (%s) avoids it",
                grid,
                list(grids),
                image_size,
                border,
                100 * share,
                sizes,
            )
