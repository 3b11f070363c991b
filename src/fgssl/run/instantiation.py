"""Building objects from configs, with fgssl's errors kept recognisable."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from fgssl.errors import FgsslError

__all__ = ["instantiate_unwrapped", "plain"]


def instantiate_unwrapped(node: DictConfig) -> Any:
    """``instantiate(node)``, re-raising an fgssl error from the target as itself rather
    than wrapped in Hydra's InstantiationException (so it prints as one clear line)."""
    try:
        return instantiate(node)
    except InstantiationException as error:
        if isinstance(error.__cause__, FgsslError):
            raise error.__cause__ from None
        raise


def plain(value: Any) -> Any:
    """A plain-Python copy of a config value (lists and dicts resolved), else the value."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
