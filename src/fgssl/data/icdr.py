"""Diabetic-retinopathy grading on the ICDR scale (International Clinical Diabetic
Retinopathy severity scale, Wilkinson et al., Ophthalmology 2003), shared by fgssl's DR
readers: APTOS 2019, EyePACS, Messidor-2, IDRiD and DDR; and the common spellings of its
grades, by which users' own DR folders and labels are put in grade order."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fgssl.data.labels import label_key

__all__ = ["ICDR_GRADES", "ICDRGrading", "icdr_grade"]

ICDR_GRADES = ("No DR", "Mild", "Moderate", "Severe", "Proliferative DR")
"""The five ICDR grades, 0 to 4: the class names of every DR reader."""

_DR_FORMS = ("", " DR", " diabetic retinopathy", " retinopathy")
_NPDR_FORMS = (
    *_DR_FORMS,
    " NPDR",
    *(f" {non}proliferative{dr}" for non in ("non ", "non") for dr in _DR_FORMS[1:]),
)
_SPELLINGS: tuple[tuple[str, ...], ...] = (
    (
        "No DR",
        "NoDR",
        "Normal",
        "No retinopathy",
        "No apparent retinopathy",
        "No diabetic retinopathy",
    ),
    tuple("Mild" + form for form in _NPDR_FORMS),
    tuple("Moderate" + form for form in _NPDR_FORMS),
    tuple("Severe" + form for form in _NPDR_FORMS),
    (
        *(f"{word}{form}" for word in ("Proliferative", "Proliferate") for form in _DR_FORMS),
        "PDR",
        "ProliferativeDR",
        "ProliferateDR",
    ),
)
GRADE_OF_KEY: dict[str, int] = {
    label_key(spelling): grade
    for grade, spellings in enumerate(_SPELLINGS)
    for spelling in (*spellings, str(grade))
}
"""The :func:`~fgssl.data.labels.label_key` of each known spelling of an ICDR grade (e.g.
``No_DR``, ``Proliferate_DR``, ``PDR``, ``Mild NPDR``, the grade's number) -> the grade."""

_NUMBERED = re.compile(r"(?P<grade>[0-4])[.):]? ?(?P<name>.+)")
"""A grade number before its name: ``0_No_DR``, ``1 - Mild``, ``2. Moderate``."""


def icdr_grade(label: str) -> int | None:
    """The ICDR grade (0-4) a label spells, or None (see :data:`GRADE_OF_KEY`; a name
    may start with its own grade number, as ``0_No_DR``)."""
    key = label_key(label)
    if key in GRADE_OF_KEY:
        return GRADE_OF_KEY[key]
    numbered = _NUMBERED.fullmatch(key)
    if numbered is not None:
        grade = GRADE_OF_KEY.get(label_key(numbered["name"]))
        if grade is not None and grade == int(numbered["grade"]) and not numbered["name"].isdigit():
            return grade
    return None


class ICDRGrading:
    """Mixin of the DR readers (listed first among their bases): the five ICDR grades as
    ordered classes, quadratic weighted kappa as the official metric (the metric of the
    Kaggle APTOS 2019 and EyePACS competitions; docs/metrics.md) and the fundus
    transforms (``conf/data/transforms/fundus.yaml``)."""

    class_names: Sequence[str] = ICDR_GRADES
    ordinal: bool = True
    official_metric: str = "kappa"
    transforms_preset: str = "fundus"
