"""albumentations pipelines: the defaults, the checks of their configs, and the
normalisation every pipeline ends with."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata, resources
from typing import Any

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from fgssl.errors import ConfigError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PIPELINES",
    "TensorTransform",
    "build_pipelines",
    "check_pipelines_config",
    "default_pipelines",
    "finalize",
    "load_pipelines",
    "transform_presets",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIPELINES = ("train", "eval", "view1", "view2")
"""train: supervised finetuning; eval: validation/test/prediction; view1, view2: the two
self-supervised views of the pretrain phase."""

TensorTransform = Callable[[np.ndarray], torch.Tensor]


def load_pipelines(preset: str, image_size: int, resize_size: int) -> dict[str, Any]:
    """The pipelines of a shipped transforms config (``conf/data/transforms/<preset>.yaml``:
    ``default``, ``fundus``, ``fundus_small``, ``skin``), built for these sizes.

    The YAML files are the single definition of each preset: ``fgssl-train`` selects them
    with ``data/transforms=<preset>``, and the data modules use them as their defaults.
    """
    source = resources.files("fgssl.conf").joinpath("data", "transforms", f"{preset}.yaml")
    if not source.is_file():
        raise ConfigError(
            f"unknown transforms preset {preset!r}: expected one of {transform_presets()}"
        )
    node = OmegaConf.create({"data": {"image_size": image_size, "resize_size": resize_size}})
    node.pipelines = OmegaConf.create(source.read_text())
    return build_pipelines(node.pipelines, "data.transforms")


def build_pipelines(node: DictConfig, where: str = "data.transforms") -> dict[str, Any]:
    """Instantiate the pipelines of a transforms config (pipeline name -> albumentations
    config; ``where`` names it in errors).

    Raises :class:`ConfigError` naming the place (e.g. ``data.transforms.view1.transforms[4]
    (albumentations.GaussianBlur)``) for a pipeline name not in :data:`PIPELINES`, a
    transform the installed albumentations lacks, an argument its transform does not accept
    (albumentations would drop it with a warning and use its default) or a value it rejects.
    """
    _check_structure(node, where)
    pipelines = {}
    for key in node:
        name = str(key)
        try:
            pipelines[name] = instantiate(node[name], _convert_="all")
        except InstantiationException as error:
            cause = error.__cause__ or error
            reason = "; ".join(
                line.strip()
                for line in str(cause).splitlines()
                if line.strip() and not line.strip().startswith("For further information")
            )
            target = re.search(r"call to target '([^']+)'", str(error))
            place = f"{where}.{name}" + (f" ({target.group(1)})" if target else "")
            raise ConfigError(f"{place}: {reason}") from None
    return pipelines


def check_pipelines_config(node: DictConfig | None, where: str = "data.transforms") -> None:
    """Refuse a transforms config that :func:`build_pipelines` refuses (it is built once,
    so that albumentations validates the values too), before anything else is built."""
    if node is not None:
        build_pipelines(node, where)


def _check_structure(node: Any, where: str) -> None:
    """Pipeline names, targets and argument names of a transforms config."""
    plain = OmegaConf.to_container(node, resolve=False) if _is_config(node) else node
    if not isinstance(plain, Mapping):
        raise ConfigError(f"{where} must map pipeline names {list(PIPELINES)} to pipelines")
    unknown = sorted(set(map(str, plain)) - set(PIPELINES))
    if unknown:
        raise ConfigError(
            f"{where}: unknown pipeline(s) {unknown}: expected some of {list(PIPELINES)}"
        )
    for name, pipeline in plain.items():
        for place, target, arguments in _targets(pipeline, f"{where}.{name!s}"):
            _check_arguments(place, target, arguments)


def _is_config(node: Any) -> bool:
    return isinstance(node, DictConfig | ListConfig)


def _targets(node: Any, where: str) -> Iterator[tuple[str, str, list[str]]]:
    """(place, _target_, argument names) of every object config under ``node``."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            arguments = [
                str(k) for k in node if not (str(k).startswith("_") and str(k).endswith("_"))
            ]
            yield where, str(node["_target_"]), arguments
        for key, value in node.items():
            if not str(key).startswith("_"):
                yield from _targets(value, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            yield from _targets(item, f"{where}[{index}]")


def _check_arguments(place: str, target: str, arguments: list[str]) -> None:
    try:
        factory = get_object(target)
    except Exception:
        raise ConfigError(
            f"{place}: _target_ {target!r} does not exist in {_installed(target)}"
        ) from None
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return  # no signature to compare with
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = list(parameters)
    schema = getattr(factory, "InitSchema", None)
    if "strict" in getattr(schema, "model_fields", {}):
        accepted.append("strict")  # albumentations 2 takes it besides the signature
    rejected = [a for a in arguments if a not in accepted]
    if rejected:
        raise ConfigError(
            f"{place} ({target}): {_installed(target)} does not accept the argument(s) "
            f"{', '.join(map(repr, rejected))} (it takes {', '.join(accepted) or 'none'})"
        )


def _installed(target: str) -> str:
    """The distribution of ``target`` with its installed version, e.g. 'albumentations 2.0.8'."""
    library = target.split(".")[0]
    try:
        return f"{library} {metadata.version(library)}"
    except metadata.PackageNotFoundError:
        return library


def transform_presets() -> list[str]:
    """The names of the shipped transforms configs."""
    folder = resources.files("fgssl.conf").joinpath("data", "transforms")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def default_pipelines(image_size: int, resize_size: int) -> dict[str, Any]:
    """The generic pipelines (the ``default`` preset), before normalisation.

    Train: short side to ``resize_size``, random ``image_size`` crop, flips. Eval: short
    side to ``resize_size``, centre crop. The self-supervised views (as the reference
    FG-SSL code): the image at ``image_size``; view 1 adds a horizontal flip, grayscale
    (p=0.2) and a Gaussian blur (always), view 2 grayscale (0.2), blur (0.1), solarize (0.2).
    """
    return load_pipelines("default", image_size, resize_size)


class _Finalized:
    """Run an albumentations pipeline, then normalise and convert to a CHW float tensor."""

    def __init__(self, pipeline: Callable[..., Any], mean: Sequence[float], std: Sequence[float]):
        self.pipeline = A.Compose([pipeline, A.Normalize(mean=mean, std=std), ToTensorV2()])

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return self.pipeline(image=image)["image"]

    def reseed(self, seed: int) -> None:
        """Make the next call's random choices a function of ``seed``."""
        self.pipeline.set_random_seed(seed)


def finalize(
    pipelines: Mapping[str, Callable[..., Any]],
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> dict[str, TensorTransform]:
    """Append normalisation and tensor conversion to every pipeline.

    Raises :class:`ConfigError` for a pipeline name not in :data:`PIPELINES`, and for an
    albumentations transform that was given arguments it does not accept (it recorded and
    ignored them: the pipelines were built in Python rather than from a checked config).
    """
    unknown = set(pipelines) - set(PIPELINES)
    if unknown:
        raise ConfigError(
            f"unknown transform pipeline(s) {sorted(unknown)}: expected {list(PIPELINES)}"
        )
    for name, pipeline in pipelines.items():
        for transform in _walk_transforms(pipeline):
            ignored = list(getattr(transform, "invalid_args", None) or [])
            if ignored:
                target = f"albumentations.{type(transform).__name__}"
                raise ConfigError(
                    f"transforms[{name!r}] ({target}): {_installed(target)} does not accept "
                    f"the argument(s) {', '.join(map(repr, ignored))}"
                )
    return {name: _Finalized(p, mean, std) for name, p in pipelines.items()}


def _walk_transforms(transform: Any) -> Iterator[Any]:
    """``transform`` and every transform nested in it (Compose, OneOf, ...)."""
    yield transform
    children = getattr(transform, "transforms", None)
    if isinstance(children, list | tuple):
        for child in children:
            yield from _walk_transforms(child)
