"""What counts as the same label, and matching labels to class names, for the readers of
users' own data (``data=folder``, ``data=csv``); the class order is
:mod:`fgssl.data.class_order`.

Two spellings are one label when their :func:`label_key` is equal: Unicode NFC, surrounding
spaces stripped, case folded, runs of spaces, ``_`` and ``-`` one space, and a decimal
number written canonically. So ``1``, ``1.0``, ``01`` and ``+1`` are the label ``1`` (pandas
writes an integer column with a missing value as floats), ``Melanoma`` and ``melanoma`` are
one label, and so are ``No_DR``, ``No DR`` and ``no-dr``. Missing-value markers (an empty
cell, ``NA``, ``N/A``, ``NaN``, ``None``, ``null`` and pandas' other defaults) are not labels.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from decimal import Decimal

from fgssl.errors import ConfigError, DataLayoutError

__all__ = [
    "MISSING_MARKERS",
    "encode_labels",
    "given_class_names",
    "is_missing",
    "label_key",
    "number_of",
    "takes_indices",
]

log = logging.getLogger(__name__)

SHOWN = 5
"""How many examples an error message names."""

MISSING_MARKERS = frozenset(
    # pandas' default missing-value strings (read_csv's na_values), case-folded
    {"", "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan"}
    | {"<na>", "n/a", "na", "nan", "null", "none"}
)
"""Cell values that mean "no label" (compared stripped and case-folded)."""

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_SEPARATORS = re.compile(r"[\s_-]+")


def is_missing(raw: str, class_names: Sequence[str] | None = None) -> bool:
    """Whether a cell holds no label: empty, or a missing-value marker (``NA``, ``NaN``,
    ``None``, ...) that is not one of the user-given ``class_names`` (a class may be
    called ``none``)."""
    text = unicodedata.normalize("NFC", raw).strip()
    if text.casefold() not in MISSING_MARKERS:
        return False
    return text == "" or label_key(text) not in {label_key(n) for n in class_names or ()}


def number_of(key: str) -> Decimal | None:
    """The number a label key spells (plain decimal notation only; no exponent, NaN or
    infinity), or None."""
    return Decimal(key) if _NUMBER.fullmatch(key) else None


def label_key(raw: object) -> str:
    """The key two spellings of one label share (see the module docstring): a number's
    canonical form (``'01'``, ``'1.0'`` -> ``'1'``; ``'0.50'`` -> ``'0.5'``), else the text
    NFC-normalised, stripped, case-folded, with runs of spaces, ``_`` and ``-`` as one space."""
    text = unicodedata.normalize("NFC", str(raw)).strip()
    number = number_of(text)
    if number is not None:
        if number == number.to_integral_value():
            return str(int(number))
        return format(number.normalize(), "f")
    return _SEPARATORS.sub(" ", text.casefold()).strip()


def given_class_names(names: Sequence[object] | None) -> tuple[str, ...] | None:
    """``data.class_names`` as strings (Hydra reads ``[0, 1]`` as integers), or None when
    not given. Raises :class:`ConfigError` for an entry that is not a string or number, an
    empty name, or two names that are one label by :func:`label_key`."""
    if names is None or (isinstance(names, Sequence) and len(names) == 0):
        return None
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ConfigError(f"data.class_names must be a list of names, got {names!r}")
    bad = [n for n in names if isinstance(n, bool) or not isinstance(n, str | int | float)]
    bad += [n for n in names if isinstance(n, str) and n.strip() == ""]
    if bad:
        raise ConfigError(
            f"data.class_names must be non-empty names (strings or numbers), got {bad[:SHOWN]} "
            f"in {list(names)}"
        )
    text = tuple(unicodedata.normalize("NFC", str(n)).strip() for n in names)
    by_key: dict[str, list[str]] = {}
    for name in text:
        by_key.setdefault(label_key(name), []).append(name)
    same = [spellings for spellings in by_key.values() if len(spellings) > 1]
    if same:
        raise ConfigError(
            f"data.class_names lists one class more than once: {same[0]} are the same label "
            "(case, spaces, '_' and '-', and number spellings such as 1 and 1.0 are not "
            f"told apart), in {list(text)}"
        )
    return text


def takes_indices(class_names: Sequence[str]) -> bool:
    """Whether integer labels may be read as positions in ``class_names`` (user-given names
    only): not when a class name is itself a number (``'1'`` would be ambiguous)."""
    return not any(number_of(label_key(n)) is not None for n in class_names)


def encode_labels(
    labels: Iterable[str],
    class_names: Sequence[str],
    *,
    source: str,
    ids: Sequence[str] | None = None,
    indices: bool = False,
    what: str = "label(s)",
    hint: str = "",
) -> list[int]:
    """The class index of every label: the class whose name is the same label
    (:func:`label_key`), else, with ``indices``, an integer label ``i`` in
    ``0..len(class_names)-1`` is class ``i``.

    Raises :class:`DataLayoutError` naming ``source``, the distinct unmatched labels (as
    ``what``), how many rows they are on, the first few ``ids`` and the classes, then ``hint``.
    """
    position = {label_key(name): index for index, name in enumerate(class_names)}
    labels = list(labels)
    keys = [label_key(label) for label in labels]
    encoded = [_class_of(key, position, indices) for key in keys]
    unknown: dict[str, list[str]] = {}
    for row, (label, code) in enumerate(zip(labels, encoded, strict=True)):
        if code < 0:
            unknown.setdefault(label, []).append(ids[row] if ids is not None else label)
    if unknown:
        rows = [i for found in unknown.values() for i in found]
        index_note = f" (nor an index 0..{len(class_names) - 1} into them)" if indices else ""
        raise DataLayoutError(
            f"{what} {list(unknown)[:SHOWN]} in {source} ({len(rows)} image(s), e.g. "
            f"{', '.join(rows[:SHOWN])}) are not among the classes {list(class_names)}"
            f"{index_note}{hint}"
        )
    read_as_index = {
        key: class_names[code]
        for key, code in zip(keys, encoded, strict=True)
        if key not in position
    }
    if read_as_index:
        log.info(
            "integer labels in %s read as positions in data.class_names: %s",
            source,
            ", ".join(f"{k} -> {v!r}" for k, v in sorted(read_as_index.items())),
        )
    return encoded


def _class_of(key: str, position: dict[str, int], indices: bool) -> int:
    """The class of a label key: by name, else (``indices``) by position; -1 for none."""
    if key in position:
        return position[key]
    number = number_of(key)
    if indices and number is not None and number == int(number) and 0 <= number < len(position):
        return int(number)
    return -1
