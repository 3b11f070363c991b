"""Class names and label encoding for users' own data (string or integer labels)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fgssl.errors import DataLayoutError

__all__ = ["class_names_of", "encode_labels"]


def _is_integer(value: str) -> bool:
    return value.lstrip("-").isdigit()


def class_names_of(labels: Iterable[str]) -> tuple[str, ...]:
    """The distinct labels, sorted: numerically when all are integers, else as text."""
    distinct = set(labels)
    if distinct and all(_is_integer(v) for v in distinct):
        return tuple(str(v) for v in sorted(int(v) for v in distinct))
    return tuple(sorted(distinct))


def encode_labels(
    labels: Sequence[str],
    class_names: Sequence[str],
    *,
    ids: Sequence[str],
    source: str,
) -> list[int]:
    """Class indices of ``labels``: a label is a class name or, failing that, an integer
    index into ``class_names``. Raises :class:`DataLayoutError` naming ``source``, the
    unknown labels and the expected classes."""
    position = {name: index for index, name in enumerate(class_names)}
    encoded: list[int] = []
    unknown: list[str] = []
    for identifier, label in zip(ids, labels, strict=True):
        if label in position:
            encoded.append(position[label])
        elif _is_integer(label) and 0 <= int(label) < len(class_names):
            encoded.append(int(label))
        else:
            encoded.append(-1)
            unknown.append(f"{identifier}={label!r}")
    if unknown:
        raise DataLayoutError(
            f"{len(unknown)} label(s) in {source} are not among the classes "
            f"{list(class_names)} (nor an index 0..{len(class_names) - 1} into them), e.g. "
            + ", ".join(unknown[:5])
        )
    return encoded
