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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fgssl.conf.resolvers import default_resize_size
from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fgssl.errors import ConfigError
from fgssl.evaluation.checkpoints import LoadedRun
from fgssl.evaluation.classes import match_classes

__all__ = [
    "COMBINE",
    "PREPROCESSING",
    "check_preprocessing",
    "column_orders",
    "common_setting",
    "ensemble_facts",
]

PREPROCESSING = ("image_size", "resize_size", "mean", "std", "bits_stored", "transforms.eval")
"""The ``data.`` keys of a run config that decide what the network sees of an image."""

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


def ensemble_facts(members: Sequence[LoadedRun]) -> dict[str, Any]:
    """What results.json and a predictions file record of an ensemble: its ``members`` (the
    checkpoints averaged, in order) and how they are combined."""
    return {"members": [str(m.checkpoint) for m in members], "combine": COMBINE}
