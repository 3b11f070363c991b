"""The ICDR grading of the DR readers is defined once (fgssl.data.icdr) and used by each."""

from __future__ import annotations

from pathlib import Path

import pytest

import fgssl
from fgssl.data import (
    APTOS2019DataModule,
    DDRDataModule,
    DemoAPTOSDataModule,
    EyePACSDataModule,
    IDRiDDataModule,
    ISIC2018DataModule,
    ISIC2019DataModule,
    ISIC2020DataModule,
    Messidor2DataModule,
)
from fgssl.data.icdr import ICDR_GRADES, ICDRGrading
from fgssl.evaluation.screening import is_icdr_graded

DR_READERS = [
    APTOS2019DataModule,
    DemoAPTOSDataModule,
    DDRDataModule,
    EyePACSDataModule,
    IDRiDDataModule,
    Messidor2DataModule,
]


@pytest.mark.parametrize("reader", DR_READERS, ids=lambda c: c.__name__)
def test_every_dr_reader_grades_on_the_icdr_scale(reader: type) -> None:
    assert issubclass(reader, ICDRGrading)
    assert (
        tuple(reader.class_names)
        == ICDR_GRADES
        == (
            "No DR",
            "Mild",
            "Moderate",
            "Severe",
            "Proliferative DR",
        )
    )
    assert reader.ordinal and reader.official_metric == "kappa"
    assert is_icdr_graded(reader.class_names, reader.ordinal)  # the referable-DR view applies
    assert reader.transforms_preset.startswith("fundus")


@pytest.mark.parametrize(
    "reader", [ISIC2018DataModule, ISIC2019DataModule, ISIC2020DataModule], ids=lambda c: c.__name__
)
def test_skin_readers_are_not_icdr_graded(reader: type) -> None:
    assert not issubclass(reader, ICDRGrading)
    assert not is_icdr_graded(reader.class_names, reader.ordinal)


def test_the_grades_are_spelled_in_one_module() -> None:
    package = Path(fgssl.__file__).parent
    spelling = [
        path.relative_to(package).as_posix()
        for path in sorted(package.rglob("*.py"))
        if '"Proliferative DR"' in path.read_text()
    ]
    assert spelling == ["data/icdr.py"]
