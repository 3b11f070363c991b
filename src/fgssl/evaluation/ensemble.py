"""Ensembles of trained checkpoints at prediction and evaluation: which members may be
averaged, and in what settings.

An ensemble averages its members' class probabilities image by image
(:func:`fgssl.evaluation.inference.predict_probabilities` with several networks), every
image read and preprocessed once. So the members must

- name the same classes (matched by name, :func:`fgssl.evaluation.classes.match_classes`: a
  member listing them in another order has its columns reordered; other names are refused),
- preprocess images alike: the ``data.`` keys of :data:`PREPROCESSING` of their run configs
  must be equal (refused in one line naming the key and both members otherwise),
- run in one precision and with one test-time augmentation: the command's option, else the
  one all members' runs used (:func:`common_setting`).

The ordinal thresholds a member holds were fitted on that member's own validation split, to
that member's probabilities: they are not the ensemble's, so an ensemble of several members
cuts no thresholded grade (:func:`ensemble_thresholds`); a single member keeps its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fgssl.conf.resolvers import default_resize_size
from fgssl.data.preprocess import preprocessing_of
from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fgssl.errors import ConfigError
from fgssl.evaluation.checkpoints import LoadedRun
from fgssl.evaluation.classes import match_classes
from fgssl.thresholds import FittedThresholds

__all__ = [
    "COMBINE",
    "PREPROCESSING",
    "check_preprocessing",
    "column_orders",
    "common_setting",
    "ensemble_facts",
    "ensemble_thresholds",
]

log = logging.getLogger(__name__)

PREPROCESSING = (
    "image_size",
    "resize_size",
    "mean",
    "std",
    "bits_stored",
    "preprocess",
    "preprocess_radius",
    "transforms.eval",
)
"""The ``data.`` keys of a run config that decide what the network sees of an image."""

THRESHOLDS_NOT_APPLIED = (
    "not applied: each member's ordinal thresholds were fitted on its own validation split "
    "to its own probabilities, not to the ensemble's average"
)

COMBINE = "mean of the members' class probabilities (each member's mean over the TTA views)"


def _name(member: LoadedRun) -> str:
    return str(member.run_dir or member.checkpoint)


def _preprocessing(config: DictConfig | None) -> dict[str, Any] | None:
    """The :data:`PREPROCESSING` values of a run config (None without a config)."""
    if config is None or config.get("data") is None:
        return None
    values: dict[str, Any] = {}
    for key in PREPROCESSING:
        node = OmegaConf.select(config.data, key, default=None)
        plain = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
        values[key] = list(plain) if isinstance(plain, tuple) else plain
    # unset keys are the data modules' defaults
    values["mean"] = list(values["mean"] or IMAGENET_MEAN)
    values["std"] = list(values["std"] or IMAGENET_STD)
    if values["resize_size"] is None and values["image_size"] is not None:
        values["resize_size"] = default_resize_size(int(values["image_size"]))
    preprocess = preprocessing_of(config.data)  # an unset radius is its default's
    values["preprocess_radius"] = preprocess.radius if preprocess is not None else None
    return values


def check_preprocessing(members: Sequence[LoadedRun]) -> None:
    """Refuse (:class:`ConfigError`, one line) members whose runs preprocess images
    otherwise than the first member's (:data:`PREPROCESSING`), or of which some have a run
    config and others none (their preprocessing cannot be compared)."""
    first = members[0]
    reference = _preprocessing(first.config)
    for member in members[1:]:
        values = _preprocessing(member.config)
        if (values is None) != (reference is None):
            raise ConfigError(
                f"the ensemble's members {_name(first)!r} and {_name(member)!r}: one has a "
                "run config and the other none, so their preprocessing cannot be compared; "
                "pass run directories (or .ckpt files inside them) for every member"
            )
        if values is None or reference is None:
            continue
        for key in PREPROCESSING:
            if values[key] != reference[key]:
                raise ConfigError(
                    f"the ensemble's members preprocess images differently: data.{key} is "
                    f"{reference[key]!r} in {_name(first)!r} but {values[key]!r} in "
                    f"{_name(member)!r}; an ensemble averages the probabilities of the same "
                    "preprocessed images, so its members must share "
                    f"{', '.join('data.' + k for k in PREPROCESSING)}"
                )


def column_orders(
    members: Sequence[LoadedRun], class_names: Sequence[str], *, data: str
) -> list[list[int]]:
    """For each member, its output column of each of ``class_names`` (matched by name;
    ``data`` names what the names are of, for messages). Raises :class:`ConfigError` for a
    member that records no class names or others (a pretrain checkpoint is refused
    first)."""
    orders = []
    for member in members:
        member.require_classifier()
        match = match_classes(
            member.recorded_class_names, class_names, checkpoint=str(member.checkpoint), data=data
        )
        orders.append(match.order)
    return orders


def common_setting(values: Sequence[Any], *, what: str, option: str) -> Any:
    """The one value of ``values`` (each member's run setting); :class:`ConfigError` when
    the members' runs differ, asking for ``option`` to choose one for all."""
    distinct = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    if len(distinct) > 1:
        raise ConfigError(
            f"the ensemble's members ran their tests with different {what} ({distinct}): "
            f"choose one for every member with {option}"
        )
    return distinct[0]


def _hold_thresholds(members: Sequence[LoadedRun]) -> bool:
    return any(member.module.ordinal_thresholds is not None for member in members)


def ensemble_thresholds(members: Sequence[LoadedRun]) -> FittedThresholds | None:
    """The ordinal thresholds that cut the members' (averaged) probabilities: a single
    member's own (None: it holds none); none for several members, said in one warning when
    any member holds thresholds (:data:`THRESHOLDS_NOT_APPLIED`)."""
    if len(members) == 1:
        return members[0].module.ordinal_thresholds
    if _hold_thresholds(members):
        log.warning("the ensemble's ordinal thresholds: %s", THRESHOLDS_NOT_APPLIED)
    return None


def ensemble_facts(members: Sequence[LoadedRun]) -> dict[str, Any]:
    """What results.json and a predictions file record of an ensemble: its ``members`` (the
    checkpoints averaged, in order), how they are combined and, when any member holds
    ordinal thresholds, that none are applied (``ordinal_thresholds``)."""
    facts: dict[str, Any] = {"members": [str(m.checkpoint) for m in members], "combine": COMBINE}
    if _hold_thresholds(members):
        facts["ordinal_thresholds"] = THRESHOLDS_NOT_APPLIED
    return facts
