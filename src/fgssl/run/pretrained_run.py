"""``pretrained_run``: finetune from the pretrain phase of another, finished run instead of
pretraining again, e.g. one pretraining shared by the finetunes of several label fractions
(the label-efficiency protocol). Its weights are checked to fit this run's network, and its
pretraining images never to hold this run's validation or test images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.unlabelled import check_held_out_overlap, pretrain_images
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.checkpoints import read_checkpoint
from fgssl.run.checkpointing import check_checkpoint_matches
from fgssl.run.factory import build_datamodule
from fgssl.rundir import RunDir

__all__ = ["check_pretrained_run", "pretrained_checkpoint", "pretrained_weights"]

_PREFIX = "net."  # FGSSLModule keeps its network as ``self.net``


def _source(source: str | os.PathLike[str]) -> RunDir:
    return RunDir(Path(source).expanduser())


def pretrained_checkpoint(cfg: DictConfig, run: RunDir) -> Path | None:
    """The checkpoint whose network the finetune phase of ``cfg`` started from: this run's
    pretrain phase, ``pretrained_run``'s, or None (no self-supervised phase)."""
    if cfg.pretrain_epochs > 0:
        return run.last_checkpoint("pretrain")
    if cfg.get("pretrained_run"):
        return _source(cfg.pretrained_run).last_checkpoint("pretrain")
    return None


def check_pretrained_run(cfg: DictConfig, datamodule: ImageClassificationDataModule) -> None:
    """Refuse a ``pretrained_run`` that cannot be finetuned from, before any training.

    Raises :class:`ConfigError` when ``pretrain_epochs`` is not 0 (two pretrainings asked
    for), when the folder has no finished pretrain phase (``pretrain/checkpoints/last.ckpt``
    of its last epoch and its ``config.yaml``), and
    :class:`fgssl.errors.DataLayoutError` (from :func:`check_held_out_overlap`) when one of
    its pretraining images, by path or by content, is a validation or test image of this
    run. Its images are read with its own config (data module, ``data.unlabelled``).
    """
    source = cfg.get("pretrained_run")
    if not source:
        return
    if cfg.pretrain_epochs > 0:
        raise ConfigError(
            f"pretrained_run={source!r} and pretrain_epochs={cfg.pretrain_epochs} both ask "
            "for a pretrain phase: set pretrain_epochs=0 to finetune from the pretrained "
            "run, or pretrained_run=null to pretrain here"
        )
    run = _source(source)
    if not run.config.is_file():
        raise ConfigError(
            f"pretrained_run={source!r} is not an fgssl-train run directory (no "
            f"{run.config.name}): expected the folder of a finished run with a pretrain phase"
        )
    saved = OmegaConf.load(run.config)
    assert isinstance(saved, DictConfig)
    epochs = int(saved.get("pretrain_epochs", 0))
    checkpoint_path = run.last_checkpoint("pretrain")
    if epochs < 1 or not checkpoint_path.is_file():
        raise ConfigError(
            f"pretrained_run={source!r} has no pretrain checkpoint ({checkpoint_path}; its "
            f"pretrain_epochs={epochs}): expected a run that pretrained"
        )
    finished = int(read_checkpoint(checkpoint_path).get("epoch", -1)) + 1
    if finished < epochs:
        raise ConfigError(
            f"pretrained_run={source!r} stopped its pretrain phase after {finished} of "
            f"{epochs} epochs: finish it first (fgssl-train resume={source})"
        )
    _check_no_leak(saved, datamodule, source)


def _check_no_leak(
    saved: DictConfig, datamodule: ImageClassificationDataModule, source: str
) -> None:
    pretrained_on = build_datamodule(saved)
    pretrained_on.setup()
    datamodule.setup()
    assert pretrained_on.splits is not None and datamodule.splits is not None
    images = pretrain_images(pretrained_on.splits, own=bool(saved.data.get("unlabelled_own")))
    check_held_out_overlap(
        images,
        datamodule.splits,
        what=f"image(s) pretrained on in pretrained_run={source!r}",
        remedy="finetune with the same data split as the pretrained run, or pretrain anew",
        drop_training_images=False,
    )


def pretrained_weights(
    source: str | os.PathLike[str], net_config: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """The network weights of ``source``'s (a run directory) last pretrain checkpoint,
    checked to be this fgssl's and a network built from ``net_config`` (a
    :class:`CheckpointError` naming the differing keys otherwise)."""
    path = _source(source).last_checkpoint("pretrain")
    checkpoint = read_checkpoint(path)
    check_checkpoint_matches(checkpoint, path, net_config)
    state = checkpoint["state_dict"]
    weights = {k[len(_PREFIX) :]: v for k, v in state.items() if k.startswith(_PREFIX)}
    if not weights:
        raise CheckpointError(f"{str(path)!r} holds no network weights ('{_PREFIX}*' keys)")
    return weights
