"""Diabetic-retinopathy grading on the ICDR scale (International Clinical Diabetic
Retinopathy severity scale, Wilkinson et al., Ophthalmology 2003), shared by fgssl's DR
readers: APTOS 2019, EyePACS, Messidor-2, IDRiD and DDR."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ICDR_GRADES", "ICDRGrading"]

ICDR_GRADES = ("No DR", "Mild", "Moderate", "Severe", "Proliferative DR")
"""The five ICDR grades, 0 to 4: the class names of every DR reader."""


class ICDRGrading:
    """Mixin of the DR readers (listed first among their bases): the five ICDR grades as
    ordered classes, quadratic weighted kappa as the official metric (the metric of the
    Kaggle APTOS 2019 and EyePACS competitions; README, "Metrics") and the fundus
    transforms (``conf/data/transforms/fundus.yaml``)."""

    class_names: Sequence[str] = ICDR_GRADES
    ordinal: bool = True
    official_metric: str = "kappa"
    transforms_preset: str = "fundus"
