"""``init_from``: start this run's network from the network of another, *finetuned* run (a
run directory: its best finetune checkpoint; or a checkpoint file), e.g. EyePACS, then APTOS.

Everything but the class layers is taken (backbone, granularity blocks, embedding heads,
projectors), checked to be the same network (the same model config but for
``num_classes``, the same tensor shapes). The class layers (the classifiers, whose rows are
classes) are taken too when the checkpoint's classes are this data's, matched by name
(:func:`fgssl.evaluation.classes.match_classes`: their rows reordered into the data's
order); other classes leave them freshly initialised, with a warning naming both lists.
The network so made starts the run's first phase (its pretrain phase, if it has one).
Before any training, a source that fgssl cannot use is refused in one line, and so is a
source run that trained on any validation or test image of this run (by path or content).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.unlabelled import check_held_out_overlap, pretrain_images
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.checkpoints import check_checkpoint_version, read_checkpoint
from fgssl.evaluation.classes import match_classes
from fgssl.models.base import StagedNet
from fgssl.run.factory import build_datamodule
from fgssl.run.loading import find_run_dir, resolve_checkpoint
from fgssl.rundir import RunDir

__all__ = ["check_init_from", "check_init_from_source", "init_from_weights"]

log = logging.getLogger(__name__)

_PREFIX = "net."  # FGSSLModule keeps its network as ``self.net``
_FREE_KEYS = {
    "num_classes",
    "pretrained",
    "pretrained_weights",
    "activation_checkpointing",
    "image_size",  # a CNN's weights fit any size; a ViT's position embedding is then refused
}
"""Model settings the source may have otherwise (the tensors' shapes are still checked)."""


def _source_checkpoint(cfg: DictConfig) -> tuple[Path, dict[str, Any]]:
    path = resolve_checkpoint(str(cfg.init_from), phase="finetune")
    return path, read_checkpoint(path)


def check_init_from_source(cfg: DictConfig) -> None:
    """Refuse an ``init_from`` this run cannot start from, before any data is read.

    Raises:
        ConfigError: together with ``pretrained_run`` (two starting points).
        CheckpointError: no checkpoint there, not an fgssl checkpoint of this version, a
            pretrain-phase checkpoint, another model configuration (naming the keys).
    """
    source = cfg.get("init_from")
    if not source:
        return
    if cfg.get("pretrained_run"):
        raise ConfigError(
            f"init_from={source!r} and pretrained_run={cfg.pretrained_run!r} are two "
            "starting points for the network: set one of them"
        )
    path, checkpoint = _source_checkpoint(cfg)
    meta = checkpoint.get("fgssl")
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"init_from: {str(path)!r} was not written by fgssl-train")
    check_checkpoint_version(checkpoint, path)
    if meta.get("phase") != "finetune":
        raise CheckpointError(
            f"init_from: {str(path)!r} is a {meta.get('phase')}-phase checkpoint: init_from "
            "takes a finetuned network; a pretrained one is pretrained_run=<its run dir>"
        )
    _check_same_network(checkpoint, path, OmegaConf.to_container(cfg.model.net, resolve=True))


def check_init_from(cfg: DictConfig, datamodule: ImageClassificationDataModule) -> None:
    """Refuse (:class:`fgssl.errors.DataLayoutError`) an ``init_from`` whose run trained on
    a validation or test image of this run (its images read with its own config); warn
    when the checkpoint has no run directory to tell."""
    source = cfg.get("init_from")
    if not source:
        return
    path = resolve_checkpoint(str(source), phase="finetune")
    run_dir = find_run_dir(path)
    if run_dir is None:
        log.warning(
            "init_from: no config.yaml above %s, so whether its run trained on this run's "
            "validation or test images cannot be checked",
            path,
        )
        return
    _check_no_leak(run_dir, datamodule, str(source))


def _check_same_network(checkpoint: Mapping[str, Any], path: Path, net_config: Any) -> None:
    saved = checkpoint.get("hyper_parameters", {}).get("net")
    if not isinstance(saved, Mapping) or not isinstance(net_config, Mapping):
        raise CheckpointError(f"init_from: {str(path)!r} holds no network config")
    keys = (set(saved) | set(net_config)) - _FREE_KEYS
    differ = sorted(k for k in keys if saved.get(k) != net_config.get(k))
    if differ:
        details = ", ".join(
            f"{k}: checkpoint {saved.get(k)!r} vs config {net_config.get(k)!r}" for k in differ
        )
        raise CheckpointError(
            f"init_from: {str(path)!r} is another network ({details}); configure model.net "
            "as its run did (num_classes may differ)"
        )


def _check_no_leak(run_dir: Path, datamodule: ImageClassificationDataModule, source: str) -> None:
    saved = OmegaConf.load(RunDir(run_dir).config)
    assert isinstance(saved, DictConfig)
    trained_on = build_datamodule(saved)
    datamodule.setup()
    assert trained_on.splits is not None and datamodule.splits is not None
    images = pretrain_images(trained_on.splits, own=bool(saved.data.get("unlabelled_own")))
    check_held_out_overlap(
        images,
        datamodule.splits,
        what=f"image(s) trained on in init_from={source!r}",
        remedy="start from a run that held them out, or evaluate on other images",
        drop_training_images=False,
    )


def init_from_weights(cfg: DictConfig, net: StagedNet, class_names: list[str]) -> dict[str, Any]:
    """``net``'s state dict with ``init_from``'s weights in place of its own: all but the
    class layers, and those too (rows reordered) when the classes match by name."""
    path, checkpoint = _source_checkpoint(cfg)
    source = {
        k[len(_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(_PREFIX)
    }
    state = dict(net.state_dict())
    class_keys = _class_keys(net)
    shapes = sorted(
        k
        for k in state
        if k not in class_keys and (k not in source or source[k].shape != state[k].shape)
    )
    if shapes:
        raise CheckpointError(
            f"init_from: {str(path)!r} does not hold this network's {shapes[:5]} (missing or "
            f"of another shape; {len(shapes)} in all)"
        )
    state.update({k: source[k] for k in state if k not in class_keys})
    order = _class_order(checkpoint, path, class_names)
    if order is not None:
        index = torch.tensor(order, dtype=torch.long)
        state.update({k: source[k].index_select(0, index) for k in class_keys})
    return state


def _class_keys(net: StagedNet) -> set[str]:
    layers = {id(layer) for layer in net.class_layers()}
    return {
        f"{name}.{param}" if name else param
        for name, module in net.named_modules()
        if id(module) in layers
        for param, _ in module.named_parameters(recurse=False)
    }


def _class_order(
    checkpoint: Mapping[str, Any], path: Path, class_names: list[str]
) -> list[int] | None:
    """The checkpoint's row of each of this data's classes, or None (with a warning) when
    its classes are other ones or unnamed: the class layers then start fresh."""
    recorded = (checkpoint.get("hyper_parameters") or {}).get("class_names")
    if recorded and sorted(map(str, recorded)) == sorted(class_names):
        match = match_classes(recorded, class_names, checkpoint=str(path), data="data")
        return match.order
    log.warning(
        "init_from: the classes of %s (%s) are not this data's (%s): its backbone and blocks "
        "are taken, the classifiers start fresh",
        path,
        list(recorded) if recorded else "not recorded",
        class_names,
    )
    return None
