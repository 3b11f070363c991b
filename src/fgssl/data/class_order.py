"""The classes of users' own data and their order, read from the labels (folder names or a
CSV's label column) when ``data.class_names`` does not state them.

The order matters: with ``data.ordinal=true`` the label index is the grade that quadratic
weighted kappa weighs. The rule (docs/datasets/your-own.md, "Class names and order"):

1. labels that are all numbers: numeric order (``1, 2, ..., 10``, not ``1, 10, 2``), named
   by their canonical form (``1.0`` -> ``1``);
2. with ``ordinal``: labels that all spell ICDR grades (:func:`fgssl.data.icdr.icdr_grade`;
   ``No_DR``, ``Mild``, ``Moderate``, ``Severe``, ``Proliferate_DR``, ...): grade order,
   named as the data spells them; any other named grades are refused, naming them, with the
   advice to set ``data.class_names``;
3. otherwise (nominal classes): sorted names.

Spellings of one label (:func:`fgssl.data.labels.label_key`) are one class, named by its
most frequent spelling, and a warning names the spellings merged.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from fgssl.data.icdr import icdr_grade
from fgssl.data.labels import label_key, number_of
from fgssl.errors import DataLayoutError

__all__ = ["KnownOrder", "derive_class_names", "known_order", "warn_given_order"]

log = logging.getLogger(__name__)


def derive_class_names(labels: Iterable[str], *, ordinal: bool, where: str) -> tuple[str, ...]:
    """The classes of ``labels`` (one entry per image), in class order (module docstring).

    ``where`` names the labels' source in messages (e.g. ``"the sub-folders of '/data'"``).
    Raises :class:`DataLayoutError` when ``ordinal`` and the order of named labels is not
    known, or two of them spell one ICDR grade.
    """
    names = _names_by_key(labels, where)
    order = known_order(list(names.values()), strict=ordinal)
    if order is not None:
        rule = "numeric" if order.numeric else "ICDR grade"
        if ordinal or order.numeric:
            log.info("classes of %s in %s order: %s", where, rule, list(order.names))
            return order.names
        log.info(
            "the classes of %s look like ICDR grades: set data.ordinal=true to score them as "
            "grades (quadratic weighted kappa, in grade order)",
            where,
        )
    if ordinal:
        shown = [_shown(n) for n in sorted(names.values())]
        raise DataLayoutError(
            f"data.ordinal=true, but the grade order of the classes {sorted(names.values())} "
            f"found in {where} is not known (only numbers and the ICDR grades are ordered "
            f"without help): set data.class_names to them in grade order, e.g. "
            f"data.class_names=[{','.join(shown)}]"
        )
    sorted_names = tuple(sorted(names.values()))
    log.info("classes of %s (sorted names): %s", where, list(sorted_names))
    return sorted_names


class KnownOrder(NamedTuple):
    """Class names in an order fgssl knows: numeric, or ICDR grades (``numeric`` False)."""

    names: tuple[str, ...]
    numeric: bool


def known_order(names: Sequence[str], *, strict: bool = False) -> KnownOrder | None:
    """``names`` in numeric order when all are numbers, in ICDR grade order when all spell
    ICDR grades (each a different one), else None. With ``strict``, two names that spell
    one grade raise :class:`DataLayoutError` instead."""
    numbers = {name: number_of(label_key(name)) for name in names}
    numeric = {name: number for name, number in numbers.items() if number is not None}
    if len(numeric) == len(numbers):
        return KnownOrder(tuple(sorted(names, key=numeric.__getitem__)), numeric=True)
    found = {name: icdr_grade(name) for name in names}
    grades = {name: grade for name, grade in found.items() if grade is not None}
    if len(grades) < len(found):
        return None
    by_grade: dict[int, list[str]] = {}
    for name, grade in grades.items():
        by_grade.setdefault(grade, []).append(name)
    twice = [spellings for spellings in by_grade.values() if len(spellings) > 1]
    if twice and not strict:
        return None
    if twice:
        raise DataLayoutError(
            f"the classes {twice[0]} are one ICDR grade ({grades[twice[0][0]]}): merge them, "
            "or set data.class_names"
        )
    return KnownOrder(tuple(sorted(names, key=grades.__getitem__)), numeric=False)


def warn_given_order(class_names: Sequence[str], *, ordinal: bool) -> None:
    """Warn when ordinal ``data.class_names`` are numbers or ICDR grades out of their known
    order: the order given is used (it is the user's statement), but it may be a copy of
    an alphabetical listing."""
    if not ordinal:
        return
    order = known_order(class_names)
    if order is not None and list(order.names) != list(class_names):
        log.warning(
            "data.class_names %s are graded in the order given, which is not their %s order "
            "%s: check that this is the order of the grades",
            list(class_names),
            "numeric" if order.numeric else "ICDR grade",
            list(order.names),
        )


def _names_by_key(labels: Iterable[str], where: str) -> dict[str, str]:
    """Label key -> the class name: a number's canonical form, else the most frequent
    spelling (ties: the first in sorted order). Warns naming spellings merged."""
    counts = Counter(unicodedata.normalize("NFC", str(label)).strip() for label in labels)
    spellings: dict[str, Counter[str]] = {}
    for spelling, count in counts.items():
        spellings.setdefault(label_key(spelling), Counter())[spelling] += count
    names = {}
    for key, found in spellings.items():
        if number_of(key) is not None:
            names[key] = key
        else:
            names[key] = min(found.items(), key=lambda item: (-item[1], item[0]))[0]
        if len(found) > 1:
            log.warning(
                "%s in %s are one class, %r (case, spaces, '_', '-' and number spellings "
                "such as 1 and 1.0 are not told apart)",
                sorted(found),
                where,
                names[key],
            )
    return names


def _shown(name: str) -> str:
    """A name as a Hydra list item (quoted when it holds characters Hydra parses)."""
    return repr(name) if any(c in name for c in " ,[]{}()'\"=:") else name
