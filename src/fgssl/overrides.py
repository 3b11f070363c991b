"""Hydra override strings (``+method=pmg``, ``schedule='8_4_2'``) as a multirun's jobs record
them in ``.hydra/overrides.yaml``: their keys and values, one parsing for every reader."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["override_key", "override_value", "unquoted"]


def override_key(override: str) -> str:
    """The key of a Hydra override: ``+method=pmg`` -> ``method``."""
    return override.split("=", 1)[0].lstrip("+~")


def override_value(overrides: Sequence[str], key: str) -> str | None:
    """The value (as written) of the first override of ``key`` (without ``+``/``~``) in
    ``overrides``; ``None`` when none sets it."""
    return next(
        (o.split("=", 1)[1] for o in overrides if "=" in o and override_key(o) == key), None
    )


def unquoted(override: str) -> str:
    """``schedule='8_4_2'`` (as fgssl-train quotes it for Hydra) -> ``schedule=8_4_2``."""
    key, sep, value = override.partition("=")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return key + sep + value
