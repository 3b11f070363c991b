"""Test-time augmentation: exact views of an image batch (flips, transpositions, 90-degree
rotations: the symmetries of the square, as ISIC and APTOS solutions average over) and the
mean of a network's class probabilities over them.

A view spec (the ``tta`` config key, ``--tta-views``) is None / ``"none"`` (no TTA), an alias
of :data:`ALIASES` (``flips``: 4 views; ``d4``: all 8) or a list (or comma-separated string)
of names of :data:`VIEWS`. The views act on the batch the evaluation transforms made
(B x 3 x S x S), on its device: no image is read again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from fgssl.errors import ConfigError

__all__ = ["ALIASES", "NO_TTA", "VIEWS", "averaged_probabilities", "describe_views", "tta_views"]

_H, _W = -2, -1
VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "hflip": lambda x: x.flip(_W),
    "vflip": lambda x: x.flip(_H),
    "rot180": lambda x: x.flip(_H, _W),
    "transpose": lambda x: x.transpose(_H, _W),
    "rot90": lambda x: torch.rot90(x, 1, (_H, _W)),
    "rot270": lambda x: torch.rot90(x, 3, (_H, _W)),
    "antitranspose": lambda x: x.transpose(_H, _W).flip(_H, _W),
}
"""The views by name, on (..., H, W) tensors: the eight symmetries of the square (the
dihedral group D4). ``rot90`` turns counter-clockwise; ``rot180`` is both flips."""

ALIASES: dict[str, tuple[str, ...]] = {
    "flips": ("identity", "hflip", "vflip", "rot180"),
    "d4": tuple(VIEWS),
}
"""``flips``: the image and its horizontal, vertical and double flips (fgssl-eval's and
fgssl-predict's ``--tta``); ``d4``: all eight views of :data:`VIEWS`."""

NO_TTA: tuple[str, ...] = ()
"""The spec of no test-time augmentation: the image as it is, once."""


def tta_views(spec: Any, *, key: str = "tta") -> tuple[str, ...]:
    """The view names of ``spec`` (see the module docstring; ``True``: ``flips``, ``False``
    and an empty list: none), in order; :data:`NO_TTA` for none or for the identity alone.

    Raises :class:`ConfigError` naming ``key`` for an unknown name or alias, a name listed
    twice or a value of another type."""
    if spec is None or spec is False or (isinstance(spec, str) and spec.strip() in ("", "none")):
        return NO_TTA
    if spec is True:
        return ALIASES["flips"]
    if isinstance(spec, str):
        spec = spec.strip()
        if spec in ALIASES:
            return ALIASES[spec]
        spec = [part.strip() for part in spec.split(",")]
    if isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) == 0:
        return NO_TTA
    if not isinstance(spec, Sequence) or isinstance(spec, str):
        raise ConfigError(
            f"{key}={spec!r}: expected null, one of {sorted(ALIASES)} or a list of views "
            f"from {list(VIEWS)}"
        )
    names = [str(name) for name in spec]
    unknown = [name for name in names if name not in VIEWS]
    if unknown:
        raise ConfigError(
            f"{key}: unknown view(s) {unknown}: expected views from {list(VIEWS)} "
            f"(or {' / '.join(sorted(ALIASES))} for all of a set)"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"{key}: view(s) {twice} listed twice in {names}")
    return NO_TTA if names == ["identity"] else tuple(names)


def describe_views(views: Sequence[str]) -> str:
    """``views`` in words for logs and reports: ``"none"`` or the names, with the alias."""
    if not views:
        return "none"
    alias = next((a for a, names in ALIASES.items() if tuple(views) == names), None)
    return f"{alias} ({', '.join(views)})" if alias else ", ".join(views)


def averaged_probabilities(
    forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    images: torch.Tensor,
    views: Sequence[str],
    *,
    first: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Per head, the mean over ``views`` (:data:`NO_TTA`: the images as they are) of the
    float32 softmax of ``forward``'s logits (head -> (B, C)) on each view of ``images``
    (B x 3 x H x W). ``first``: ``forward(images)`` already computed, reused for the
    identity view instead of a second pass."""
    names = views or ("identity",)
    sums: dict[str, torch.Tensor] = {}
    for name in names:
        logits = first if name == "identity" and first is not None else forward(VIEWS[name](images))
        for head, values in logits.items():
            probabilities = values.float().softmax(dim=1)
            sums[head] = sums[head] + probabilities if head in sums else probabilities
    return {head: total / len(names) for head, total in sums.items()}
