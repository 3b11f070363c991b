"""Hydra override strings (``+method=pmg``, ``schedule='8_4_2'``) as a multirun's jobs record
them in ``.hydra/overrides.yaml``: their keys and values, one parsing for every reader."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "following_keys",
    "one_spelling",
    "override_key",
    "override_value",
    "unquoted",
]


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


def one_spelling(runs: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each run's overrides, with ``+key=value`` and ``key=value`` (one choice: fgssl-train
    rewrites ``+experiment=...``) written the same way, as first met in ``runs``."""
    first: dict[str, str] = {}
    return [[first.setdefault(o.removeprefix("+"), o) for o in overrides] for overrides in runs]


def following_keys(runs: Sequence[Sequence[str]], by: Sequence[object]) -> set[str]:
    """The keys of ``runs``' overrides that follow ``by`` (one value per run, e.g. its
    seed or the value of a swept key; None where unknown): the runs that set such a key set
    one value of it per value of ``by``, and not one value for all (e.g. a pretrained_run
    per seed, finetune_epochs chosen per label fraction). Such a key is part of the seed or
    of the point, not a configuration of its own."""
    keys = {override_key(o) for overrides in runs for o in overrides}
    following = set()
    for key in keys:
        per_value: dict[str, set[str]] = {}  # value of ``by`` -> the key's values there
        for overrides, b in zip(runs, by, strict=True):
            value = override_value(overrides, key)
            if b is not None and value is not None:
                per_value.setdefault(str(b), set()).add(value)
        values = set().union(*per_value.values())
        if len(values) > 1 and all(len(v) == 1 for v in per_value.values()):
            following.add(key)
    return following
